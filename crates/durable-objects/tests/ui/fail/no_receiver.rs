use durable_objects::prelude::*;

#[durable_object]
pub struct Room;

impl DurableObject for Room {
    fn new(_state: State, _env: Env) -> Self {
        Room
    }
}

#[rpc]
impl Room {
    pub async fn make(size: u32) -> Result<u32> {
        Ok(size)
    }
}

fn main() {}

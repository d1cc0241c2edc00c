use durable_objects::prelude::*;

#[durable_object]
pub struct Counter;

impl DurableObject for Counter {
    fn new(_state: State, _env: Env) -> Self {
        Counter
    }
}

#[rpc]
impl Counter {
    pub fn increment(&self, by: i64) -> Result<i64> {
        Ok(by)
    }
}

fn main() {}

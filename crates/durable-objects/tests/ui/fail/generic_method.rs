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
    pub async fn echo<T: serde::Serialize>(&self, value: T) -> Result<T> {
        Ok(value)
    }
}

fn main() {}

use durable_objects::prelude::*;

#[durable_object]
pub struct Counter {
    state: State,
}

impl DurableObject for Counter {
    fn new(state: State, _env: Env) -> Self {
        Counter { state }
    }
}

// `#[rpc]` is missing: the method is not callable through a stub.
impl Counter {
    pub async fn add(&self, by: i64) -> Result<i64> {
        let _ = &self.state;
        Ok(by)
    }
}

async fn call(stub: Stub<Counter>) -> Result<i64> {
    stub.add(1).await
}

fn main() {
    let _ = call;
}

use durable_objects::prelude::*;

pub struct Opaque {
    pub inner: std::rc::Rc<u8>,
}

#[durable_object]
pub struct Counter;

impl DurableObject for Counter {
    fn new(_state: State, _env: Env) -> Self {
        Counter
    }
}

#[rpc]
impl Counter {
    pub async fn take(&self, value: Opaque) -> Result<u8> {
        Ok(*value.inner)
    }
}

fn main() {}

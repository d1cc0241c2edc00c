use durable_objects::prelude::*;
use std::cell::Cell;

#[durable_object]
pub struct Counter {
    value: Cell<i64>,
}

impl DurableObject for Counter {
    fn new(_state: State, _env: Env) -> Self {
        Self { value: Cell::new(0) }
    }
}

#[rpc]
impl Counter {
    pub async fn increment(&self, by: i64) -> Result<i64> {
        self.value.set(self.value.get() + by);
        Ok(self.value.get())
    }
}

#[durable_object]
pub struct Plain;

impl DurableObject for Plain {
    fn new(_state: State, _env: Env) -> Self {
        Plain
    }
}

#[tokio::test]
async fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder().data_dir(dir.path()).bind::<Counter>("C").bind::<Plain>("P").build().unwrap();
    let env = rt.env();
    let c = env.namespace::<Counter>("C").unwrap().get_by_name("x");
    assert_eq!(c.increment(2).await.unwrap(), 2);
    assert_eq!(c.increment(3).await.unwrap(), 5);
}

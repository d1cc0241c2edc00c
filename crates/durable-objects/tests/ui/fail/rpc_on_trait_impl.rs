use durable_objects::prelude::*;

#[durable_object]
pub struct Room;

impl DurableObject for Room {
    fn new(_state: State, _env: Env) -> Self {
        Room
    }
}

pub trait Greeter {
    fn greet(&self) -> String;
}

#[rpc]
impl Greeter for Room {
    fn greet(&self) -> String {
        "hi".to_owned()
    }
}

fn main() {}

use durable_objects::prelude::*;

pub struct Room;

impl DurableObject for Room {
    fn new(_state: State, _env: Env) -> Self {
        Room
    }
}

fn main() {}

use durable_objects::prelude::*;

#[durable_object]
pub struct Room<T> {
    value: T,
}

fn main() {}

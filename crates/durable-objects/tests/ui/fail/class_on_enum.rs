use durable_objects::prelude::*;

#[durable_object]
pub enum Room {
    Open,
    Closed,
}

fn main() {}

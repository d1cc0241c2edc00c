//! Every accepted shape of an rpc method, called through a stub.
use durable_objects::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
}

#[derive(Debug)]
pub struct RoomFull;

impl From<RoomFull> for Error {
    fn from(_: RoomFull) -> Self {
        Error::user("room is full")
    }
}

#[durable_object]
pub struct Room {
    entries: RefCell<Vec<Entry>>,
}

impl DurableObject for Room {
    fn new(_state: State, _env: Env) -> Self {
        Room {
            entries: RefCell::new(Vec::new()),
        }
    }
}

#[rpc]
impl Room {
    /// No arguments and no result.
    pub async fn clear(&self) {
        self.entries.borrow_mut().clear();
    }

    /// A plain result.
    pub async fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// A custom error type that converts into `Error`.
    pub async fn add(&self, entry: Entry) -> std::result::Result<usize, RoomFull> {
        if self.entries.borrow().len() >= 2 {
            return Err(RoomFull);
        }
        self.entries.borrow_mut().push(entry);
        Ok(self.entries.borrow().len())
    }

    /// Patterns and several arguments.
    pub async fn pair(&self, (a, b): (u8, u8), _unused: Option<String>) -> Result<u16> {
        Ok(u16::from(a) + u16::from(b) + self.helper())
    }

    // Not `pub`: an ordinary helper, not an rpc method, so it may be anything.
    fn helper(&self) -> u16 {
        0
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::builder()
        .data_dir(dir.path())
        .bind::<Room>("ROOM")
        .build()
        .unwrap();
    let env = runtime.env();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let room = env.namespace::<Room>("ROOM").unwrap().get_by_name("r");
        let entry = Entry { key: "k".into(), value: vec![1] };
        assert_eq!(room.add(entry.clone()).await.unwrap(), 1);
        assert_eq!(room.add(entry.clone()).await.unwrap(), 2);
        let full = room.add(entry).await.unwrap_err();
        assert_eq!(full.message(), "room is full");
        assert_eq!(room.len().await.unwrap(), 2);
        room.clear().await.unwrap();
        assert_eq!(room.len().await.unwrap(), 0);
        assert_eq!(room.pair((1, 2), None).await.unwrap(), 3);
    });
}

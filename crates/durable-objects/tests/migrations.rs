//! Class migrations: classes bound by name, created, renamed (ids, data and alarms follow) and
//! deleted (data gone), applied once in order, and the errors for every misuse.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::path::Path;

use durable_objects::prelude::*;
use durable_objects::{Migration, StartError};

/// The class before its rename.
#[durable_object]
pub struct Ledger {
    state: State,
}

impl DurableObject for Ledger {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn alarm(&self, _info: durable_objects::AlarmInfo) -> Result<()> {
        Ok(())
    }
}

#[rpc]
impl Ledger {
    pub async fn write(&self, value: String) -> Result<()> {
        self.state.storage().put("value", &value).await?;
        self.state.storage().set_alarm(4_000_000_000_000).await
    }
}

/// The same objects after `Ledger` was renamed to `Book`.
#[durable_object]
pub struct Book {
    state: State,
}

impl DurableObject for Book {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl Book {
    pub async fn read(&self) -> Result<Option<String>> {
        self.state.storage().get("value").await
    }
}

fn v1() -> Migration {
    Migration::new("v1").new_sqlite_classes(["Ledger"])
}

fn v2() -> Migration {
    Migration::new("v2").rename("Ledger", "Book")
}

fn build(
    dir: &Path,
    binding: &str,
    class: &str,
    migrations: Vec<Migration>,
) -> Result<Runtime, StartError> {
    Runtime::builder()
        .data_dir(dir)
        .class::<Ledger>()
        .class::<Book>()
        .bind_class(binding, class)
        .migrations(migrations)
        .build()
}

fn error(result: Result<Runtime, StartError>) -> String {
    result
        .expect_err("the runtime refuses to start")
        .to_string()
}

#[tokio::test]
async fn a_renamed_class_keeps_its_ids_data_and_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = build(dir.path(), "LEDGER", "Ledger", vec![v1()]).unwrap();
    let ledger = runtime.env().namespace::<Ledger>("LEDGER").unwrap();
    let id = ledger.id_from_name("acct").to_string();
    ledger
        .get_by_name("acct")
        .write("42".to_owned())
        .await
        .unwrap();
    assert_eq!(runtime.pending_alarms(), 1);
    drop(runtime);

    let runtime = build(dir.path(), "BOOK", "Book", vec![v1(), v2()]).unwrap();
    let books = runtime.env().namespace::<Book>("BOOK").unwrap();
    assert_eq!(books.id_from_name("acct").to_string(), id);
    let by_id = books.get(&books.id_from_string(&id).unwrap());
    assert_eq!(by_id.read().await.unwrap().as_deref(), Some("42"));
    assert_eq!(
        runtime.pending_alarms(),
        1,
        "the alarm moved with the class"
    );
    drop(runtime);

    // Applied once: a third start changes nothing and records nothing new.
    let runtime = build(dir.path(), "BOOK", "Book", vec![v1(), v2()]).unwrap();
    drop(runtime);
    let record = std::fs::read_to_string(dir.path().join("MIGRATIONS")).unwrap();
    assert_eq!(record.lines().count(), 2, "{record}");
}

#[tokio::test]
async fn a_deleted_class_loses_its_data_and_needs_its_binding_gone() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = build(dir.path(), "LEDGER", "Ledger", vec![v1()]).unwrap();
    let ledger = runtime.env().namespace::<Ledger>("LEDGER").unwrap();
    ledger.get_by_name("a").write("x".to_owned()).await.unwrap();
    drop(runtime);

    let v2 = Migration::new("v2").delete(["Ledger"]);
    let err = error(build(
        dir.path(),
        "LEDGER",
        "Ledger",
        vec![v1(), v2.clone()],
    ));
    assert!(err.contains("a binding still refers to"), "{err}");

    let v3 = Migration::new("v3").new_sqlite_classes(["Book"]);
    let runtime = build(dir.path(), "BOOK", "Book", vec![v1(), v2, v3]).unwrap();
    assert!(!dir.path().join("objects/Ledger").exists());
    assert!(!dir.path().join("namespaces/Ledger.key").exists());
    assert_eq!(runtime.pending_alarms(), 0);
}

#[test]
fn bad_bindings_and_migrations_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = error(build(dir.path(), "X", "Nope", vec![v1()]));
    assert!(err.contains("\"Nope\"") && err.contains("Ledger"), "{err}");
    let err = error(build(dir.path(), "BOOK", "Book", vec![v1()]));
    assert!(err.contains("no migration creates"), "{err}");
    let err = error(build(dir.path(), "L", "Ledger", vec![v1(), v1()]));
    assert!(err.contains("used twice"), "{err}");
    let err = error(build(
        dir.path(),
        "L",
        "Ledger",
        vec![v1(), Migration::new("v2").new_sqlite_classes(["Ledger"])],
    ));
    assert!(err.contains("already exists"), "{err}");
    let err = error(build(
        dir.path(),
        "L",
        "Ledger",
        vec![v1(), Migration::new("v2").rename("Missing", "Book")],
    ));
    assert!(err.contains("does not exist"), "{err}");

    drop(build(dir.path(), "L", "Ledger", vec![v1()]).unwrap());
    let edited = Migration::new("v1").new_sqlite_classes(["Ledger", "Book"]);
    let err = error(build(dir.path(), "L", "Ledger", vec![edited]));
    assert!(err.contains("was edited"), "{err}");
    let err = error(build(
        dir.path(),
        "L",
        "Ledger",
        vec![Migration::new("v0").new_sqlite_classes(["Book"]), v1()],
    ));
    assert!(err.contains("keep their order"), "{err}");
    let err = error(build(dir.path(), "L", "Ledger", vec![]));
    assert!(err.contains("missing from the configuration"), "{err}");
}

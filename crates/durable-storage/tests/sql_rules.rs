//! SQL through a real `ObjectDatabase`: statements, parameters, cursors, limits, and every
//! kind of SQL the authorizer refuses, each leaving the database usable.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use durable_storage::authorizer::Rule;
use durable_storage::{DatabaseOptions, ObjectDatabase, SqlError, SqlValue};

fn open() -> (tempfile::TempDir, ObjectDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = ObjectDatabase::open(
        &dir.path().join("o.sqlite"),
        DatabaseOptions::default(),
        Arc::new(|_| {}),
    )
    .unwrap();
    (dir, db)
}

fn refused(db: &mut ObjectDatabase, sql: &str) -> Rule {
    match db.exec(sql, vec![]) {
        Err(SqlError::Refused(refusal)) => refusal.rule,
        other => panic!("{sql:?} was not refused: {other:?}"),
    }
}

#[test]
fn statements_run_and_parameters_bind_to_the_last() {
    let (_dir, mut db) = open();
    let cursor = db
        .exec(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB); \
             INSERT INTO t (name) VALUES ('first'); \
             INSERT INTO t (name, score, data) VALUES (?1, ?2, ?3) RETURNING id, name",
            vec!["second".into(), 2.5.into(), SqlValue::Blob(vec![1, 2])],
        )
        .unwrap();
    assert_eq!(cursor.column_names(), ["id", "name"]);
    assert_eq!(cursor.rows_written(), 2);
    let row = cursor.one().unwrap();
    assert_eq!(row.get::<i64>("id").unwrap(), 2);
    assert_eq!(row.get::<String>("name").unwrap(), "second");

    let rows: Vec<_> = db
        .exec("SELECT name, score, data FROM t ORDER BY id", vec![])
        .unwrap()
        .raw()
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                SqlValue::Text("first".into()),
                SqlValue::Null,
                SqlValue::Null
            ],
            vec![
                SqlValue::Text("second".into()),
                SqlValue::Real(2.5),
                SqlValue::Blob(vec![1, 2])
            ],
        ]
    );
    let count = db.exec("SELECT count(*) AS n FROM t", vec![]).unwrap();
    assert_eq!(count.rows_read(), 1);
    assert_eq!(count.one().unwrap().get::<u32>("n").unwrap(), 2);
    db.commit().unwrap();
}

#[test]
fn bad_queries_are_clear_errors_and_the_database_keeps_working() {
    let (_dir, mut db) = open();
    db.exec("CREATE TABLE t (x INTEGER)", vec![]).unwrap();
    assert_eq!(
        db.exec("  ; -- nothing", vec![]).unwrap_err(),
        SqlError::NoStatement
    );
    let syntax = db.exec("SELEC 1", vec![]).unwrap_err().to_string();
    assert!(
        syntax.contains("syntax error") && syntax.ends_with("SQLITE_ERROR"),
        "{syntax}"
    );
    assert_eq!(
        db.exec("INSERT INTO t VALUES (?1)", vec![]).unwrap_err(),
        SqlError::ParameterCount {
            given: 0,
            expected: 1
        }
    );
    assert_eq!(
        db.exec("INSERT INTO t VALUES (?1)", vec![1.into(), 2.into()])
            .unwrap_err(),
        SqlError::ParameterCount {
            given: 2,
            expected: 1
        }
    );
    let missing = db
        .exec("SELECT * FROM nope", vec![])
        .unwrap_err()
        .to_string();
    assert!(missing.contains("no such table: nope"), "{missing}");
    let one = db
        .exec("SELECT x FROM t", vec![])
        .unwrap()
        .one()
        .unwrap_err();
    assert_eq!(
        one.to_string(),
        "expected exactly one result from SQL query, but got no results"
    );
    db.exec("INSERT INTO t VALUES (1), (2)", vec![]).unwrap();
    let many = db
        .exec("SELECT x FROM t", vec![])
        .unwrap()
        .one()
        .unwrap_err();
    assert!(many.to_string().ends_with("multiple results"));
    let wrong_type = db
        .exec("SELECT 'text' AS v", vec![])
        .unwrap()
        .one()
        .unwrap();
    assert!(
        wrong_type
            .get::<i64>("v")
            .unwrap_err()
            .to_string()
            .contains("cannot read TEXT as i64")
    );
    assert!(
        wrong_type
            .get::<i64>("w")
            .unwrap_err()
            .to_string()
            .contains("no column named \"w\"")
    );
    // Still working.
    assert_eq!(
        db.exec("SELECT count(*) FROM t", vec![])
            .unwrap()
            .one()
            .unwrap()
            .get_index::<i64>(0)
            .unwrap(),
        2
    );
    db.commit().unwrap();
}

#[test]
fn the_authorizer_refuses_each_rule_by_name() {
    let (_dir, mut db) = open();
    db.exec("CREATE TABLE t (x)", vec![]).unwrap();
    for sql in [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "RELEASE s",
        "BEGIN IMMEDIATE",
    ] {
        assert_eq!(refused(&mut db, sql), Rule::Transaction, "{sql}");
    }
    assert_eq!(refused(&mut db, "ATTACH 'other.db' AS other"), Rule::Attach);
    assert_eq!(refused(&mut db, "DETACH other"), Rule::Attach);
    assert_eq!(refused(&mut db, "CREATE TEMP TABLE x (a)"), Rule::Temporary);
    assert_eq!(
        refused(&mut db, "CREATE TEMPORARY VIEW v AS SELECT 1"),
        Rule::Temporary
    );
    assert_eq!(
        refused(&mut db, "CREATE TABLE _cf_mine (a)"),
        Rule::ReservedName
    );
    assert_eq!(
        refused(&mut db, "CREATE TABLE _CF_Mine (a)"),
        Rule::ReservedName
    );
    assert_eq!(
        refused(&mut db, "CREATE INDEX _cf_i ON t (x)"),
        Rule::ReservedName
    );
    db.kv_put("k", b"v", true).unwrap();
    assert_eq!(refused(&mut db, "SELECT * FROM _cf_KV"), Rule::ReservedName);
    assert_eq!(refused(&mut db, "DELETE FROM _cf_KV"), Rule::ReservedName);
    assert_eq!(refused(&mut db, "DROP TABLE _cf_KV"), Rule::ReservedName);
    assert_eq!(
        refused(&mut db, "ALTER TABLE _cf_KV RENAME TO mine"),
        Rule::ReservedName
    );
    assert_eq!(
        refused(&mut db, "CREATE VIRTUAL TABLE v USING fts4(body)"),
        Rule::VirtualTable
    );
    assert_eq!(refused(&mut db, "PRAGMA user_version"), Rule::Pragma);
    assert_eq!(
        refused(&mut db, "PRAGMA journal_mode = DELETE"),
        Rule::Pragma
    );
    assert_eq!(refused(&mut db, "PRAGMA writable_schema = 1"), Rule::Pragma);
    assert_eq!(
        refused(&mut db, "SELECT load_extension('x')"),
        Rule::Function
    );
    assert_eq!(refused(&mut db, "SELECT sqlite_version()"), Rule::Function);
    let message = db.exec("BEGIN", vec![]).unwrap_err().to_string();
    assert!(message.contains("use transaction_sync()"), "{message}");

    // What is allowed still works, and the refusals changed nothing.
    db.exec("CREATE VIRTUAL TABLE docs USING fts5(body)", vec![])
        .unwrap();
    db.exec("INSERT INTO docs VALUES ('hello world')", vec![])
        .unwrap();
    let hits = db
        .exec("SELECT count(*) FROM docs WHERE docs MATCH 'hello'", vec![])
        .unwrap();
    assert_eq!(hits.one().unwrap().get_index::<i64>(0).unwrap(), 1);
    db.exec("CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1)", vec![])
        .unwrap();
    db.exec("PRAGMA foreign_keys = ON", vec![]).unwrap();
    db.exec("PRAGMA table_info(t)", vec![]).unwrap();
    let tables = db.exec("PRAGMA table_list", vec![]).unwrap();
    assert!(tables.count() >= 2);
    db.exec("SELECT json_extract('{\"a\": 1}', '$.a')", vec![])
        .unwrap();
    assert_eq!(db.kv_get("k").unwrap().as_deref(), Some(&b"v"[..]));
    db.commit().unwrap();
}

#[test]
fn limits_are_enforced() {
    let (_dir, mut db) = open();
    let columns: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let wide = db
        .exec(
            &format!("CREATE TABLE wide ({})", columns.join(", ")),
            vec![],
        )
        .unwrap_err()
        .to_string();
    assert!(wide.contains("too many columns"), "{wide}");
    db.exec(
        &format!("CREATE TABLE ok ({})", columns[..100].join(", ")),
        vec![],
    )
    .unwrap();

    let long = format!("SELECT '{}'", "x".repeat(100_000));
    let err = db.exec(&long, vec![]).unwrap_err().to_string();
    assert!(err.contains("too big") || err.contains("too long"), "{err}");

    let placeholders: Vec<String> = (1..=101).map(|i| format!("?{i}")).collect();
    let err = db
        .exec(
            &format!("SELECT {}", placeholders.join(", ")),
            (1..=101).map(SqlValue::from).collect(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("variable number") || err.contains("too many SQL variables"),
        "{err}"
    );

    db.exec("CREATE TABLE blobs (b BLOB)", vec![]).unwrap();
    let err = db
        .exec(
            "INSERT INTO blobs VALUES (?1)",
            vec![SqlValue::Blob(vec![0; 2_097_153])],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("too big"), "{err}");
    db.exec(
        "INSERT INTO blobs VALUES (?1)",
        vec![SqlValue::Blob(vec![0; 1_000_000])],
    )
    .unwrap();
    db.commit().unwrap();
}

#[test]
fn delete_all_leaves_an_empty_database() {
    let (_dir, mut db) = open();
    db.exec(
        "CREATE TABLE a (x); CREATE INDEX ai ON a (x); CREATE VIEW v AS SELECT * FROM a; \
         CREATE TRIGGER tr AFTER INSERT ON a BEGIN SELECT 1; END; \
         CREATE VIRTUAL TABLE f USING fts5(body); INSERT INTO a VALUES (1)",
        vec![],
    )
    .unwrap();
    db.kv_put("k", b"v", true).unwrap();
    db.commit().unwrap();
    let before = db.database_size().unwrap();
    db.delete_all().unwrap();
    db.commit().unwrap();
    let left = db
        .exec("SELECT count(*) FROM sqlite_master", vec![])
        .unwrap()
        .one()
        .unwrap()
        .get_index::<i64>(0)
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(db.kv_get("k").unwrap(), None);
    assert!(db.database_size().unwrap() < before);
    // Usable afterwards.
    db.exec("CREATE TABLE a (x)", vec![]).unwrap();
    db.kv_put("k", b"again", true).unwrap();
    db.commit().unwrap();
}

#[test]
fn rows_deserialize_into_serde_types() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Item {
        id: i64,
        name: String,
        score: Option<f64>,
    }
    let (_dir, mut db) = open();
    db.exec(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL); \
         INSERT INTO items VALUES (1, 'one', 1.5), (2, 'two', NULL)",
        vec![],
    )
    .unwrap();
    let items: Vec<Item> = db
        .exec("SELECT id, name, score FROM items ORDER BY id", vec![])
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(
        items,
        [
            Item {
                id: 1,
                name: "one".into(),
                score: Some(1.5)
            },
            Item {
                id: 2,
                name: "two".into(),
                score: None
            },
        ]
    );
    let one: Item = db
        .exec(
            "SELECT id, name, score FROM items WHERE id = ?1",
            vec![2.into()],
        )
        .unwrap()
        .one_as()
        .unwrap();
    assert_eq!(one.name, "two");
    let wrong = db
        .exec(
            "SELECT name AS id, name, score FROM items WHERE id = 1",
            vec![],
        )
        .unwrap()
        .one_as::<Item>()
        .unwrap_err();
    assert!(wrong.to_string().contains("row as"), "{wrong}");
    db.commit().unwrap();
}

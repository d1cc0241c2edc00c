//! SQL through a real `ObjectDatabase`: statements, parameters, cursors, limits, and every
//! kind of SQL the authorizer refuses, each leaving the database usable.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use durable_storage::authorizer::Rule;
use durable_storage::{DatabaseOptions, ObjectDatabase, SqlError, SqlValue, SqliteCode};

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
    // The counters are the last statement's.
    assert_eq!(cursor.rows_written(), 1);
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
    assert_eq!(count.rows_read(), 2);
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
    assert_eq!(one, SqlError::NoRows);
    assert_eq!(
        one.to_string(),
        "expected exactly one result from SQL query, but got no results"
    );
    assert_eq!(
        durable_objects::Error::from(one).kind(),
        durable_objects::ErrorKind::NotFound
    );
    let empty = db.exec("SELECT x FROM t", vec![]).unwrap();
    assert!(empty.clone().one_or_none().unwrap().is_none());
    assert!(empty.first().is_none());
    db.exec("INSERT INTO t VALUES (1), (2)", vec![]).unwrap();
    let many = db
        .exec("SELECT x FROM t", vec![])
        .unwrap()
        .one()
        .unwrap_err();
    assert_eq!(many, SqlError::MultipleRows);
    assert!(many.to_string().ends_with("multiple results"));
    let several = db.exec("SELECT x FROM t ORDER BY x", vec![]).unwrap();
    assert_eq!(
        several.clone().one_or_none().unwrap_err(),
        SqlError::MultipleRows
    );
    assert_eq!(several.first().unwrap().get::<i64>("x").unwrap(), 1);
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
    assert!(matches!(
        db.exec(&long, vec![]).unwrap_err(),
        SqlError::StatementTooLong {
            len: 100_009,
            limit: 100_000
        }
    ));

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
    assert!(err.contains("at most 2097152 bytes"), "{err}");
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
    db.delete_all(true).unwrap();
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

fn count(db: &mut ObjectDatabase, sql: &str) -> i64 {
    db.exec(sql, vec![])
        .unwrap()
        .one()
        .unwrap()
        .get_index::<i64>(0)
        .unwrap()
}

#[test]
fn rows_read_counts_rows_scanned_not_rows_returned() {
    let (_dir, mut db) = open();
    db.exec(
        "CREATE TABLE h (id INTEGER PRIMARY KEY, v INTEGER, w INTEGER)",
        vec![],
    )
    .unwrap();
    for i in 0..100 {
        db.exec(
            "INSERT INTO h (v, w) VALUES (?1, ?1)",
            vec![SqlValue::Integer(i)],
        )
        .unwrap();
    }
    db.exec("CREATE INDEX hv ON h (v)", vec![]).unwrap();
    let queries = [
        // SQLite's count(*) reads the b-tree's row count; it still read every row.
        "SELECT count(*) FROM h",
        // A filter without an index scans the table to return one row.
        "SELECT * FROM h WHERE w = 42",
        // With an index, only the matching entries (and the one that ends the range).
        "SELECT * FROM h WHERE v = 42",
        "SELECT * FROM h WHERE v BETWEEN 10 AND 19",
        "SELECT * FROM h WHERE id = 7",
        "UPDATE h SET w = w + 1",
        "DELETE FROM h WHERE id > 90",
        "INSERT INTO h (v, w) VALUES (1, 1)",
        // Several statements: the last one's counters.
        "SELECT * FROM h; SELECT * FROM h WHERE id = 1",
        // The same text again, from the statement cache: counters start from zero.
        "SELECT * FROM h WHERE w = 42",
    ];
    let counts: Vec<(u64, u64, usize)> = queries
        .iter()
        .map(|sql| {
            let cursor = db.exec(sql, vec![]).unwrap();
            (cursor.rows_read(), cursor.rows_written(), cursor.count())
        })
        .collect();
    // (rows read, rows written, rows returned) per query. An index scan also counts the
    // entry past its last match, which SQLite reads to see the range end.
    assert_eq!(
        counts,
        [
            (100, 0, 1),
            (100, 0, 1),
            (2, 0, 1),
            (11, 0, 10),
            (1, 0, 1),
            (100, 100, 0),
            (10, 10, 0),
            (0, 1, 0),
            (1, 0, 1),
            (91, 0, 1),
        ]
    );
    db.commit().unwrap();
}

#[test]
fn values_and_texts_are_limited_at_the_documented_numbers() {
    let (_dir, mut db) = open();
    db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, b)", vec![])
        .unwrap();
    // Exactly 2 MiB, as a BLOB and as TEXT: stored and read back whole.
    let limit = durable_core::limits::MAX_SQL_VALUE_BYTES;
    assert_eq!(limit, 2_097_152);
    db.exec(
        "INSERT INTO big VALUES (1, ?1)",
        vec![SqlValue::Blob(vec![7; limit])],
    )
    .unwrap();
    db.exec(
        "INSERT INTO big VALUES (2, ?1)",
        vec![SqlValue::Text("t".repeat(limit))],
    )
    .unwrap();
    assert_eq!(
        count(&mut db, "SELECT sum(length(b)) FROM big"),
        2 * 2_097_152
    );
    // One byte over: refused before SQLite sees it, with the limit as a typed detail.
    for value in [
        SqlValue::Blob(vec![7; limit + 1]),
        SqlValue::Text("t".repeat(limit + 1)),
    ] {
        let err = db
            .exec("INSERT INTO big VALUES (3, ?1)", vec![value])
            .unwrap_err();
        assert_eq!(
            err,
            SqlError::ValueTooLarge {
                index: 1,
                len: limit + 1,
                limit
            }
        );
        let public = durable_objects::Error::from(err);
        assert_eq!(
            public.exceeded_limit(),
            Some(durable_objects::Limit::SqlValueBytes)
        );
    }
    assert_eq!(count(&mut db, "SELECT count(*) FROM big"), 2);

    // The 100 KB limit is on the whole text, not on each statement: nothing of an
    // over-long text runs.
    let statement = "INSERT INTO big (b) VALUES (1);";
    let over = statement.repeat(100_001 / statement.len() + 1);
    assert!(over.len() > 100_000);
    assert!(matches!(
        db.exec(&over, vec![]).unwrap_err(),
        SqlError::StatementTooLong { limit: 100_000, .. }
    ));
    assert_eq!(count(&mut db, "SELECT count(*) FROM big"), 2);
    // At exactly 100,000 bytes it runs.
    let mut exact = statement.repeat(100_000 / statement.len());
    exact.push_str(&" ".repeat(100_000 - exact.len()));
    assert_eq!(exact.len(), 100_000);
    db.exec(&exact, vec![]).unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM big"),
        2 + i64::try_from(100_000 / statement.len()).unwrap()
    );
    db.commit().unwrap();
}

#[test]
fn a_result_over_the_memory_bound_fails_and_the_database_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = DatabaseOptions::default();
    options.max_result_bytes = 1_000_000;
    let mut db =
        ObjectDatabase::open(&dir.path().join("o.sqlite"), options, Arc::new(|_| {})).unwrap();
    db.exec("CREATE TABLE t (b BLOB)", vec![]).unwrap();
    for _ in 0..3 {
        db.exec(
            "INSERT INTO t VALUES (?1)",
            vec![SqlValue::Blob(vec![1; 400_000])],
        )
        .unwrap();
    }
    let err = db.exec("SELECT b FROM t", vec![]).unwrap_err();
    assert_eq!(err, SqlError::ResultTooLarge { limit: 1_000_000 });
    assert_eq!(
        durable_objects::Error::from(err).exceeded_limit(),
        Some(durable_objects::Limit::SqlResultBytes)
    );
    // Fewer rows fit; the rows are all still there.
    assert_eq!(
        db.exec("SELECT b FROM t LIMIT 2", vec![]).unwrap().count(),
        2
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM t"), 3);
    db.commit().unwrap();
}

#[test]
fn constraint_errors_carry_the_extended_code() {
    let (_dir, mut db) = open();
    db.exec(
        "PRAGMA foreign_keys = ON; \
         CREATE TABLE parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT NOT NULL, \
           age INTEGER CHECK (age >= 0), parent INTEGER REFERENCES parent (id)); \
         CREATE TABLE k (name TEXT PRIMARY KEY) WITHOUT ROWID; \
         INSERT INTO parent VALUES (1); \
         INSERT INTO t VALUES (1, 'a@example.com', 'a', 1, 1); \
         INSERT INTO k VALUES ('x')",
        vec![],
    )
    .unwrap();
    for (sql, code) in [
        (
            "INSERT INTO t VALUES (2, 'a@example.com', 'b', 1, 1)",
            "SQLITE_CONSTRAINT_UNIQUE",
        ),
        ("INSERT INTO k VALUES ('x')", "SQLITE_CONSTRAINT_PRIMARYKEY"),
        (
            "INSERT INTO t VALUES (3, 'c@example.com', NULL, 1, 1)",
            "SQLITE_CONSTRAINT_NOTNULL",
        ),
        (
            "INSERT INTO t VALUES (4, 'd@example.com', 'd', -1, 1)",
            "SQLITE_CONSTRAINT_CHECK",
        ),
        (
            "INSERT INTO t VALUES (5, 'e@example.com', 'e', 1, 99)",
            "SQLITE_CONSTRAINT_FOREIGNKEY",
        ),
    ] {
        let err = db.exec(sql, vec![]).unwrap_err();
        assert_eq!(err.extended_name().as_deref(), Some(code), "{sql}");
        assert_eq!(err.sqlite_code(), Some(SqliteCode::Constraint));
        assert!(err.to_string().ends_with(&format!(": {code}")), "{err}");
        let public = durable_objects::Error::from(err);
        assert_eq!(public.sqlite_code(), Some(code));
        assert_eq!(public.kind(), durable_objects::ErrorKind::InvalidInput);
    }
    assert_eq!(count(&mut db, "SELECT count(*) FROM t"), 1);
    db.commit().unwrap();
}

#[test]
fn errors_do_not_echo_the_statement_and_transactions_get_the_hint_first() {
    let (_dir, mut db) = open();
    let long = format!("SELECT '{}' + no_such_column", "padding".repeat(7_000));
    let message = db.exec(&long, vec![]).unwrap_err().to_string();
    assert!(message.len() < 200, "{message}");
    assert!(message.contains("at offset"), "{message}");
    assert!(!message.contains("padding"), "{message}");
    for sql in ["BEGIN", "COMMIT", "SAVEPOINT s", "ROLLBACK"] {
        let message = db.exec(sql, vec![]).unwrap_err().to_string();
        assert!(
            message.starts_with("use transaction_sync() or transaction() instead"),
            "{message}"
        );
    }
}

#[test]
fn text_after_the_last_statement_must_not_be_only_a_comment() {
    let (_dir, mut db) = open();
    for sql in [
        "SELECT 1; -- just a comment",
        "SELECT 1; /* block */",
        "SELECT 1;\n-- one\n-- two\n",
    ] {
        assert_eq!(
            db.exec(sql, vec![]).unwrap_err(),
            SqlError::TrailingComment,
            "{sql:?}"
        );
    }
    // Nothing of such a text runs.
    assert_eq!(
        db.exec("CREATE TABLE z (x); -- done", vec![]).unwrap_err(),
        SqlError::TrailingComment
    );
    assert!(db.exec("SELECT * FROM z", vec![]).is_err());
    // Comments inside or before a statement, and trailing semicolons, are fine.
    for sql in [
        "SELECT 1 -- the answer",
        "-- first\nSELECT 1",
        "SELECT 1; /* then */ SELECT 2",
        "SELECT 1;;  ;\n",
        "SELECT '-- not a comment';",
    ] {
        db.exec(sql, vec![]).unwrap();
    }
}

#[test]
fn a_failing_statement_undoes_the_statements_before_it_in_the_same_text() {
    let (_dir, mut db) = open();
    db.exec(
        "CREATE TABLE t (x UNIQUE); INSERT INTO t VALUES (1)",
        vec![],
    )
    .unwrap();
    db.commit().unwrap();
    let err = db
        .exec(
            "INSERT INTO t VALUES (2); CREATE TABLE other (y); INSERT INTO t VALUES (1)",
            vec![],
        )
        .unwrap_err();
    assert_eq!(
        err.extended_name().as_deref(),
        Some("SQLITE_CONSTRAINT_UNIQUE")
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM t"), 1);
    assert!(db.exec("SELECT * FROM other", vec![]).is_err());
    // Earlier writes of the same batch (other calls) are kept.
    db.exec("INSERT INTO t VALUES (3)", vec![]).unwrap();
    assert!(
        db.exec("INSERT INTO t VALUES (4); INSERT INTO t VALUES (3)", vec![])
            .is_err()
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM t"), 2);
    db.commit().unwrap();
}

#[test]
fn the_authorizer_holes_cloudflare_refuses_are_closed() {
    let (_dir, mut db) = open();
    db.exec("CREATE TABLE t (x)", vec![]).unwrap();
    db.kv_put("k", b"v", true).unwrap();
    // Renaming a table to a reserved name would break the KV API.
    for sql in [
        "ALTER TABLE t RENAME TO _cf_KV",
        "ALTER TABLE t RENAME TO \"_cf_other\"",
        "alter table main.t rename to [_CF_x]",
    ] {
        assert_eq!(refused(&mut db, sql), Rule::ReservedName, "{sql}");
    }
    db.kv_put("k2", b"v2", true).unwrap();
    assert_eq!(db.kv_get("k").unwrap().as_deref(), Some(&b"v"[..]));
    db.exec("ALTER TABLE t RENAME TO t2", vec![]).unwrap();
    db.exec("ALTER TABLE t2 RENAME COLUMN x TO y", vec![])
        .unwrap();
    // The temp schema, by any spelling.
    for sql in [
        "CREATE TABLE temp.tt (x)",
        "CREATE TABLE TEMP.tt (x)",
        "CREATE VIEW temp.tv AS SELECT 1",
    ] {
        assert_eq!(refused(&mut db, sql), Rule::Temporary, "{sql}");
    }
    // Introspection of the engine and the file.
    assert_eq!(
        refused(&mut db, "SELECT * FROM pragma_function_list"),
        Rule::Pragma
    );
    assert_eq!(
        refused(&mut db, "SELECT * FROM pragma_compile_options"),
        Rule::Pragma
    );
    assert_eq!(refused(&mut db, "SELECT * FROM dbstat"), Rule::VirtualTable);
    // A table-valued pragma that is allowed, but not on a reserved table.
    assert_eq!(
        db.exec("SELECT name FROM pragma_table_info('t2')", vec![])
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        refused(&mut db, "SELECT name FROM pragma_table_info('_cf_KV')"),
        Rule::ReservedName
    );
    // A cached statement recompiled after the schema changed is still checked.
    db.exec("CREATE VIEW v AS SELECT 1 AS one", vec![]).unwrap();
    db.exec("SELECT * FROM v", vec![]).unwrap();
    db.exec("DROP VIEW v", vec![]).unwrap();
    db.exec("CREATE VIEW v AS SELECT key FROM _cf_KV", vec![])
        .unwrap();
    assert_eq!(refused(&mut db, "SELECT * FROM v"), Rule::ReservedName);
    db.commit().unwrap();
}

#[test]
fn the_function_set_matches_cloudflares() {
    let (_dir, mut db) = open();
    let row = db
        .exec(
            "SELECT sqrt(16), pow(2, 10), ln(1), log(100), exp(0), round(pi() * 100), ceil(1.2), \
             floor(1.8), trunc(-1.5), mod(7, 3), sin(0), cos(0), atan2(0, 1)",
            vec![],
        )
        .unwrap()
        .one()
        .unwrap();
    let values: Vec<f64> = (0..13).map(|i| row.get_index::<f64>(i).unwrap()).collect();
    assert_eq!(
        values,
        [
            4.0, 1024.0, 0.0, 2.0, 1.0, 314.0, 2.0, 1.0, -1.0, 1.0, 0.0, 1.0, 0.0
        ]
    );
    db.exec(
        "SELECT string_agg(x, ','), concat_ws('-', 'a', 'b'), unhex('41'), '{\"a\":1}' ->> '$.a', \
         octet_length('é'), sign(-3), timediff('2024-01-02', '2024-01-01') \
         FROM (SELECT 'a' AS x UNION ALL SELECT 'b')",
        vec![],
    )
    .unwrap();
    // soundex is not compiled in (Cloudflare lacks it); engine introspection is refused.
    let soundex = db
        .exec("SELECT soundex('x')", vec![])
        .unwrap_err()
        .to_string();
    assert!(soundex.contains("no such function: soundex"), "{soundex}");
    for function in [
        "sqlite_version()",
        "sqlite_source_id()",
        "sqlite_compileoption_used('ENABLE_FTS5')",
        "load_extension('x')",
    ] {
        assert_eq!(
            refused(&mut db, &format!("SELECT {function}")),
            Rule::Function,
            "{function}"
        );
    }
}

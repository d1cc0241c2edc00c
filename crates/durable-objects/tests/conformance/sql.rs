//! Section 4B of the checklist: the SQL API.

use durable_objects::prelude::*;
use durable_objects::storage::{SqlValue, Storage};

use super::{spec, spec_env, spec_env_with, with_storage};

/// Runs `query` (no parameters) in a fresh object; its error, if any, as (kind, message).
async fn sql_error(query: &'static str) -> Option<(ErrorKind, String, Option<String>)> {
    let test = spec_env();
    with_storage(&spec(&test, "sql"), move |storage| {
        // The KV table exists, so reading it meets the authorizer, not "no such table".
        storage.kv().put("seed", &1).unwrap();
        storage.sql().exec(query, ()).err().map(|e| {
            (
                e.kind(),
                e.message().to_owned(),
                e.sqlite_code().map(str::to_owned),
            )
        })
    })
    .await
}

fn exec_rows(storage: &Storage, query: &str) -> Vec<Vec<SqlValue>> {
    storage.sql().exec(query, ()).unwrap().raw().collect()
}

#[tokio::test]
async fn spec_4_3_exec_runs_every_statement_and_binds_parameters_to_the_last() {
    let test = spec_env();
    let rows = with_storage(&spec(&test, "s"), |storage| {
        storage
            .sql()
            .exec(
                "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1); SELECT x, ?1 AS p FROM t",
                (42_i64,),
            )
            .unwrap()
            .raw()
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(
        rows,
        vec![vec![SqlValue::Integer(1), SqlValue::Integer(42)]]
    );
}

#[tokio::test]
async fn spec_4_4_empty_queries_syntax_errors_and_wrong_parameter_counts_are_named() {
    for empty in ["", ";", "  ;  "] {
        let (kind, message, _) = sql_error(empty).await.unwrap();
        assert_eq!(kind, ErrorKind::InvalidInput);
        assert!(message.contains("did not contain a statement"), "{message}");
    }
    // Only a comment after the last statement is refused too (as on Cloudflare).
    let (_, message, _) = sql_error("SELECT 1; -- a comment").await.unwrap();
    assert!(message.contains("only a comment"), "{message}");
    let (_, message, _) = sql_error("SELEC 1").await.unwrap();
    assert!(message.contains("syntax error"), "{message}");
    let test = spec_env();
    let message = with_storage(&spec(&test, "s"), |storage| {
        storage
            .sql()
            .exec("SELECT ?1, ?2", (1_i64,))
            .unwrap_err()
            .message()
            .to_owned()
    })
    .await;
    assert!(message.contains("parameter"), "{message}");
}

#[tokio::test]
async fn spec_4_5_and_4_6_values_keep_their_types_both_ways() {
    let test = spec_env();
    let row = with_storage(&spec(&test, "s"), |storage| {
        storage
            .sql()
            .exec(
                "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7",
                (
                    "text",
                    1.5_f64,
                    i64::MAX,
                    vec![1_u8, 2],
                    Option::<i64>::None,
                    true,
                    9_007_199_254_740_993_i64,
                ),
            )
            .unwrap()
            .raw()
            .next()
            .unwrap()
    })
    .await;
    assert_eq!(
        row,
        vec![
            SqlValue::Text("text".into()),
            SqlValue::Real(1.5),
            // Integers stay 64-bit integers (no loss past 2^53, unlike JavaScript numbers).
            SqlValue::Integer(i64::MAX),
            SqlValue::Blob(vec![1, 2]),
            SqlValue::Null,
            // A bool is bound as the integer 1 (not the text 'true', a known JS quirk).
            SqlValue::Integer(1),
            SqlValue::Integer(9_007_199_254_740_993),
        ]
    );
}

#[tokio::test]
async fn spec_4_7_cursor_one_raw_column_names_and_counters() {
    let test = spec_env();
    let (none, many, names, counters) = with_storage(&spec(&test, "s"), |storage| {
        let sql = storage.sql();
        sql.exec(
            "CREATE TABLE t (a, b); INSERT INTO t VALUES (1, 2), (3, 4)",
            (),
        )
        .unwrap();
        let none = sql
            .exec("SELECT a FROM t WHERE a > 10", ())
            .unwrap()
            .one()
            .unwrap_err()
            .to_string();
        let many = sql
            .exec("SELECT a FROM t", ())
            .unwrap()
            .one()
            .unwrap_err()
            .to_string();
        let cursor = sql.exec("SELECT a, b, a FROM t", ()).unwrap();
        let names = cursor.column_names().to_vec();
        let written = sql.exec("UPDATE t SET b = b + 1", ()).unwrap();
        let counters = (written.rows_written(), cursor.rows_read());
        (none, many, names, counters)
    })
    .await;
    assert!(
        none.contains("no results") || none.contains("no row"),
        "{none}"
    );
    assert!(
        many.contains("more than one") || many.contains("multiple"),
        "{many}"
    );
    assert_eq!(names, ["a", "b", "a"], "duplicate names are kept");
    assert_eq!(counters.0, 2);
    assert_eq!(counters.1, 2);
}

#[tokio::test]
async fn spec_4_8_a_result_set_over_the_limit_is_an_error_not_a_crash() {
    let test = spec_env();
    let error = with_storage(&spec(&test, "s"), |storage| {
        storage
            .sql()
            .exec(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000)
                 SELECT x, zeroblob(1000) FROM n",
                (),
            )
            .map(|_| ())
            .unwrap_err()
    })
    .await;
    assert!(error.exceeded_limit().is_some(), "{error}");
}

#[tokio::test]
async fn spec_4_9_database_size_counts_used_pages() {
    let test = spec_env();
    // (page_count and freelist_count are not allowed pragmas, as on Cloudflare: the size is
    // checked by its page arithmetic instead.)
    let (before, after, after_drop) = with_storage(&spec(&test, "s"), |storage| {
        let sql = storage.sql();
        sql.exec("CREATE TABLE first (x)", ()).unwrap();
        let before = sql.database_size().unwrap();
        sql.exec("CREATE TABLE grows (x)", ()).unwrap();
        let after = sql.database_size().unwrap();
        sql.exec("DROP TABLE grows", ()).unwrap();
        (before, after, sql.database_size().unwrap())
    })
    .await;
    assert_eq!(before % 4_096, 0, "whole pages");
    assert_eq!(after - before, 4_096, "one table adds one page");
    assert_eq!(after_drop, before, "a freed page is not counted");
}

#[tokio::test]
async fn spec_4_10_transaction_statements_are_refused_with_what_to_use() {
    for statement in ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT s", "RELEASE s"] {
        let (_, message, _) = sql_error(statement).await.unwrap();
        assert!(message.contains("transaction"), "{statement}: {message}");
    }
}

#[tokio::test]
async fn spec_4_11_names_starting_with_cf_are_reserved() {
    for statement in [
        "CREATE TABLE _cf_mine (x)",
        "CREATE TABLE _CF_MINE (x)",
        "SELECT * FROM _cf_KV",
        "CREATE TABLE t (x); CREATE INDEX _cf_i ON t (x)",
    ] {
        let (_, message, code) = sql_error(statement).await.unwrap();
        assert!(
            message.contains("not authorized")
                || message.contains("prohibited")
                || code.as_deref() == Some("SQLITE_AUTH"),
            "{statement}: {message}"
        );
    }
    let test = spec_env();
    let listed = with_storage(&spec(&test, "s"), |storage| {
        storage.kv().put("k", &1).unwrap();
        exec_rows(
            &storage,
            "SELECT name FROM sqlite_master WHERE name = '_cf_KV'",
        )
        .len()
    })
    .await;
    assert_eq!(listed, 1, "reserved tables still appear in sqlite_master");
}

#[tokio::test]
async fn spec_4_12_attach_temp_objects_and_unlisted_functions_are_refused() {
    for statement in [
        "ATTACH DATABASE 'x.db' AS x",
        "CREATE TEMP TABLE t (x)",
        "CREATE VIRTUAL TABLE v USING dbstat",
        "SELECT sqlite_version()",
    ] {
        assert!(
            sql_error(statement).await.is_some(),
            "{statement} was allowed"
        );
    }
    for allowed in [
        "CREATE VIRTUAL TABLE f USING fts5(body)",
        "SELECT json_extract('{\"a\": 1}', '$.a'), abs(-1), date('now')",
        // With the KV table present: its reserved table is skipped, not a refusal.
        "ANALYZE",
    ] {
        assert_eq!(sql_error(allowed).await, None, "{allowed}");
    }
}

#[tokio::test]
async fn spec_4_13_only_listed_pragmas_run() {
    for refused in [
        "PRAGMA user_version",
        "PRAGMA journal_mode",
        "PRAGMA page_size = 8192",
    ] {
        assert!(sql_error(refused).await.is_some(), "{refused} was allowed");
    }
    for allowed in [
        "PRAGMA foreign_keys = ON",
        "PRAGMA table_list",
        "PRAGMA quick_check",
        "PRAGMA data_version",
    ] {
        assert_eq!(sql_error(allowed).await, None, "{allowed}");
    }
}

#[tokio::test]
async fn spec_4_14_sql_limits_hold_at_their_boundaries() {
    let test = spec_env();
    let results = with_storage(&spec(&test, "s"), |storage| {
        let sql = storage.sql();
        let columns = |n: usize| {
            let cols: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            format!("CREATE TABLE t{n} ({})", cols.join(", "))
        };
        let params = |n: usize| {
            let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
            format!("SELECT {}", marks.join(", "))
        };
        let values = |n: usize| -> Vec<SqlValue> { (0..n).map(|i| SqlValue::Integer(i as i64)).collect() };
        vec![
            sql.exec(&columns(100), ()).is_ok(),
            sql.exec(&columns(101), ()).is_err(),
            sql.exec(&params(100), values(100)).is_ok(),
            sql.exec(&params(101), values(101)).is_err(),
            sql.exec(&format!("SELECT 'x' LIKE '{}'", "a".repeat(50)), ()).is_ok(),
            sql.exec(&format!("SELECT 'x' LIKE '{}'", "a".repeat(51)), ()).is_err(),
            sql.exec(&format!("SELECT 1 -- {}", "x".repeat(100_000)), ()).is_err(),
            sql.exec("SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5", ()).is_ok(),
            sql.exec("SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6", ()).is_err(),
        ]
    })
    .await;
    assert!(results.iter().all(|ok| *ok), "{results:?}");
}

#[tokio::test]
async fn spec_4_15_a_full_database_refuses_writes_but_reads_and_deletes_work() {
    let test = spec_env_with(|runtime| runtime.max_database_bytes(200_000));
    let stub = spec(&test, "s");
    with_storage(&stub, |storage| {
        storage.sql().exec("CREATE TABLE big (x BLOB)", ()).unwrap();
    })
    .await;
    // One insert per turn, until one is refused.
    let mut refusal = None;
    for _ in 0..100 {
        let insert =
            durable_objects::testing::run_in_durable_object(&stub, |_, state| async move {
                state
                    .storage()
                    .sql()
                    .exec("INSERT INTO big VALUES (zeroblob(10000))", ())
                    .map(|_| ())
            })
            .await;
        match insert {
            Ok(Ok(())) => {}
            Ok(Err(error)) | Err(error) => {
                refusal = Some(error);
                break;
            }
        }
    }
    let refusal = refusal.expect("the database filled up");
    assert!(refusal.message().contains("full"), "{refusal}");
    assert_eq!(
        refusal.exceeded_limit(),
        Some(durable_objects::Limit::DatabaseBytes)
    );
    // Reads and deletes still work, and then writes again.
    let (rows, deleted, written) = with_storage(&stub, |storage| {
        let sql = storage.sql();
        let rows = sql
            .exec("SELECT count(*) AS n FROM big", ())
            .unwrap()
            .one()
            .unwrap()
            .get::<i64>("n")
            .unwrap();
        let deleted = sql.exec("DELETE FROM big", ()).is_ok();
        (
            rows,
            deleted,
            sql.exec("INSERT INTO big VALUES (x'00')", ()).is_ok(),
        )
    })
    .await;
    assert!(rows > 0 && deleted && written);
}

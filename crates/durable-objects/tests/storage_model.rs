//! Model test: random sequences of KV and SQL operations, failing transactions, restarts and
//! evictions, run against a real object and against an in-memory model; every read must
//! agree with the model.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use durable_objects::storage::SqlValue;
use proptest::prelude::*;
use support::objects::{ListSpec, Store};
use support::{TestRuntime, bounded, wait_until};

#[derive(Debug, Clone)]
enum Op {
    Put(String, String),
    Delete(String),
    Get(String),
    List {
        prefix: String,
        reverse: bool,
        limit: Option<usize>,
    },
    SqlUpsert(String, i64),
    SqlDelete(String),
    SqlSelect,
    FailingTransaction(i64),
    DeleteAll,
    Restart,
    Evict,
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "ab", "b", "ba", "c", "é", "z"]).prop_map(str::to_owned)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), "[a-z]{0,4}").prop_map(|(k, v)| Op::Put(k, v)),
        2 => key().prop_map(Op::Delete),
        3 => key().prop_map(Op::Get),
        2 => (prop::sample::select(vec!["", "a", "b", "z"]), any::<bool>(), prop::option::of(1usize..4))
            .prop_map(|(p, reverse, limit)| Op::List { prefix: p.to_owned(), reverse, limit }),
        3 => (key(), -5i64..5).prop_map(|(k, v)| Op::SqlUpsert(k, v)),
        1 => key().prop_map(Op::SqlDelete),
        2 => Just(Op::SqlSelect),
        1 => (0i64..100).prop_map(Op::FailingTransaction),
        1 => Just(Op::DeleteAll),
        1 => Just(Op::Restart),
        1 => Just(Op::Evict),
    ]
}

#[derive(Default)]
struct Model {
    kv: BTreeMap<String, String>,
    sql: BTreeMap<String, i64>,
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS model (k TEXT PRIMARY KEY, v INTEGER NOT NULL)";

async fn run(ops: Vec<Op>) {
    let mut test = TestRuntime::start(|b| b.idle_timeout(Duration::from_millis(30)));
    let mut model = Model::default();
    let stub = |test: &TestRuntime| {
        test.env()
            .namespace::<Store>("STORE")
            .unwrap()
            .get_by_name("m")
    };
    let mut s = stub(&test);
    for op in ops {
        match op {
            Op::Put(k, v) => {
                bounded(s.put(k.clone(), v.clone())).await.unwrap();
                model.kv.insert(k, v);
            }
            Op::Delete(k) => {
                let existed = bounded(s.delete(k.clone())).await.unwrap();
                assert_eq!(existed, model.kv.remove(&k).is_some());
            }
            Op::Get(k) => {
                assert_eq!(
                    bounded(s.get(k.clone())).await.unwrap(),
                    model.kv.get(&k).cloned()
                );
            }
            Op::List {
                prefix,
                reverse,
                limit,
            } => {
                let spec = ListSpec {
                    prefix: Some(prefix.clone()),
                    reverse,
                    limit,
                    ..Default::default()
                };
                let got = bounded(s.list(spec)).await.unwrap();
                let mut expected: Vec<(String, String)> = model
                    .kv
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if reverse {
                    expected.reverse();
                }
                expected.truncate(limit.unwrap_or(usize::MAX));
                assert_eq!(got, expected);
            }
            Op::SqlUpsert(k, v) => {
                let query = format!(
                    "{TABLE}; INSERT INTO model (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
                );
                bounded(s.sql(query, vec![k.clone().into(), v.into()]))
                    .await
                    .unwrap();
                model.sql.insert(k, v);
            }
            Op::SqlDelete(k) => {
                let query = format!("{TABLE}; DELETE FROM model WHERE k = ?1");
                let result = bounded(s.sql(query, vec![k.clone().into()])).await.unwrap();
                let existed = model.sql.remove(&k).is_some();
                assert_eq!(result.rows_written, u64::from(existed));
            }
            Op::SqlSelect => {
                let query = format!("{TABLE}; SELECT k, v FROM model ORDER BY k");
                let result = bounded(s.sql(query, vec![])).await.unwrap();
                let expected: Vec<Vec<SqlValue>> = model
                    .sql
                    .iter()
                    .map(|(k, v)| vec![SqlValue::Text(k.clone()), SqlValue::Integer(*v)])
                    .collect();
                assert_eq!(result.rows, expected);
            }
            Op::FailingTransaction(n) => {
                // Writes a ledger row and a KV entry, then fails: nothing may remain.
                assert!(bounded(s.txn_sync(n, true)).await.is_err());
                assert_eq!(
                    bounded(s.get(format!("n{n:08}"))).await.ok().flatten(),
                    None
                );
            }
            Op::DeleteAll => {
                bounded(s.delete_all()).await.unwrap();
                model = Model::default();
            }
            Op::Restart => {
                test.restart(|b| b.idle_timeout(Duration::from_millis(30)));
                s = stub(&test);
            }
            Op::Evict => {
                wait_until("the object is evicted", || {
                    test.runtime().active_objects() == 0
                })
                .await;
            }
        }
    }
    // A final full comparison after one more restart.
    test.restart(|b| b);
    let s = stub(&test);
    let all = bounded(s.list(ListSpec::default())).await.unwrap();
    assert_eq!(all, model.kv.into_iter().collect::<Vec<_>>());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn storage_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}

//! Interleaving at awaits and the input gate (`block_concurrency_while`), end to end.
//!
//! The rules themselves (start order, who the gate holds back, nesting) are unit-tested in
//! the runtime's deterministic core; these tests check that real calls on a real shard obey
//! them. They wait on signals, never on time.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use support::objects::raise;
use support::{TestRuntime, bounded, probe};

#[tokio::test]
async fn a_call_that_awaits_lets_another_call_run() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "interleave");
    let slow = stub.wait_for("interleave-signal".into(), "slow".into());
    bounded(stub.record("fast".into())).await.unwrap();
    raise("interleave-signal");
    bounded(slow).await.unwrap();
    assert_eq!(
        stub.log().await.unwrap(),
        ["slow:start", "fast", "slow:end"]
    );
}

#[tokio::test]
async fn inside_block_concurrency_while_no_other_call_starts() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "gated");
    let slow = stub.blocking_wait("gated-signal".into(), "slow".into());
    let fast = stub.record("fast".into());
    raise("gated-signal");
    bounded(fast).await.unwrap();
    bounded(slow).await.unwrap();
    assert_eq!(
        stub.log().await.unwrap(),
        ["slow:start", "slow:end", "fast"]
    );
}

#[tokio::test]
async fn a_started_call_does_not_resume_while_another_holds_the_gate() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "held");
    // `a` waits for a signal that `b` raises from inside its block_concurrency_while: `a` is
    // woken while the gate is held, and must not run until `b` is done.
    let a = stub.wait_for("gate-signal-1".into(), "a".into());
    let b = stub.raise_then_yield("gate-signal-1".into(), "b".into(), true);
    bounded(b).await.unwrap();
    bounded(a).await.unwrap();
    assert_eq!(
        stub.log().await.unwrap(),
        ["a:start", "b:start", "b:end", "a:end"]
    );
}

#[tokio::test]
async fn without_the_gate_a_woken_call_resumes_at_once() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "open");
    let a = stub.wait_for("gate-signal-2".into(), "a".into());
    let b = stub.raise_then_yield("gate-signal-2".into(), "b".into(), false);
    bounded(b).await.unwrap();
    bounded(a).await.unwrap();
    assert_eq!(
        stub.log().await.unwrap(),
        ["a:start", "b:start", "a:end", "b:end"]
    );
}

#[tokio::test]
async fn calls_queued_behind_the_gate_start_in_order_afterwards() {
    let test = TestRuntime::start(|b| b.encode_rpc(true));
    let stub = probe(&test, "queue");
    let gate = stub.blocking_wait("queue-signal".into(), "gate".into());
    let queued: Vec<_> = (0..200).map(|i| stub.push(i)).collect();
    raise("queue-signal");
    bounded(gate).await.unwrap();
    for call in queued {
        bounded(call).await.unwrap();
    }
    let log = stub.log().await.unwrap();
    let mut expected = vec!["gate:start".to_owned(), "gate:end".to_owned()];
    expected.extend((0..200).map(|i: u64| i.to_string()));
    assert_eq!(log, expected);
}

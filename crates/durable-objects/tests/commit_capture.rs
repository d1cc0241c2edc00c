//! The capture point: every commit of every object reaches the commit observer, with the WAL
//! frames it wrote, before anything that depends on it leaves: replies, `sync()`, and calls
//! to other objects wait for the observer's acknowledgement as they wait for the fsync, and
//! a commit the observer fails resets the object and fails its callers.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_objects::commit::{CapturedCommit, CommitAck, CommitObserver};
use durable_objects::prelude::*;
use durable_objects::storage::DurabilityMode;
use durable_objects::{Error, ErrorKind, RuntimeBuilder};
use support::objects::{Clockwork, Store};
use support::{TestRuntime, bounded, store, wait_until};
use tokio::sync::mpsc;

/// What the observer does with each commit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// Hand it to the test, which answers.
    Forward,
    /// Acknowledge at once.
    Acknowledge,
}

/// Records every commit; forwards them with their acknowledgements, or acknowledges them.
#[derive(Debug)]
struct Recorder {
    answer: Answer,
    seen: Mutex<Vec<(String, String, u64, usize)>>,
    forward: mpsc::UnboundedSender<(CapturedCommit, CommitAck)>,
}

impl CommitObserver for Recorder {
    fn committed(&self, commit: CapturedCommit, ack: CommitAck) {
        self.seen.lock().unwrap().push((
            commit.class().to_owned(),
            commit.id().to_string(),
            commit.seq(),
            commit.frames().frames.len(),
        ));
        match self.answer {
            Answer::Acknowledge => ack.acknowledge(),
            Answer::Forward => drop(self.forward.send((commit, ack))),
        }
    }
}

struct Captured {
    test: TestRuntime,
    recorder: Arc<Recorder>,
    commits: mpsc::UnboundedReceiver<(CapturedCommit, CommitAck)>,
}

fn start(answer: Answer, configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder) -> Captured {
    let (forward, commits) = mpsc::unbounded_channel();
    let recorder = Arc::new(Recorder {
        answer,
        seen: Mutex::default(),
        forward,
    });
    let observer = Arc::clone(&recorder) as Arc<dyn CommitObserver>;
    let test = TestRuntime::start(|b| configure(b.commit_observer(observer)));
    Captured {
        test,
        recorder,
        commits,
    }
}

fn holds(commit: &CapturedCommit, marker: &str) -> bool {
    commit.frames().frames.iter().any(|frame| {
        frame
            .data
            .windows(marker.len())
            .any(|w| w == marker.as_bytes())
    })
}

impl Captured {
    /// The next commit whose pages hold `marker`; commits before it are acknowledged.
    async fn commit_holding(&mut self, marker: &str) -> (CapturedCommit, CommitAck) {
        loop {
            let (commit, ack) = bounded(self.commits.recv()).await.unwrap();
            if holds(&commit, marker) {
                return (commit, ack);
            }
            ack.acknowledge();
        }
    }
}

/// True if `call` completes within a moment: what a broken output gate would let happen.
async fn leaves_early<T>(call: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_ok()
}

async fn held_reply_waits_for_the_acknowledgement(mode: DurabilityMode) {
    let mut captured = start(Answer::Forward, |b| b.durability(mode));
    let stub = store(&captured.test, "held");
    let before = captured.test.runtime().metrics().fsync.count;
    let marker = "value-that-waits-for-the-observer";
    let mut call = tokio::spawn({
        let stub = stub.clone();
        async move { stub.put("k".into(), marker.into()).await }
    });
    let (commit, ack) = captured.commit_holding(marker).await;
    assert_eq!(commit.class(), "Store");
    assert_eq!(commit.id(), stub.id());
    assert!(commit.seq() >= 1);
    assert!(commit.frames().db_pages >= 1);
    if mode == DurabilityMode::GroupCommit {
        // The fsync is done: only the acknowledgement holds the reply now.
        wait_until("the commit is fsynced", || {
            captured.test.runtime().metrics().fsync.count > before
        })
        .await;
    }
    assert!(
        !leaves_early(&mut call).await,
        "the reply left before the observer acknowledged its commit"
    );
    ack.acknowledge();
    bounded(call).await.unwrap().unwrap();
    assert_eq!(
        bounded(stub.get("k".into())).await.unwrap().as_deref(),
        Some(marker)
    );
}

#[tokio::test]
async fn no_reply_leaves_before_the_observer_acknowledges_with_group_commit() {
    held_reply_waits_for_the_acknowledgement(DurabilityMode::GroupCommit).await;
}

#[tokio::test]
async fn no_reply_leaves_before_the_observer_acknowledges_with_fsync_per_commit() {
    held_reply_waits_for_the_acknowledgement(DurabilityMode::FsyncEachCommit).await;
}

#[tokio::test]
async fn sync_waits_for_the_acknowledgement() {
    let mut captured = start(Answer::Forward, |b| b);
    let stub = store(&captured.test, "synced");
    let mut call = tokio::spawn({
        let stub = stub.clone();
        async move { stub.unconfirmed_then_sync("sync-marker-key".into()).await }
    });
    let (_, ack) = captured.commit_holding("sync-marker-key").await;
    assert!(
        !leaves_early(&mut call).await,
        "sync() returned before the acknowledgement"
    );
    ack.acknowledge();
    bounded(call).await.unwrap().unwrap();
}

/// Writes, then calls a `Store`: the call must wait for the write's acknowledgement.
#[derive(Debug)]
#[durable_object]
pub struct Relay {
    state: State,
    env: Env,
}

impl DurableObject for Relay {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }
}

#[rpc]
impl Relay {
    pub async fn write_then_call(&self, target: String) -> Result<()> {
        self.state.storage().kv().put("relay-marker", &"relayed")?;
        self.env
            .namespace::<Store>("STORE")?
            .get_by_name(&target)
            .put("k".into(), "called-marker".into())
            .await
    }
}

#[tokio::test]
async fn a_call_to_another_object_waits_for_the_acknowledgement() {
    let mut captured = start(Answer::Forward, |b| b.bind::<Relay>("RELAY"));
    let relay = captured
        .test
        .env()
        .namespace::<Relay>("RELAY")
        .unwrap()
        .get_by_name("r");
    let call = tokio::spawn(async move { relay.write_then_call("target".into()).await });
    let (_, relay_ack) = captured.commit_holding("relayed").await;
    // Held: the target receives nothing, so no commit of it (its constructor's or the
    // call's) reaches the observer.
    let early = tokio::time::timeout(Duration::from_millis(200), captured.commits.recv()).await;
    assert!(
        early.is_err(),
        "the target ran before the caller's write was acknowledged"
    );
    relay_ack.acknowledge();
    let (commit, ack) = captured.commit_holding("called-marker").await;
    assert_eq!(commit.class(), "Store");
    ack.acknowledge();
    bounded(call).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_commit_the_observer_fails_fails_its_callers_and_resets_the_object() {
    let mut captured = start(Answer::Forward, |b| b);
    let stub = store(&captured.test, "refused");
    let call = tokio::spawn({
        let stub = stub.clone();
        async move { stub.put("k".into(), "refused-marker".into()).await }
    });
    let (_, ack) = captured.commit_holding("refused-marker").await;
    ack.fail(Error::new(ErrorKind::Storage, "the replica is unreachable"));
    let err = bounded(call).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err:?}");
    assert!(
        err.message().contains("the replica is unreachable"),
        "{err}"
    );
    assert!(err.message().contains("reset"), "{err}");

    // A dropped acknowledgement is a failure too.
    let call = tokio::spawn({
        let stub = stub.clone();
        async move { stub.put("k".into(), "dropped-marker".into()).await }
    });
    let (_, ack) = captured.commit_holding("dropped-marker").await;
    drop(ack);
    let err = bounded(call).await.unwrap().unwrap_err();
    assert!(
        err.message().contains("dropped its acknowledgement"),
        "{err}"
    );

    // The object works again once the observer acknowledges.
    let call = tokio::spawn({
        let stub = stub.clone();
        async move { stub.put("k".into(), "accepted-marker".into()).await }
    });
    let (_, ack) = captured.commit_holding("accepted-marker").await;
    ack.acknowledge();
    bounded(call).await.unwrap().unwrap();
}

#[tokio::test]
async fn every_commit_of_every_object_passes_in_order() {
    let captured = start(Answer::Acknowledge, |b| b);
    let names = ["a", "b"];
    for round in 0..5 {
        for name in names {
            let stub = store(&captured.test, name);
            stub.record(round).await.unwrap();
        }
    }
    // An alarm change is reported with its commit.
    let clock = captured
        .test
        .env()
        .namespace::<Clockwork>("CLOCKWORK")
        .unwrap()
        .get_by_name("alarmed");
    clock.set_alarm(4_000_000_000_000).await.unwrap();

    let seen = captured.recorder.seen.lock().unwrap().clone();
    for name in names {
        let id = store(&captured.test, name).id().to_string();
        let seqs: Vec<u64> = seen
            .iter()
            .filter(|(class, object, ..)| class == "Store" && *object == id)
            .map(|(_, _, seq, _)| *seq)
            .collect();
        assert!(seqs.len() >= 5, "{name}: {seqs:?}");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{name}: commits in order without gaps: {seqs:?}"
        );
    }
    assert!(seen.iter().all(|(.., frames)| *frames > 0));
    assert!(seen.iter().any(|(class, ..)| class == "Clockwork"));
}

#[tokio::test]
async fn the_commit_reports_an_alarm_it_changed() {
    let mut captured = start(Answer::Forward, |b| b);
    let clock = captured
        .test
        .env()
        .namespace::<Clockwork>("CLOCKWORK")
        .unwrap()
        .get_by_name("alarm-capture");
    let call = tokio::spawn(async move { clock.set_alarm(4_000_000_000_000).await });
    let (commit, ack) = bounded(captured.commits.recv()).await.unwrap();
    assert_eq!(commit.class(), "Clockwork");
    assert_eq!(commit.alarm(), Some(Some(4_000_000_000_000)));
    ack.acknowledge();
    bounded(call).await.unwrap().unwrap();
}

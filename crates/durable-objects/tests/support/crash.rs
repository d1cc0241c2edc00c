//! Kill-and-restart harness for crash tests: re-runs this test binary as a child, collects
//! the writes it acknowledges, and kills it with SIGKILL at a random moment.

use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The crash children's writer: records `n`, `n + 1`, ... on `stub` forever, printing
/// `ack <name> <n>` after each acknowledged write (what [`run_child_and_kill`] reads).
pub async fn record_forever(
    stub: durable_objects::Stub<super::objects::Store>,
    name: String,
    mut n: i64,
) {
    use std::io::Write;
    loop {
        stub.record(n).await.unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "ack {name} {n}").unwrap();
        out.flush().unwrap();
        n += 1;
    }
}

/// A crash child's set-up: a runtime with every test class bound over `dir`, and a
/// two-thread driver for the writers.
pub fn child_runtime(dir: &str) -> (durable_objects::Runtime, tokio::runtime::Runtime) {
    let runtime = super::objects::bind_all(durable_objects::Runtime::builder().data_dir(dir))
        .build()
        .unwrap();
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (runtime, driver)
}

/// A number in `0..limit`, different on every call.
pub fn random_below(limit: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % limit
}

/// Runs the test `child_test` of this binary as a child process with `envs`, hands every
/// stdout line `ack <object> <value>` to `on_ack`, and kills the child with SIGKILL between
/// `kill_after_ms` milliseconds after its first ack. Returns how many acks it read.
pub fn run_child_and_kill(
    child_test: &str,
    envs: &[(&str, String)],
    kill_after_ms: std::ops::Range<u64>,
    mut on_ack: impl FnMut(&str, i64) + Send + 'static,
) -> usize {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (first_ack_tx, first_ack_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut count = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let parts: Vec<&str> = line.split_whitespace().collect();
            let ["ack", object, value] = parts[..] else {
                continue;
            };
            on_ack(object, value.parse().expect("numeric ack"));
            count += 1;
            if count == 1 {
                let _ = first_ack_tx.send(());
            }
        }
        count
    });
    first_ack_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the child acknowledged a write");
    let wait = kill_after_ms.start + random_below(kill_after_ms.end - kill_after_ms.start);
    // A channel nobody sends on: a pause without sleeping the thread by hand.
    let (_never, pause) = std::sync::mpsc::channel::<()>();
    let _ = pause.recv_timeout(Duration::from_millis(wait));
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("ack reader")
}

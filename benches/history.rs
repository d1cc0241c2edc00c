//! Durable writes with each home of the objects' history: no commit log, the local archive
//! (the default), and synchronous replication to PostgreSQL; on one hot object and over
//! 1,000 objects, in-process (RPC) and through the demo's HTTP route. Then what the archive
//! stores per write, and how long a restore of a 100 MB object takes from each log.
//!
//! Run with `cargo bench -p durable-benches --bench history` (it starts a throwaway
//! PostgreSQL from Debian's `postgresql` package). Every row is the median of three rounds
//! taken in this one run; data folders live under `target/bench-data/` (real fsyncs).

use std::path::Path;
use std::time::{Duration, Instant};

use durable_benches::{BenchStore, drive};
use durable_log::{CommitLog, LocalArchive, ObjectName, PostgresLog};
use durable_objects::CommitLogSetting;
use durable_objects::prelude::*;
use durable_server::config::{Config, Format};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CALLERS: usize = 64;
const ROUNDS: usize = 3;

fn bench_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&base).expect("bench data folder");
    tempfile::tempdir_in(base).expect("temp dir")
}

fn median(mut rates: Vec<f64>) -> (f64, f64, f64) {
    rates.sort_by(f64::total_cmp);
    (rates[0], rates[rates.len() / 2], rates[rates.len() - 1])
}

fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += bytes_under(&path);
        } else {
            total += entry.metadata().map_or(0, |m| m.len());
        }
    }
    total
}

/// A runtime over `dir` with `BenchStore` bound and the commit log `setting`.
fn store_runtime(dir: &Path, setting: &CommitLogSetting) -> (Runtime, Namespace<BenchStore>) {
    let runtime = Runtime::builder()
        .data_dir(dir)
        .bind::<BenchStore>("STORE")
        .commit_log(setting.clone())
        .build()
        .expect("runtime");
    let ns = runtime
        .env()
        .namespace::<BenchStore>("STORE")
        .expect("binding");
    (runtime, ns)
}

/// One measured configuration.
struct Row {
    shape: &'static str,
    log: &'static str,
    rates: (f64, f64, f64),
}

fn in_process(
    driver: &tokio::runtime::Runtime,
    log: &'static str,
    setting: &CommitLogSetting,
    rows: &mut Vec<Row>,
    archive_bytes: &mut Vec<(&'static str, f64)>,
) {
    for (shape, objects, calls) in [
        ("one hot object, in-process", 1usize, 40_000u64),
        ("1,000 objects, in-process", 1_000, 12_000),
    ] {
        let dir = bench_dir();
        let (runtime, ns) = store_runtime(dir.path(), setting);
        let stubs: Vec<Stub<BenchStore>> = if objects == 1 {
            vec![ns.get_by_name("hot")]
        } else {
            (0..objects)
                .map(|i| ns.get_by_name(&format!("o{i}")))
                .collect()
        };
        let write = |stub: Stub<BenchStore>, _| async move {
            stub.increment().await.expect("durable write");
        };
        let mut total = calls / 4;
        driver.block_on(drive(&stubs, CALLERS, calls / 4, write));
        let mut rates = Vec::new();
        for _ in 0..ROUNDS {
            let took = driver.block_on(drive(&stubs, CALLERS, calls, write));
            rates.push(calls as f64 / took.as_secs_f64());
            total += calls;
        }
        if matches!(setting, CommitLogSetting::Local) {
            let bytes = bytes_under(&dir.path().join("log/segments"));
            archive_bytes.push((shape, bytes as f64 / total as f64));
        }
        runtime.shutdown();
        rows.push(Row {
            shape,
            log,
            rates: median(rates),
        });
    }
}

/// `calls` POSTs to `paths` (round robin) over `CALLERS` keep-alive connections.
async fn http_load(addr: std::net::SocketAddr, paths: &[String], calls: u64) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let share = calls / CALLERS as u64 + u64::from((caller as u64) < calls % CALLERS as u64);
        let mine: Vec<String> = (0..paths.len().min(64))
            .map(|k| paths[(caller * 64 + k) % paths.len()].clone())
            .collect();
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut buffer = Vec::with_capacity(4096);
            for n in 0..share {
                let path = &mine[(n as usize) % mine.len()];
                let request =
                    format!("POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n");
                stream.write_all(request.as_bytes()).await.expect("send");
                read_response(&mut stream, &mut buffer).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("caller");
    }
    started.elapsed()
}

/// Reads one response (head and `Content-Length` body) and checks it is a 200.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).expect("head");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buffer.len() < total {
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "connection closed");
                buffer.extend_from_slice(&chunk[..n]);
            }
            buffer.drain(..total);
            return;
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn over_http(
    driver: &tokio::runtime::Runtime,
    log: &'static str,
    extra: &str,
    rows: &mut Vec<Row>,
) {
    for (shape, objects, calls) in [
        ("one hot object, HTTP", 1usize, 30_000u64),
        ("1,000 objects, HTTP", 1_000, 10_000),
    ] {
        let dir = bench_dir();
        let text = durable_demo::BUILT_IN_CONFIG.replace(
            "\"data_dir\": \".durable\",",
            &format!("\"data_dir\": \".durable\", {extra}"),
        );
        let config = Config::parse(&text, Format::Jsonc).expect("config");
        let builder = durable_server::Server::builder(config)
            .data_dir(dir.path())
            .class::<durable_demo::objects::Counter>()
            .class::<durable_demo::objects::KvStore>()
            .class::<durable_demo::objects::AlarmClock>()
            .class::<durable_demo::objects::ChatRoom>()
            .router(durable_demo::routes::router);
        let server = driver
            .block_on(durable_server::testing::start_server(builder))
            .expect("server");
        let addr = server.addr();
        let paths: Vec<String> = (0..objects)
            .map(|i| format!("/counter/c{i}/increment"))
            .collect();
        driver.block_on(http_load(addr, &paths, calls / 4));
        let mut rates = Vec::new();
        for _ in 0..ROUNDS {
            let took = driver.block_on(http_load(addr, &paths, calls));
            rates.push(calls as f64 / took.as_secs_f64());
        }
        driver.block_on(server.stop()).expect("stop");
        rows.push(Row {
            shape,
            log,
            rates: median(rates),
        });
    }
}

/// Writes a 100 MB object (100 commits of 1 MB) with `setting`; returns its log name.
fn big_object(
    driver: &tokio::runtime::Runtime,
    dir: &Path,
    setting: &CommitLogSetting,
) -> ObjectName {
    let (runtime, ns) = store_runtime(dir, setting);
    let stub = ns.get_by_name("big");
    for _ in 0..100 {
        driver.block_on(stub.grow(1 << 20)).expect("grow");
    }
    let name = ObjectName {
        class: "BenchStore".into(),
        id: *ns.id_from_name("big").as_bytes(),
    };
    runtime.shutdown();
    name
}

/// Seconds to rebuild `object` from `log` and install it; and its size.
fn restore_time(log: &dyn CommitLog, object: &ObjectName, into: &Path) -> (f64, u64) {
    let started = Instant::now();
    let head = log.head(object).expect("head");
    let (image, _) = durable_log::image_at(log, object, head.seq).expect("image");
    durable_storage::install_database(&into.join("restored.sqlite"), &image).expect("install");
    (started.elapsed().as_secs_f64(), image.len() as u64)
}

fn main() {
    let pg = durable_pgtemp::TempPostgres::start()
        .unwrap_or_else(|err| panic!("a throwaway PostgreSQL server starts: {err}"));
    let url = pg.url();
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("driver runtime");
    let configurations: [(&'static str, CommitLogSetting, String); 3] = [
        (
            "no log",
            CommitLogSetting::Off,
            r#""commit_log": "off","#.into(),
        ),
        ("local archive", CommitLogSetting::Local, String::new()),
        (
            "PostgreSQL",
            CommitLogSetting::Postgres { url: url.clone() },
            format!(r#""replication": {{"postgres": "{url}"}},"#),
        ),
    ];
    let mut rows = Vec::new();
    let mut archive_bytes = Vec::new();
    for (log, setting, extra) in &configurations {
        eprintln!("measuring {log}...");
        in_process(&driver, log, setting, &mut rows, &mut archive_bytes);
        over_http(&driver, log, extra, &mut rows);
    }
    println!("| shape | commit log | durable writes/s (median of {ROUNDS}) | range | vs no log |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        let base = rows
            .iter()
            .find(|r| r.shape == row.shape && r.log == "no log")
            .map_or(row.rates.1, |r| r.rates.1);
        println!(
            "| {} | {} | {:.0} | {:.0}–{:.0} | {:.2}× |",
            row.shape,
            row.log,
            row.rates.1,
            row.rates.0,
            row.rates.2,
            row.rates.1 / base
        );
    }
    println!();
    for (shape, bytes) in &archive_bytes {
        println!("archive bytes per write, {shape}: {bytes:.0}");
    }

    let scratch = bench_dir();
    let local = bench_dir();
    let object = big_object(&driver, local.path(), &CommitLogSetting::Local);
    let archive = LocalArchive::open(&local.path().join("log")).expect("archive");
    let (seconds, size) = restore_time(&archive, &object, scratch.path());
    println!(
        "restore of a {:.0} MB object from the local archive: {seconds:.2} s",
        size as f64 / 1e6
    );
    // Its history folded into a snapshot (as retention does once it leaves the window).
    let started = Instant::now();
    let folded = durable_log::compact(&archive, i64::MAX, |_, _| {}).expect("compact");
    let compact_seconds = started.elapsed().as_secs_f64();
    let (seconds, _) = restore_time(&archive, &object, scratch.path());
    println!(
        "folding its {} records into a snapshot: {compact_seconds:.2} s ({} segment files, {:.0} MB freed); restore from the snapshot: {seconds:.2} s",
        folded.records,
        folded.reclaimed.files,
        folded.reclaimed.bytes as f64 / 1e6
    );
    let replicated = bench_dir();
    let object = big_object(
        &driver,
        replicated.path(),
        &CommitLogSetting::Postgres { url: url.clone() },
    );
    let log = PostgresLog::open_existing(&url).expect("log");
    let (seconds, size) = restore_time(&log, &object, scratch.path());
    println!(
        "restore of a {:.0} MB object from PostgreSQL: {seconds:.2} s",
        size as f64 / 1e6
    );
}

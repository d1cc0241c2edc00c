//! Counters and a tally: typed RPC to named objects, from many callers at once, and from one
//! object to others, with each counter's value in its own SQLite database.
//!
//! ```text
//! cargo run --release -p durable-examples   # data in ./.durable; run it twice: values persist
//! cargo run --release -p durable-examples -- --data /tmp/demo --callers 16
//! ```
//!
//! Every increment is a durable write: its reply leaves only once the write is on disk.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use durable_objects::prelude::*;

/// One counter, kept in a one-row SQL table of the object's own database.
#[durable_object]
struct Counter {
    state: State,
}

impl DurableObject for Counter {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    /// The schema, before the first call: a failure fails that call instead of panicking.
    async fn init(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
            (),
        )?;
        Ok(())
    }
}

#[rpc]
impl Counter {
    /// Adds `by` and returns the new value; an increment that would overflow is refused and
    /// changes nothing.
    pub(crate) async fn increment(&self, by: i64) -> Result<i64> {
        if by < 0 {
            return Err(Error::user(format!(
                "increment by {by}: counters only go up"
            )));
        }
        // Read, check, write, with no await between: nothing interleaves.
        let current = self.value().await?;
        let value = current.checked_add(by).ok_or_else(|| {
            Error::user(format!(
                "{current} + {by} overflows the counter; nothing was changed"
            ))
            .with_code("overflow")
        })?;
        self.state.storage().sql().exec(
            "INSERT INTO counter (id, value) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET value = excluded.value",
            (value,),
        )?;
        Ok(value)
    }

    /// The current value (0 for a new counter).
    pub(crate) async fn value(&self) -> Result<i64> {
        let mut rows = self
            .state
            .storage()
            .sql()
            .exec("SELECT value FROM counter", ())?;
        match rows.next() {
            Some(row) => Ok(row.get("value")?),
            None => Ok(0),
        }
    }

    /// Remembers who visited last, in the KV API.
    pub(crate) async fn set_last_visitor(&self, who: String) -> Result<()> {
        self.state.storage().put("last_visitor", &who).await
    }

    /// Who visited last.
    pub(crate) async fn last_visitor(&self) -> Result<Option<String>> {
        self.state.storage().get("last_visitor").await
    }

    /// The name this counter was addressed by.
    pub(crate) async fn own_name(&self) -> Option<String> {
        self.state.id().name().map(str::to_owned)
    }
}

/// Sums counters by calling them: one object calling others.
#[durable_object]
struct Tally {
    env: Env,
}

impl DurableObject for Tally {
    fn new(_state: State, env: Env) -> Self {
        Self { env }
    }
}

#[rpc]
impl Tally {
    /// The sum of the named counters.
    pub(crate) async fn sum(&self, names: Vec<String>) -> Result<i64> {
        let counters = self.env.namespace::<Counter>("COUNTER")?;
        let mut total: i64 = 0;
        for name in names {
            let value = counters.get_by_name(&name).value().await?;
            total = total.checked_add(value).ok_or_else(|| {
                Error::user("the sum of the counters overflows").with_code("overflow")
            })?;
        }
        Ok(total)
    }
}

struct Options {
    data: PathBuf,
    callers: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        data: PathBuf::from(".durable"),
        callers: 8,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data" => options.data = args.next().context("--data needs a folder")?.into(),
            "--callers" => {
                options.callers = args
                    .next()
                    .context("--callers needs a number")?
                    .parse()
                    .context("--callers needs a number")?;
            }
            other => bail!("unknown argument {other:?}; use --data DIR and --callers N"),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let runtime = Runtime::builder()
        .data_dir(&options.data)
        .bind::<Counter>("COUNTER")
        .bind::<Tally>("TALLY")
        .build()
        .with_context(|| format!("start the runtime on {}", options.data.display()))?;
    let env = runtime.env();
    let counters = env.namespace::<Counter>("COUNTER")?;

    // Many callers, one object: every increment lands on the same single instance.
    let calls_per_caller = 1_000;
    let visits = counters.get_by_name("visits");
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..options.callers {
        let visits = visits.clone();
        callers.spawn(async move {
            for _ in 0..calls_per_caller {
                visits.increment(1).await?;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(done) = callers.join_next().await {
        done??;
    }
    let total = options.callers * calls_per_caller;
    println!(
        "visits = {} after {total} more durable increments from {} callers in {:.1?}",
        visits.value().await?,
        options.callers,
        started.elapsed()
    );
    let previous = visits.last_visitor().await?;
    visits.set_last_visitor("counter example".into()).await?;
    println!("last visitor before this run: {previous:?}");

    // Ids: derived from names, stable for this data folder, and checked when parsed.
    println!(
        "visits id = {} (name {:?})",
        visits.id(),
        visits.own_name().await?
    );
    let parsed = counters.id_from_string(&visits.id().to_string())?;
    println!(
        "parsed id reaches the same object: {}",
        counters.get(&parsed).value().await?
    );
    match counters.id_from_string("not-an-id") {
        Ok(_) => bail!("a malformed id was accepted"),
        Err(err) => println!("malformed id refused: {err}"),
    }

    // Errors returned by an object come back typed.
    let err = visits
        .increment(-1)
        .await
        .expect_err("negative increments fail");
    println!("error from the object: {err} (remote: {})", err.is_remote());

    // One object calling others.
    for (name, by) in [("a", 1), ("b", 2), ("c", 3)] {
        counters.get_by_name(name).increment(by).await?;
    }
    let tally = env.namespace::<Tally>("TALLY")?.get_by_name("main");
    let sum = tally.sum(vec!["a".into(), "b".into(), "c".into()]).await?;
    println!("tally of a, b, c = {sum}");

    runtime.shutdown();
    Ok(())
}

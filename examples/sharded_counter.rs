//! Pattern: **sharding a hot key over N objects by name** — one object handles its events
//! one at a time (about a thousand a second), so a key written by everyone at once (a
//! global like counter) is spread over `N` objects named `key#0` … `key#N-1`. Writes go to
//! one shard, picked by the caller; reads ask every shard at once and add up.
//!
//! ```text
//! cargo run -p durable-examples --example sharded_counter [-- --data DIR]
//! ```

#[path = "support.rs"]
mod support;

use std::hash::{BuildHasher, RandomState};

use durable_objects::prelude::*;

/// One shard of a counter.
#[durable_object]
pub(crate) struct CounterShard {
    state: State,
}

impl DurableObject for CounterShard {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl CounterShard {
    pub(crate) async fn add(&self, by: i64) -> Result<i64> {
        let kv = self.state.storage().kv();
        let value = kv.get::<i64>("value")?.unwrap_or(0) + by;
        kv.put("value", &value)?;
        Ok(value)
    }

    pub(crate) async fn value(&self) -> Result<i64> {
        Ok(self.state.storage().kv().get("value")?.unwrap_or(0))
    }
}

/// A counter spread over `shards` objects.
#[derive(Debug, Clone)]
pub(crate) struct ShardedCounter {
    namespace: Namespace<CounterShard>,
    key: String,
    shards: u32,
}

impl ShardedCounter {
    pub(crate) fn new(env: &Env, key: &str, shards: u32) -> Result<Self> {
        if shards == 0 || shards > 1024 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a counter has 1 to 1024 shards, not {shards}"),
            ));
        }
        Ok(Self {
            namespace: env.namespace::<CounterShard>("SHARDS")?,
            key: key.to_owned(),
            shards,
        })
    }

    fn shard(&self, index: u32) -> Stub<CounterShard> {
        self.namespace.get_by_name(&format!("{}#{index}", self.key))
    }

    /// Adds `by` on a shard picked at random (a caller may pick by its own id instead, to
    /// keep its writes ordered).
    pub(crate) async fn add(&self, by: i64) -> Result<()> {
        let index = (RandomState::new().hash_one(std::time::Instant::now())
            % u64::from(self.shards)) as u32;
        self.shard(index).add(by).await?;
        Ok(())
    }

    /// The total: every shard is asked at once.
    pub(crate) async fn total(&self) -> Result<i64> {
        let reads: Vec<_> = (0..self.shards)
            .map(|index| {
                let shard = self.shard(index);
                tokio::spawn(async move { shard.value().await })
            })
            .collect();
        let mut total = 0;
        for read in reads {
            total += read
                .await
                .map_err(|_| Error::new(ErrorKind::Internal, "a shard read was cancelled"))??;
        }
        Ok(total)
    }

    /// Each shard's value, for inspection.
    pub(crate) async fn per_shard(&self) -> Result<Vec<i64>> {
        let mut values = Vec::new();
        for index in 0..self.shards {
            values.push(self.shard(index).value().await?);
        }
        Ok(values)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (data, _temp) = support::data_dir();
    run(&data, &mut std::io::stdout()).await
}

/// The scenario, writing what it shows to `out`.
async fn run(data: &std::path::Path, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let runtime = Runtime::builder()
        .data_dir(data)
        .bind::<CounterShard>("SHARDS")
        .build()?;
    let likes = ShardedCounter::new(&runtime.env(), "likes", 8)?;
    let writers: Vec<_> = (0..2_000)
        .map(|_| {
            let likes = likes.clone();
            tokio::spawn(async move { likes.add(1).await })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    writeln!(out, "likes = {} over 8 shards", likes.total().await?)?;
    writeln!(out, "per shard: {:?}", likes.per_shard().await?)?;
    runtime.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::TestEnv;

    fn env() -> TestEnv {
        TestEnv::new(|runtime| runtime.bind::<CounterShard>("SHARDS")).unwrap()
    }

    #[tokio::test]
    async fn concurrent_adds_are_all_counted_and_spread() {
        let test = env();
        let counter = ShardedCounter::new(&test.env(), "hot", 4).unwrap();
        let adds: Vec<_> = (0..400)
            .map(|_| {
                let counter = counter.clone();
                tokio::spawn(async move { counter.add(1).await })
            })
            .collect();
        for add in adds {
            add.await.unwrap().unwrap();
        }
        assert_eq!(counter.total().await.unwrap(), 400);
        let shards = counter.per_shard().await.unwrap();
        assert_eq!(shards.iter().sum::<i64>(), 400);
        assert!(
            shards.iter().filter(|n| **n > 0).count() >= 2,
            "the writes were spread: {shards:?}"
        );
    }

    #[tokio::test]
    async fn keys_do_not_share_shards_and_totals_survive_a_restart() {
        let mut test = env();
        let a = ShardedCounter::new(&test.env(), "a", 3).unwrap();
        let b = ShardedCounter::new(&test.env(), "b", 3).unwrap();
        a.add(5).await.unwrap();
        b.add(7).await.unwrap();
        assert_eq!(a.total().await.unwrap(), 5);
        test.restart().unwrap();
        let b = ShardedCounter::new(&test.env(), "b", 3).unwrap();
        assert_eq!(b.total().await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_bad_shard_count_is_refused() {
        let test = env();
        for shards in [0, 1025] {
            let error = ShardedCounter::new(&test.env(), "x", shards).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
        }
    }

    #[tokio::test]
    async fn the_example_runs() {
        let data = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        run(data.path(), &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#"likes = 2000 over 8 shards"#), "{out}");
    }
}

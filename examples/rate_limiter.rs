//! Pattern: **a rate limiter** — one token bucket per key (an API key, a client address),
//! each bucket its own object, so every key is limited exactly, with no shared lock.
//!
//! ```text
//! cargo run -p durable-examples --example rate_limiter [-- --data DIR]
//! ```
//!
//! A bucket holds up to `CAPACITY` tokens and refills at `REFILL_PER_SECOND`; each request
//! takes `cost` tokens or is refused with the time to wait. The bucket is kept in the
//! object's storage (a restart does not hand every client a full bucket) and reads time from
//! the runtime's clock, so tests move time by hand.

#[path = "support.rs"]
mod support;

use durable_objects::prelude::*;
use serde::{Deserialize, Serialize};

/// Tokens a bucket holds when full.
pub(crate) const CAPACITY: f64 = 10.0;
/// Tokens added per second.
pub(crate) const REFILL_PER_SECOND: f64 = 5.0;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Decision {
    /// Whether the request may proceed.
    pub(crate) allowed: bool,
    /// Whole tokens left after it.
    pub(crate) remaining: u32,
    /// When refused: milliseconds until enough tokens are back.
    pub(crate) retry_after_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

/// One key's bucket.
#[durable_object]
pub(crate) struct RateLimiter {
    state: State,
    env: Env,
}

impl DurableObject for RateLimiter {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }
}

#[rpc]
impl RateLimiter {
    /// Takes `cost` tokens if the bucket has them. Refill, check and take happen with no
    /// await in between: concurrent requests for one key cannot both spend the last token.
    pub(crate) async fn try_take(&self, cost: u32) -> Result<Decision> {
        if cost == 0 || f64::from(cost) > CAPACITY {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("cost must be between 1 and {CAPACITY} tokens, got {cost}"),
            ));
        }
        let kv = self.state.storage().kv();
        let now = self.env.clock().now_ms();
        let mut bucket = kv.get::<Bucket>("bucket")?.unwrap_or(Bucket {
            tokens: CAPACITY,
            updated_ms: now,
        });
        let elapsed_s = (now - bucket.updated_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed_s * REFILL_PER_SECOND).min(CAPACITY);
        bucket.updated_ms = now;
        let cost = f64::from(cost);
        let decision = if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Decision {
                allowed: true,
                remaining: bucket.tokens.floor() as u32,
                retry_after_ms: 0,
            }
        } else {
            let missing = cost - bucket.tokens;
            Decision {
                allowed: false,
                remaining: bucket.tokens.floor() as u32,
                retry_after_ms: (missing / REFILL_PER_SECOND * 1000.0).ceil() as u64,
            }
        };
        kv.put("bucket", &bucket)?;
        Ok(decision)
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
        .bind::<RateLimiter>("LIMITER")
        .build()?;
    let limiters = runtime.env().namespace::<RateLimiter>("LIMITER")?;
    let alice = limiters.get_by_name("api-key:alice");
    let mut allowed = 0;
    let mut refused = None;
    for _ in 0..15 {
        let decision = alice.try_take(1).await?;
        if decision.allowed {
            allowed += 1;
        } else if refused.is_none() {
            refused = Some(decision.retry_after_ms);
        }
    }
    writeln!(out, "alice: {allowed} of 15 requests allowed in a burst")?;
    if let Some(wait) = refused {
        writeln!(out, "alice: the first refusal says retry after {wait} ms")?;
    }
    let bob = limiters.get_by_name("api-key:bob").try_take(1).await?;
    writeln!(out, "bob, another key: allowed = {}", bob.allowed)?;
    match alice.try_take(0).await {
        Err(error) => writeln!(out, "cost 0 refused: {}", error.message())?,
        Ok(decision) => anyhow::bail!("cost 0 was accepted: {decision:?}"),
    }
    runtime.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::TestEnv;

    fn limiter(test: &TestEnv, key: &str) -> Stub<RateLimiter> {
        test.env()
            .namespace::<RateLimiter>("LIMITER")
            .unwrap()
            .get_by_name(key)
    }

    fn env() -> TestEnv {
        TestEnv::new(|runtime| runtime.bind::<RateLimiter>("LIMITER")).unwrap()
    }

    #[tokio::test]
    async fn a_burst_is_limited_to_the_capacity_then_refills_with_time() {
        let test = env();
        let key = limiter(&test, "k");
        for left in (0..10).rev() {
            let decision = key.try_take(1).await.unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, left);
        }
        let refused = key.try_take(1).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(
            refused.retry_after_ms, 200,
            "one token comes back every 200 ms"
        );
        test.clock().advance_ms(1_000);
        for _ in 0..5 {
            assert!(key.try_take(1).await.unwrap().allowed);
        }
        assert!(!key.try_take(1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn keys_are_limited_separately() {
        let test = env();
        assert!(limiter(&test, "a").try_take(10).await.unwrap().allowed);
        assert!(!limiter(&test, "a").try_take(1).await.unwrap().allowed);
        assert!(limiter(&test, "b").try_take(10).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn concurrent_requests_never_spend_more_than_the_bucket() {
        let test = env();
        let key = limiter(&test, "hot");
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let key = key.clone();
                tokio::spawn(async move { key.try_take(1).await.unwrap().allowed })
            })
            .collect();
        let mut allowed = 0;
        for call in calls {
            allowed += usize::from(call.await.unwrap());
        }
        assert_eq!(allowed, 10);
    }

    #[tokio::test]
    async fn a_bad_cost_is_refused_and_spends_nothing() {
        let test = env();
        let key = limiter(&test, "k");
        for cost in [0, 11] {
            let error = key.try_take(cost).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
            assert!(error.message().contains("between 1 and 10"), "{error}");
        }
        assert_eq!(key.try_take(1).await.unwrap().remaining, 9);
    }

    #[tokio::test]
    async fn a_restart_does_not_refill_the_bucket() {
        let mut test = env();
        assert!(limiter(&test, "k").try_take(10).await.unwrap().allowed);
        test.restart().unwrap();
        assert!(!limiter(&test, "k").try_take(1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn the_example_runs() {
        let data = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        run(data.path(), &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains(r#"alice: 10 of 15 requests allowed in a burst"#),
            "{out}"
        );
    }
}

//! `durable-demo`: counters, a key-value store, alarms and a live chat, served over HTTP.
//!
//! ```text
//! cargo run --release                                   # 127.0.0.1:8787, data in ./.durable
//! target/release/durable-demo --listen 127.0.0.1:0 --data /tmp/demo --config demo/wrangler.jsonc
//! ```
//!
//! The configuration is `--config FILE`, else `wrangler.jsonc`, `wrangler.json` or
//! `wrangler.toml` in the working directory, else the demo's own `wrangler.jsonc` built into
//! the binary. Once listening, the first line on stdout is `listening on http://ADDR`.

use std::process::ExitCode;

use durable_demo::{BUILT_IN_CONFIG, objects, routes};

#[tokio::main]
async fn main() -> ExitCode {
    durable_server::run_main("durable-demo", Some(BUILT_IN_CONFIG), |server| {
        server
            .class::<objects::Counter>()
            .class::<objects::KvStore>()
            .class::<objects::AlarmClock>()
            .class::<objects::ChatRoom>()
            .router(routes::router)
    })
    .await
}

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

use std::io::Write;
use std::process::ExitCode;

use durable_demo::{BUILT_IN_CONFIG, objects, routes};
use durable_server::cli::{Args, usage};
use durable_server::config::CONFIG_FILE_NAMES;
use durable_server::{Config, Server};

#[tokio::main]
async fn main() -> ExitCode {
    durable_server::init_logging();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("durable-demo: {err}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{}", usage("durable-demo"));
        return ExitCode::SUCCESS;
    }
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("durable-demo: {err}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Server::builder(config)
        .class::<objects::Counter>()
        .class::<objects::KvStore>()
        .class::<objects::AlarmClock>()
        .class::<objects::ChatRoom>()
        .router(routes::router);
    if let Some(listen) = args.listen {
        builder = builder.listen(listen);
    }
    if let Some(data) = args.data {
        builder = builder.data_dir(data);
    }
    let server = match builder.bind().await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("durable-demo: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    match server.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("durable-demo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(args: &Args) -> Result<Config, String> {
    if let Some(path) = &args.config {
        return Config::load(path).map_err(|err| err.to_string());
    }
    let here = std::env::current_dir().map_err(|err| format!("working directory: {err}"))?;
    if CONFIG_FILE_NAMES
        .iter()
        .any(|name| here.join(name).is_file())
    {
        return Config::discover(&here).map_err(|err| err.to_string());
    }
    Config::parse(BUILT_IN_CONFIG, false).map_err(|err| format!("built-in configuration: {err}"))
}

//! Starting a server binary from its command line: flags, `--help`, the configuration from
//! `--config`, the built-in fallback, and the errors a user gets for each mistake.
#![allow(clippy::unwrap_used)]

use durable_server::{ConfigError, Launch, ServerBuilder, ServerError};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const FALLBACK: &str = r#"{ "vars": { "FROM": "fallback" } }"#;

#[test]
fn help_and_bad_flags_are_answered_without_starting_anything() {
    match ServerBuilder::from_args("my-server", args(&["--help"]), Some(FALLBACK)) {
        Ok(Launch::Help(text)) => assert!(text.starts_with("usage: my-server"), "{text}"),
        other => panic!("expected help, got {other:?}"),
    }
    match ServerBuilder::from_args("my-server", args(&["--port", "1"]), Some(FALLBACK)) {
        Err(ServerError::Usage(error)) => assert!(error.to_string().contains("--port"), "{error}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn a_bad_config_file_names_the_file_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrangler.jsonc");
    std::fs::write(
        &file,
        "{\n  // comment\n  \"durable\": { \"shard\": 2 }\n}\n",
    )
    .unwrap();
    let err = ServerBuilder::from_args(
        "my-server",
        args(&["--config", file.to_str().unwrap()]),
        Some(FALLBACK),
    )
    .unwrap_err();
    let ServerError::Config(config) = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert_eq!(config.line(), Some(3));
    let text = err.to_string();
    assert!(
        text.contains("wrangler.jsonc, line 3: durable.shard"),
        "{text}"
    );
    let missing = ServerBuilder::from_args(
        "my-server",
        args(&["--config", dir.path().join("nope.toml").to_str().unwrap()]),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(missing, ServerError::Config(ConfigError::Read { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn the_fallback_config_and_the_flags_start_a_server() {
    // The tests run in the package folder, which holds no wrangler file: the fallback applies.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let launch = ServerBuilder::from_args(
        "my-server",
        args(&["--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()]),
        Some(FALLBACK),
    )
    .unwrap();
    let Launch::Serve(builder) = launch else {
        panic!("expected a server");
    };
    let server = builder.bind().await.unwrap();
    assert!(server.local_addr().ip().is_loopback());
    assert_ne!(server.local_addr().port(), 0);
    assert_eq!(server.env().var("FROM"), Some("fallback"));
    assert!(
        data.join("LOCK").exists(),
        "the data folder is the --data one"
    );
    // Without a fallback and without a file, the error says what to create.
    let err = ServerBuilder::from_args("my-server", args(&[]), None).unwrap_err();
    assert!(err.to_string().contains("wrangler.jsonc"), "{err}");
}

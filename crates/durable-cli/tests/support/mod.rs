//! Runs the `durable` binary as an operator does.
#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output};

/// `durable ARGS...`, waited for.
pub fn durable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(args)
        .output()
        .expect("the durable binary runs")
}

/// Its standard output and error, together.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `durable ARGS --json`, which must succeed: its report.
pub fn ok(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let output = durable(&all);
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(value["ok"], true, "{value}");
    value["report"].clone()
}

/// `durable ARGS`, which must fail (exit 2) saying `expected`.
pub fn refused(args: &[&str], expected: &str) {
    let output = durable(args);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
    assert!(
        text(&output).contains(expected),
        "{args:?}: {}",
        text(&output)
    );
}

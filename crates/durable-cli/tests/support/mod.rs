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

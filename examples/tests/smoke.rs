//! Runs each example binary as a user would and checks what it prints.

use std::process::Command;

#[test]
fn counter_example_runs() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_counter"))
        .args(["--data", data.path().to_str().unwrap(), "--callers", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "counter failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("visits = 4000 after 4000 more durable increments"),
        "{stdout}"
    );
    assert!(
        stdout.contains("last visitor before this run: None"),
        "{stdout}"
    );
    assert!(stdout.contains("(name Some(\"visits\"))"), "{stdout}");
    assert!(
        stdout.contains("parsed id reaches the same object: 4000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("malformed id refused: invalid durable object id"),
        "{stdout}"
    );
    assert!(
        stdout.contains("counters only go up (remote: true)"),
        "{stdout}"
    );
    assert!(stdout.contains("tally of a, b, c = 6"), "{stdout}");
    assert!(data.path().join("namespaces/Counter.key").exists());

    // A second run on the same data folder continues from the stored values.
    let again = Command::new(env!("CARGO_BIN_EXE_counter"))
        .args(["--data", data.path().to_str().unwrap(), "--callers", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "second run failed: {stdout}");
    assert!(
        stdout.contains("visits = 6000 after 2000 more durable increments"),
        "{stdout}"
    );
    assert!(
        stdout.contains("last visitor before this run: Some(\"counter example\")"),
        "{stdout}"
    );
    assert!(stdout.contains("tally of a, b, c = 12"), "{stdout}");
}

#[test]
fn counter_example_rejects_bad_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_counter"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument"));
}

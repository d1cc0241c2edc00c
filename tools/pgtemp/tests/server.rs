//! The throwaway server really runs: it answers queries, keeps its data through a restart
//! and through SIGKILL, and its folder is gone once it is dropped.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use durable_pgtemp::TempPostgres;

/// Runs `sql` with `psql` against `server`; its output without alignment.
fn psql(server: &TempPostgres, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &server.url(),
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs (Debian's postgresql-client)");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn the_server_answers_and_keeps_its_data_through_a_restart_and_a_kill() {
    let mut server = TempPostgres::start().unwrap();
    assert!(server.url().starts_with("postgres://postgres@127.0.0.1:"));
    assert_eq!(psql(&server, "SHOW fsync"), "on");
    psql(
        &server,
        "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)",
    );
    server.restart().unwrap();
    assert_eq!(psql(&server, "SELECT sum(n) FROM t"), "3");
    psql(&server, "INSERT INTO t VALUES (3)");
    server.kill().unwrap();
    assert!(!server.accepts_connections());
    server.start_again().unwrap();
    assert_eq!(
        psql(&server, "SELECT sum(n) FROM t"),
        "6",
        "committed rows survive a crash"
    );
    server.stop().unwrap();
}

#[test]
fn two_servers_run_side_by_side_and_each_cleans_up() {
    let first = TempPostgres::start().unwrap();
    let second = TempPostgres::start().unwrap();
    assert_ne!(first.port(), second.port());
    psql(&first, "CREATE TABLE only_here (x int)");
    assert_eq!(
        psql(
            &second,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"
        ),
        "0"
    );
    let port = first.port();
    drop(first);
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(refused.is_err(), "the dropped server stopped");
}

//! A throwaway PostgreSQL server for tests: [`TempPostgres::start`] runs `initdb` into a new
//! temporary folder and starts `postgres` from the system's binaries (Debian's `postgresql`
//! package) on a free port of 127.0.0.1, with `fsync` on, as a real deployment has it. It
//! stops when dropped (or with [`stop`](TempPostgres::stop)), and the folder is removed.
//! [`restart`](TempPostgres::restart) and [`kill`](TempPostgres::kill) serve the tests of
//! a database that goes away under load.
//!
//! PostgreSQL refuses to run as root; where the tests run as root (CI does), the server runs
//! as the `postgres` user the package creates (through `runuser`), in a folder handed to it.
//!
//! A test that needs PostgreSQL and cannot find it fails with [`PgError::NotInstalled`],
//! which names the package to install: it never passes by skipping.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// How long a start or a stop may take before it is an error.
const PATIENCE: Duration = Duration::from_secs(60);

/// What can go wrong starting or stopping the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The server's programs are not on this machine.
    #[error(
        "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH): install Debian's `postgresql` package (apt-get install postgresql)"
    )]
    NotInstalled,
    /// A program failed.
    #[error("{program} failed: {output}")]
    Command {
        /// Which program.
        program: String,
        /// What it printed.
        output: String,
    },
    /// The server did not become ready (or did not stop) in time.
    #[error("the PostgreSQL server {what} within {} s; its log: {log}", PATIENCE.as_secs())]
    Timeout {
        /// What it did not do.
        what: &'static str,
        /// The end of the server's log.
        log: String,
    },
    /// A file or a process could not be handled.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct TempPostgres {
    bin: PathBuf,
    folder: tempfile::TempDir,
    port: u16,
    as_root: bool,
    running: bool,
}

impl TempPostgres {
    /// Creates a cluster in a new temporary folder and starts its server on a free port of
    /// 127.0.0.1.
    pub fn start() -> Result<Self, PgError> {
        let bin = find_bin().ok_or(PgError::NotInstalled)?;
        let as_root = rustix::process::geteuid().is_root();
        let folder = tempfile::Builder::new().prefix("durable-pg-").tempdir()?;
        if as_root {
            run(
                "chown",
                Command::new("chown")
                    .arg("-R")
                    .arg(SERVER_USER)
                    .arg(folder.path()),
            )?;
        }
        let mut server = Self {
            bin,
            folder,
            port: 0,
            as_root,
            running: false,
        };
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(server.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run("initdb", &mut initdb)?;
        server.port = free_port()?;
        server.launch()?;
        Ok(server)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for the superuser `postgres` and its database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: connections are closed) and starts it again on the
    /// same port, with the same data.
    pub fn restart(&mut self) -> Result<(), PgError> {
        self.shut_down()?;
        self.launch()
    }

    /// Kills the server with SIGKILL, as a crash would; [`start_again`](Self::start_again)
    /// brings it back (PostgreSQL recovers from its WAL).
    pub fn kill(&mut self) -> Result<(), PgError> {
        if let Some(pid) = self.postmaster_pid() {
            run(
                "kill",
                Command::new("kill").args(["-KILL", &pid.to_string()]),
            )?;
            let deadline = Instant::now() + PATIENCE;
            while self.accepts_connections() || Path::new(&format!("/proc/{pid}")).exists() {
                if Instant::now() > deadline {
                    return Err(self.timeout("did not die"));
                }
                pause();
            }
        }
        self.running = false;
        // A killed postmaster leaves its pid file; the next start checks it is stale.
        Ok(())
    }

    /// Starts the server again after [`kill`](Self::kill).
    pub fn start_again(&mut self) -> Result<(), PgError> {
        self.launch()
    }

    /// Stops the server and removes its folder.
    pub fn stop(mut self) -> Result<(), PgError> {
        self.shut_down()
    }

    /// True if the server accepts TCP connections now.
    pub fn accepts_connections(&self) -> bool {
        TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    fn data(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.folder.path().join("server.log")
    }

    /// `program` from the server's bin folder, as the server's user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_USER, "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn launch(&mut self) -> Result<(), PgError> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on -c synchronous_commit=on -c max_connections=100",
            self.port,
            self.folder.path().display()
        );
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-o", &options, "-w", "-t", "60", "start"]);
        if let Err(error) = run("pg_ctl start", &mut pg_ctl) {
            return Err(match error {
                PgError::Command { program, output } => PgError::Command {
                    program,
                    output: format!("{output}\nserver log: {}", self.log_tail()),
                },
                other => other,
            });
        }
        self.running = true;
        let deadline = Instant::now() + PATIENCE;
        while !self.accepts_connections() {
            if Instant::now() > deadline {
                return Err(self.timeout("did not accept connections"));
            }
            pause();
        }
        Ok(())
    }

    fn shut_down(&mut self) -> Result<(), PgError> {
        if !self.running {
            return Ok(());
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run("pg_ctl stop", &mut pg_ctl)?;
        self.running = false;
        Ok(())
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn timeout(&self, what: &'static str) -> PgError {
        PgError::Timeout {
            what,
            log: self.log_tail(),
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.running && self.shut_down().is_err() {
            let _ = self.kill();
        }
    }
}

/// The bin folder of the newest PostgreSQL in `/usr/lib/postgresql`, else the folder of
/// `initdb` on `PATH`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

/// A short pause between two looks at another process's state (nothing notifies us of it:
/// the waits above poll the condition they need, with a deadline).
#[allow(clippy::disallowed_methods)]
fn pause() {
    std::thread::sleep(Duration::from_millis(10));
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, PgError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Runs `command`; an error with its output if it fails.
fn run(program: &str, command: &mut Command) -> Result<(), PgError> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(PgError::Command {
        program: program.to_owned(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

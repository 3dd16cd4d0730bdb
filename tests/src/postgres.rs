//! A real PostgreSQL server per test: the projections keep their read models in PostgreSQL,
//! and an in-memory stand-in would hide what matters (transactions, constraints, the wire
//! protocol). Each server is a throwaway cluster in a temporary directory, on a free loopback
//! port, so tests run in parallel without sharing a database, and never touch a PostgreSQL
//! the machine already runs. `fsync` is off for speed: that only risks data if the *machine*
//! crashes, which no test does. `synchronous_commit` stays on: with it off, a commit the
//! server acknowledged can vanish when the server process is killed, and the fault suite
//! kills it (the fault suite found exactly that).
//!
//! initdb and postgres refuse to run as root; as root (the test machines run tests as root)
//! both run as the `postgres` user through `runuser`. `runuser` keeps the server as its own
//! child, so killing our child would orphan the server: dropping a [`PostgresServer`] stops
//! it with `pg_ctl stop -m immediate` first, which waits until the server has exited.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::brokers::{Process, free_port, which_on_path};

/// The cluster's superuser; with `trust` authentication it needs no password.
const SUPERUSER: &str = "ackgate";
/// The user the server runs as when the tests run as root.
const OS_USER: &str = "postgres";
/// How long [`PostgresServer::start`] waits for the server to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A throwaway PostgreSQL cluster on a free loopback port, stopped when dropped.
pub struct PostgresServer {
    port: u16,
    bin: PathBuf,
    as_root: bool,
    process: Option<Process>,
    dir: TempDir,
}

impl PostgresServer {
    /// Creates a cluster in a temporary directory, starts it on a free port and waits until
    /// it accepts connections.
    pub async fn start() -> Result<Self> {
        let bin = bin_dir()?;
        let as_root = effective_uid()? == 0;
        let dir = tempfile::tempdir()?;
        if as_root {
            chown_to_os_user(dir.path())?;
        }
        let mut server = Self {
            port: free_port(),
            bin,
            as_root,
            process: None,
            dir,
        };
        server.initdb()?;
        server.spawn()?;
        server.wait_until_ready().await?;
        Ok(server)
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`: no checkpoint,
    /// backends killed; the next start runs crash recovery).
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Starts the server again on the same port with the same data, after [`Self::kill`].
    pub async fn restart(&mut self) -> Result<()> {
        self.spawn()?;
        self.wait_until_ready().await
    }

    /// The server's log so far (what it said about its clients, crash recovery, ...).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://ackgate@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let client = connect(&self.url("postgres")).await?;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
            .with_context(|| format!("CREATE DATABASE {quoted}"))?;
        Ok(self.url(name))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `program` from the binary directory, run as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_root {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", OS_USER, "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        // The `postgres` user may not be allowed into the working directory of the tests.
        command.current_dir(self.dir.path());
        command
    }

    fn initdb(&self) -> Result<()> {
        let mut command = self.command("initdb");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync"])
            // The C locale exists everywhere; a LANG naming a missing locale would fail.
            .args(["-E", "UTF8", "--locale=C"]);
        self.run_logged(&mut command, "initdb")
    }

    /// Runs `command` to completion with its output appended to the log file.
    fn run_logged(&self, command: &mut Command, what: &str) -> Result<()> {
        let log = open_log(&self.log_file())?;
        let status = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("cannot run {what} ({:?})", command.get_program()))?;
        if !status.success() {
            bail!("{what} failed ({status}):\n{}", self.log_tail());
        }
        Ok(())
    }

    /// Starts the server binary itself (not `pg_ctl`), so that it stays our child.
    fn spawn(&mut self) -> Result<()> {
        let port = self.port.to_string();
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &port, "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"]);
        self.process = Some(Process::spawn(&mut command, self.log_file())?);
        Ok(())
    }

    /// Connects until a connection succeeds: the port opens before the server accepts
    /// sessions ("the database system is starting up").
    async fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        let url = self.url("postgres");
        loop {
            let error = match connect(&url).await {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            if self.process.as_mut().is_none_or(Process::has_exited) {
                bail!("postgres exited on start:\n{}", self.log_tail());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "postgres did not accept connections on port {} within {READY_WITHIN:?} \
                     ({error:#}):\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server and all its backends (`pg_ctl` waits until they have exited), then
    /// reaps our child (the server itself, or `runuser` waiting for it).
    fn stop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        // Whether or not our child still runs: a server whose `runuser` was killed still
        // holds its pid file.
        if self.data_dir().join("postmaster.pid").exists() {
            let mut command = self.command("pg_ctl");
            command.arg("-D").arg(self.data_dir());
            command.args(["stop", "-m", "immediate", "-w", "-t", "10"]);
            if let Err(error) = self.run_logged(&mut command, "pg_ctl stop") {
                eprintln!("PostgreSQL on port {} may still run: {error:#}", self.port);
            }
        }
        process.kill();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connects to `url`, driving the connection on a spawned task.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("log file {}", path.display()))
}

/// `ACKGATE_PG_BIN_DIR` if set, else the newest `/usr/lib/postgresql/<N>/bin` with an
/// `initdb` (Debian's layout; `scripts/test` installs it), else the directory of `initdb`
/// on `PATH`.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ACKGATE_PG_BIN_DIR").map(PathBuf::from) {
        anyhow::ensure!(
            dir.join("initdb").is_file(),
            "ACKGATE_PG_BIN_DIR={} has no initdb; unset it to let ./scripts/test find \
             (or install) PostgreSQL",
            dir.display()
        );
        return Ok(dir);
    }
    newest_debian_bin_dir(Path::new("/usr/lib/postgresql"))
        .or_else(|| which_on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))
        .context(
            "no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin or on PATH; \
             run ./scripts/test, which installs them, or set ACKGATE_PG_BIN_DIR",
        )
}

fn newest_debian_bin_dir(root: &Path) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Some((version(&entry.file_name())?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// `15` → `[15]`, `9.6` → `[9, 6]`; `None` for anything else.
fn version(name: &OsStr) -> Option<Vec<u32>> {
    name.to_str()?.split('.').map(|n| n.parse().ok()).collect()
}

/// The effective uid, from `/proc/self/status` (no `unsafe` libc call), else from `id -u`.
fn effective_uid() -> Result<u32> {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // real, effective, saved, filesystem
            line.split_whitespace().nth(2)?.parse().ok()
        });
    if let Some(uid) = from_proc {
        return Ok(uid);
    }
    let output = Command::new("id").arg("-u").output().context("id -u")?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("the output of id -u")
}

/// Hands the cluster's directory to the `postgres` user, which initdb and the server run as.
fn chown_to_os_user(dir: &Path) -> Result<()> {
    let status = Command::new("chown")
        .args(["-R", OS_USER])
        .arg(dir)
        .status()
        .context("chown")?;
    anyhow::ensure!(
        status.success(),
        "chown -R {OS_USER} {} failed; as root the tests need a `{OS_USER}` user \
         (./scripts/test installs PostgreSQL, which creates it)",
        dir.display()
    );
    Ok(())
}

//! Real brokers as child processes: nats-server with JetStream on a free loopback port with
//! its data in a temporary directory, stoppable and restartable on the same port with the same
//! data (Apache Kafka is in [`crate::kafka_cluster`]), and the child-process handling both use.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `env` if set, else the newest copy `scripts/lib.sh` cached under `cache_glob`
/// (`~/.cache/ackgate/<prefix>*/bin/<name>`), else `name` on `PATH`.
fn binary(env: &str, name: &str, cache_prefix: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| cached(name, cache_prefix))
        .or_else(|| which_on_path(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn cached(name: &str, prefix: &str) -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME")?);
    let cache = home.join(".cache/ackgate");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| {
            dir.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .map(|dir| dir.join("bin").join(name))
        .filter(|bin| bin.is_file())
        .collect();
    found.sort();
    found.pop()
}

pub(crate) fn which_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Waits up to 10 s for `port` to accept connections.
pub(crate) async fn wait_for_port(port: u16, what: &str) -> Result<()> {
    wait_for_port_within(port, what, Duration::from_secs(10)).await
}

/// Waits up to `within` for `port` to accept connections.
pub(crate) async fn wait_for_port_within(port: u16, what: &str, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not listen on port {port} within {within:?}")
}

/// Waits while both the test process (`$1`) and the child (`$2`) live, then kills the child.
const WATCHDOG: &str = "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 1; done; kill -9 \"$2\" 2>/dev/null";

/// A child process killed when dropped.
pub struct Process {
    child: Option<Child>,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(command: &mut Command, log: PathBuf) -> Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("log file {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {:?}; run ./scripts/test, which installs it",
                    command.get_program()
                )
            })?;
        Ok(Self { child: Some(child) })
    }

    /// Like [`Self::spawn`], and also killed when this process dies without dropping it
    /// (a shared broker held in a `static`, a test binary that panicked or was interrupted):
    /// a small shell watchdog polls both pids and SIGKILLs the child once this process is gone.
    pub fn spawn_watched(command: &mut Command, log: PathBuf) -> Result<Self> {
        let process = Self::spawn(command, log)?;
        let child = process.pid().context("just started")?;
        let mut watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(child.to_string())
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the watchdog shell")?;
        std::thread::spawn(move || watchdog.wait());
        Ok(process)
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) with `kill`.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let child = self.child.as_ref().context("the process is not running")?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    /// The OS process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited on its own.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| child.try_wait().ok().flatten().is_some())
    }

    /// SIGKILL: the process gets no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nats-server with JetStream.
pub struct NatsServer {
    port: u16,
    dir: TempDir,
    process: Option<Process>,
}

impl NatsServer {
    /// Starts a server on a free port with JetStream storage in a temporary directory.
    pub async fn start() -> Result<Self> {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir()?,
            process: None,
        };
        server.restart().await?;
        Ok(server)
    }

    /// The server's OS process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref()?.pid()
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Freezes the server (SIGSTOP): clients stay connected, nothing is answered.
    pub fn pause(&self) -> Result<()> {
        self.process.as_ref().context("not running")?.signal("STOP")
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.process.as_ref().context("not running")?.signal("CONT")
    }

    /// Starts it again on the same port, with the same JetStream data.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let bin = binary("ACKGATE_NATS_SERVER_BIN", "nats-server", "nats-server-");
        let port = self.port.to_string();
        let store = self.dir.path().join("jetstream");
        let mut command = Command::new(bin);
        command
            .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
            .arg(&store);
        self.process = Some(Process::spawn(
            &mut command,
            self.dir.path().join("nats.log"),
        )?);
        wait_for_port(self.port, "nats-server").await
    }
}

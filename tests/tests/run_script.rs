//! `scripts/run` as a user runs it: it starts Apache Kafka, NATS and the three services, the
//! broker takes a transactional produce, and the script stops everything it started, whether
//! the whole process group gets a terminal's Ctrl-C, the script alone gets a SIGTERM, or the
//! brokers die first. The services run from this workspace's debug build (`scripts/test`
//! builds the binaries before the suite) so the test needs no release build.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use e2e_tests::brokers::free_port;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord, Producer},
};

const GRACE: Duration = Duration::from_secs(2);

/// `scripts/run` in a process group of its own, as a terminal runs a foreground job.
struct RunScript {
    child: Child,
    var: tempfile::TempDir,
    edge_port: u16,
    health_ports: [u16; 2],
}

impl RunScript {
    fn start() -> Self {
        let root = workspace_root();
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
        let bin_dir = target.join("debug");
        for bin in ["bl-service", "projections", "ackgate-edge"] {
            assert!(
                bin_dir.join(bin).is_file(),
                "{bin} is not built; run ./scripts/test, which builds the binaries first"
            );
        }
        let var = tempfile::tempdir().expect("a temporary directory");
        let (edge_port, health_ports) = (free_port(), [free_port(), free_port()]);
        let output = std::fs::File::create(var.path().join("run.out")).expect("output file");
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(root.join("scripts/run"))
                .env("ACKGATE_BIN_DIR", &bin_dir)
                .env("ACKGATE_VAR_DIR", var.path())
                .env("ACKGATE_EDGE_PORT", edge_port.to_string())
                .env("ACKGATE_NATS_PORT", free_port().to_string())
                .env("ACKGATE_KAFKA_PORT", free_port().to_string())
                .env("ACKGATE_KAFKA_CONTROLLER_PORT", free_port().to_string())
                .env(
                    "ACKGATE_BL_HTTP_ADDR",
                    format!("127.0.0.1:{}", health_ports[0]),
                )
                .env(
                    "ACKGATE_PROJECTIONS_HTTP_ADDR",
                    format!("127.0.0.1:{}", health_ports[1]),
                )
                .env("ACKGATE_SHUTDOWN_GRACE_MS", GRACE.as_millis().to_string())
                .env(
                    "ACKGATE_KAFKA_HEAP_OPTS",
                    "-Xms256m -Xmx512m -XX:+UseSerialGC",
                )
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("dup"))
                .stderr(output),
            0,
        )
        .spawn()
        .expect("scripts/run starts");
        Self {
            child,
            var,
            edge_port,
            health_ports,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.var.path().join("run.out")).unwrap_or_default()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.var.path().join(format!("log/{name}.log"))).unwrap_or_default()
    }

    /// Waits for the script's "ready" line, and for every service's `/ready`.
    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut ports = self.health_ports.to_vec();
        ports.push(self.edge_port);
        loop {
            let mut up = self.output().contains("ready; Ctrl-C stops everything");
            for port in &ports {
                let ready = format!("http://127.0.0.1:{port}/ready");
                up &= reqwest::get(&ready)
                    .await
                    .is_ok_and(|r| r.status().is_success());
            }
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "scripts/run did not get ready:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn kafka_bootstrap(&self) -> String {
        let config = std::fs::read_to_string(self.var.path().join("kafka/server.properties"))
            .expect("the script wrote the broker's config");
        config
            .lines()
            .find_map(|l| l.strip_prefix("advertised.listeners=PLAINTEXT://"))
            .expect("an advertised listener")
            .to_owned()
    }

    /// The pid of each process the script started, from `ps`: its children.
    fn children(&self) -> Vec<(u32, String)> {
        let out = Command::new("ps")
            .args(["-o", "pid=,comm=", "--ppid", &self.child.id().to_string()])
            .output()
            .expect("ps runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (pid, comm) = l.trim().split_once(' ')?;
                Some((pid.parse().ok()?, comm.trim().to_owned()))
            })
            .collect()
    }

    fn group_alive(&self) -> bool {
        Command::new("kill")
            .args(["-0", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits for the script and every process of its group to exit.
    async fn wait_for_everything_to_stop(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < within {
            let script_done = self.child.try_wait().ok().flatten().is_some();
            if script_done && !self.group_alive() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "still running after {within:?} (script exited: {:?}):\n{}",
            self.child.try_wait(),
            self.output()
        );
    }

    /// After a stop signal: everything exits within 40 s and nothing had to be killed.
    async fn stops_everything_cleanly(&mut self) {
        self.wait_for_everything_to_stop(Duration::from_secs(40))
            .await;
        assert!(
            !self.output().contains("did not stop within"),
            "a process had to be killed:\n{}",
            self.output()
        );
    }
}

impl Drop for RunScript {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn signal(target: &str, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {target}");
}

/// A transaction of one record, committed: what only a real transactional broker accepts.
async fn transactional_produce(bootstrap: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", "run-script-test")
        .create()
        .expect("a transactional producer");
    let timeout = Duration::from_secs(30);
    let producer =
        tokio::task::spawn_blocking(move || producer.init_transactions(timeout).map(|()| producer))
            .await
            .expect("joins")
            .expect("transactions initialised");
    producer.begin_transaction().expect("transaction begins");
    producer
        .send(
            FutureRecord::to("run-script-test").key("k").payload("v"),
            timeout,
        )
        .await
        .map_err(|(e, _)| e)
        .expect("record produced");
    tokio::task::spawn_blocking(move || producer.commit_transaction(timeout))
        .await
        .expect("joins")
        .expect("transaction committed");
}

#[tokio::test]
async fn the_run_script_serves_and_ctrl_c_stops_everything() {
    let mut run = RunScript::start();
    run.wait_until_ready().await;
    let accepted = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/officers", run.edge_port))
        .json(&e2e_tests::stack::officer("R-1001"))
        .send()
        .await
        .expect("the edge answers");
    let status = accepted.status();
    assert_eq!(status, 202, "{}", accepted.text().await.unwrap_or_default());
    transactional_produce(&run.kafka_bootstrap()).await;

    // A terminal's Ctrl-C: SIGINT to the whole foreground process group, brokers included.
    signal(&format!("-{}", run.child.id()), "INT");
    run.stops_everything_cleanly().await;
}

#[tokio::test]
async fn a_sigterm_to_the_script_alone_stops_everything() {
    let mut run = RunScript::start();
    run.wait_until_ready().await;

    // `kill <pid>` from another shell, or a supervisor stopping its main process: only the
    // script gets the signal, and the brokers and services must not outlive it.
    signal(&run.child.id().to_string(), "TERM");
    run.stops_everything_cleanly().await;
}

#[tokio::test]
async fn services_stop_within_their_grace_when_the_brokers_died_first() {
    let mut run = RunScript::start();
    run.wait_until_ready().await;
    let brokers: Vec<u32> = run
        .children()
        .into_iter()
        .filter(|(_, comm)| comm == "java" || comm == "nats-server")
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(brokers.len(), 2, "Kafka and NATS: {:?}", run.children());
    for pid in brokers {
        signal(&pid.to_string(), "KILL");
    }

    // The script notices a broker gone within a second and stops the services, which must
    // each finish within their grace period with nothing left to flush to.
    let took = run
        .wait_for_everything_to_stop(Duration::from_secs(30))
        .await;
    assert!(
        run.output().contains("exited unexpectedly"),
        "{}",
        run.output()
    );

    assert!(
        !run.output().contains("did not stop within"),
        "a service ignored its grace period:\n{}",
        run.output()
    );
    for service in ["bl-service", "projections", "edge"] {
        assert!(
            run.log(service).contains("stopped"),
            "{service} did not log its stop:\n{}",
            run.log(service)
        );
    }
    eprintln!("everything stopped {took:?} after SIGTERM");
}

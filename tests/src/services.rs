//! The three services as processes of their own (`ackgate-fault service <name>`, the same
//! `run_process` as their binaries), on a [`TestStack`]'s brokers and namespace, with extra
//! environment: for tests that read what one process alone logs, counts or exports.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;
use serde_json::Value;

use crate::{TestStack, brokers::Process, brokers::free_port, eventually};

/// The service names `ackgate-fault service` takes, which are also their OpenTelemetry
/// `service.name`s.
pub const SERVICES: [&str; 3] = ["bl-service", "projections", "ackgate-edge"];

/// One service process and where it answers HTTP.
struct Running {
    name: &'static str,
    http: String,
    log: PathBuf,
    _process: Process,
}

/// The three services, killed on drop.
pub struct ServiceProcesses {
    running: Vec<Running>,
}

impl ServiceProcesses {
    /// Starts the services with `env` added to the stack's settings, logs under `dir`, and
    /// waits until every one is ready.
    pub async fn start(
        stack: &TestStack,
        binary: &Path,
        env: &[(&str, String)],
        dir: &Path,
    ) -> Result<Self> {
        let settings = stack.bl_settings();
        let common = [
            ("ACKGATE_NATS_URL", settings.common.nats_url.clone()),
            ("ACKGATE_NAMESPACE", settings.common.namespace.to_string()),
            ("ACKGATE_KAFKA_BOOTSTRAP", settings.kafka.kafka_bootstrap),
            ("ACKGATE_TOPIC_REPLICATION", "1".to_owned()),
            ("RUST_LOG", "info,rdkafka=warn".to_owned()),
        ];
        let mut running = Vec::new();
        for name in SERVICES {
            let port = free_port();
            let mut command = std::process::Command::new(binary);
            command.args(["service", name]).envs(common.clone());
            command.env(address_variable(name), format!("127.0.0.1:{port}"));
            command.envs(env.iter().map(|(k, v)| (*k, v)));
            let log = dir.join(format!("{name}.log"));
            let process = Process::spawn_watched(&mut command, log.clone())?;
            running.push(Running {
                name,
                http: format!("http://127.0.0.1:{port}"),
                log,
                _process: process,
            });
        }
        let started = Self { running };
        for service in &started.running {
            wait_ready(&stack.http, &service.http, service.name).await;
        }
        Ok(started)
    }

    /// The base URL of `service`'s HTTP listener (the edge's API, or the health port).
    pub fn url(&self, service: &str) -> &str {
        self.find(service).map_or("", |s| s.http.as_str())
    }

    /// The lines `service` logged as JSON so far (other lines skipped).
    pub fn json_log(&self, service: &str) -> Vec<Value> {
        let text = self
            .find(service)
            .and_then(|s| std::fs::read_to_string(&s.log).ok())
            .unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn find(&self, service: &str) -> Option<&Running> {
        self.running.iter().find(|s| s.name == service)
    }
}

fn address_variable(service: &str) -> &'static str {
    match service {
        "bl-service" => "ACKGATE_BL_HTTP_ADDR",
        "projections" => "ACKGATE_PROJECTIONS_HTTP_ADDR",
        _ => "ACKGATE_EDGE_ADDR",
    }
}

async fn wait_ready(http: &reqwest::Client, base: &str, name: &str) {
    let url = format!("{base}/ready");
    eventually(
        Duration::from_secs(60),
        &format!("{name} ready"),
        || async {
            let response = http.get(&url).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
}

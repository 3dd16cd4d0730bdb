//! The system under fault: real brokers and every service as its own OS process, so each can
//! be SIGKILLed and restarted like a crashed container.
//!
//! The services run from the `ackgate-fault` binary itself (`ackgate-fault service <name>`),
//! which calls the same `run_process` as `bl-service`, `projections` and `ackgate-edge`;
//! that keeps `cargo test` able to run the suite without building the other packages' bins.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result};
use contracts::Names;
use serde::Serialize;

use crate::{
    KafkaCluster, NatsServer, PostgresServer,
    brokers::{Process, free_port, wait_for_port},
};

/// Something the chaos can kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Component {
    /// One Apache Kafka node (by index; its log directory survives kills).
    Kafka(usize),
    /// nats-server (JetStream file storage, survives kills).
    Nats,
    /// One bl-service instance.
    Bl(usize),
    /// The projections process.
    Projections,
    /// PostgreSQL, holding the read models (crash-stopped: backends killed, recovery on start).
    Postgres,
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kafka(n) => write!(f, "kafka-{}", n + 1),
            Self::Nats => f.write_str("nats"),
            Self::Bl(n) => write!(f, "bl-service-{n}"),
            Self::Projections => f.write_str("projections"),
            Self::Postgres => f.write_str("postgres"),
        }
    }
}

/// The run's deployment namespace: the services run with `ACKGATE_NAMESPACE` set, as two
/// environments sharing a cluster would.
const FAULT_NAMESPACE: &str = "fault";

/// How the services are configured for the run.
#[derive(Debug, Clone)]
pub struct ServiceTimings {
    /// The BL services' produce bound.
    pub produce_timeout: Duration,
    /// The edge's wait for a BL reply.
    pub command_timeout: Duration,
}

/// What a cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Officer-service instances.
    pub bl_instances: usize,
    /// Service timeouts.
    pub timings: ServiceTimings,
    /// Apache Kafka nodes: 1, or 3 for a replicated cluster.
    pub kafka_nodes: u32,
    /// Where the projections keep their read models.
    pub store: projections::StoreKind,
    /// A second edge, for the benchmark's Option A measurements (`RecordObservation`, the
    /// catalog's direct command), so its process is sampled apart from the first.
    pub direct_edge: bool,
}

/// Runs the service `name` as its own binary would, configured from the environment (as
/// in compose.yaml): how the suite's binaries start the services they supervise.
pub async fn serve_from_env(name: &str) -> Result<()> {
    use clap::Parser;
    let argv = [name];
    match name {
        "bl-service" => bl_services::run_process(bl_services::Settings::parse_from(argv)).await?,
        "projections" => projections::run_process(projections::Settings::parse_from(argv)).await?,
        "ackgate-edge" => edge::run_process(edge::Settings::parse_from(argv)).await?,
        other => anyhow::bail!("unknown service {other}"),
    }
    Ok(())
}

/// Environment given to every service on top of its own: the benchmark's observability
/// switches. Variables in `unset` are removed, so a switch the harness inherited cannot leak in.
#[derive(Debug, Clone, Default)]
pub struct ExtraEnv {
    /// Set on every service (after the service's own variables).
    pub set: Vec<(String, String)>,
    /// Removed from every service's inherited environment.
    pub unset: Vec<String>,
}

/// One service process and how to start it again.
struct Service {
    name: &'static str,
    env: Vec<(String, String)>,
    process: Option<Process>,
}

/// Brokers and services of one fault run.
pub struct Cluster {
    /// nats-server.
    pub nats: NatsServer,
    /// Apache Kafka.
    pub kafka: KafkaCluster,
    /// Topic, subject and bucket names in the run's namespace.
    pub names: Names,
    /// PostgreSQL, with the projections' read models.
    pub postgres: PostgresServer,
    database_url: String,
    store: projections::StoreKind,
    services: BTreeMap<String, Service>,
    extra_env: ExtraEnv,
    timings: ServiceTimings,
    bl_instances: usize,
    binary: PathBuf,
    logs: PathBuf,
    edge_port: u16,
    direct_edge_port: Option<u16>,
    /// Services that exited without being killed, restarted by [`Self::supervise`].
    pub unexpected_exits: u64,
}

impl Cluster {
    /// Starts the brokers, the topic, `bl_instances` officer services, the projections and
    /// the edge, with service logs under `logs`.
    pub async fn start(binary: &Path, logs: &Path, options: &ClusterOptions) -> Result<Self> {
        let (bl_instances, timings) = (options.bl_instances, &options.timings);
        let nats = NatsServer::start().await?;
        let kafka = KafkaCluster::start(options.kafka_nodes).await?;
        let names = Names::new(FAULT_NAMESPACE.parse()?);
        let replicas = kafka.size() as i32;
        bl_services::kafka::ensure_topic(&kafka.bootstrap(), &names.officer_events, 3, replicas)
            .await?;
        let postgres = PostgresServer::start().await?;
        let database_url = postgres.create_database("ackgate").await?;
        let mut cluster = Self {
            nats,
            kafka,
            names,
            postgres,
            database_url,
            store: options.store,
            services: BTreeMap::new(),
            extra_env: ExtraEnv::default(),
            timings: timings.clone(),
            bl_instances,
            binary: binary.to_owned(),
            logs: logs.to_owned(),
            edge_port: free_port(),
            direct_edge_port: options.direct_edge.then(free_port),
            unexpected_exits: 0,
        };
        cluster.start_services().await?;
        Ok(cluster)
    }

    /// Stops every service, then starts them all again (on new ports, logging under `logs`)
    /// in `namespace`, with `extra` in their environment; the brokers keep running. A fresh
    /// namespace gives the new services topics, buckets and consumer groups no earlier run
    /// has touched.
    pub async fn restart_services(
        &mut self,
        namespace: &str,
        extra: ExtraEnv,
        logs: &Path,
    ) -> Result<()> {
        self.services.clear();
        logs.clone_into(&mut self.logs);
        self.names = Names::new(namespace.parse()?);
        let replicas = self.kafka.size() as i32;
        let topic = &self.names.officer_events;
        bl_services::kafka::ensure_topic(&self.kafka.bootstrap(), topic, 3, replicas).await?;
        self.extra_env = extra;
        self.edge_port = free_port();
        self.direct_edge_port = self.direct_edge_port.map(|_| free_port());
        self.start_services().await
    }

    /// Defines and starts every service, and waits until the edges listen.
    async fn start_services(&mut self) -> Result<()> {
        self.define_services();
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in names {
            self.start_service(&name)?;
        }
        wait_for_port(self.edge_port, "the edge").await?;
        if let Some(port) = self.direct_edge_port {
            wait_for_port(port, "the direct edge").await?;
        }
        Ok(())
    }

    fn define_services(&mut self) {
        let (timings, extra_env) = (self.timings.clone(), self.extra_env.set.clone());
        let common = [
            ("ACKGATE_NATS_URL".to_owned(), self.nats.url()),
            ("ACKGATE_KAFKA_BOOTSTRAP".to_owned(), self.kafka.bootstrap()),
            (
                "ACKGATE_NAMESPACE".to_owned(),
                self.names.namespace.to_string(),
            ),
            ("RUST_LOG".to_owned(), "info,rdkafka=warn".to_owned()),
        ];
        let with = |extra: &[(&str, String)]| {
            let mut env = common.to_vec();
            env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            env.extend(extra_env.iter().cloned());
            env
        };
        let produce_ms = timings.produce_timeout.as_millis().to_string();
        for n in 0..self.bl_instances {
            let env = with(&[
                ("ACKGATE_BL_HTTP_ADDR", "127.0.0.1:0".to_owned()),
                ("ACKGATE_PRODUCE_TIMEOUT_MS", produce_ms.clone()),
            ]);
            self.define(Component::Bl(n).to_string(), "bl-service", env);
        }
        let store = match self.store {
            projections::StoreKind::Memory => "memory",
            projections::StoreKind::Postgres => "postgres",
        };
        let env = with(&[
            ("ACKGATE_PROJECTIONS_HTTP_ADDR", "127.0.0.1:0".to_owned()),
            ("ACKGATE_STORE", store.to_owned()),
            ("ACKGATE_DATABASE_URL", self.database_url.clone()),
        ]);
        self.define(Component::Projections.to_string(), "projections", env);
        let command_ms = timings.command_timeout.as_millis().to_string();
        let env = with(&[
            ("ACKGATE_EDGE_ADDR", format!("127.0.0.1:{}", self.edge_port)),
            ("ACKGATE_COMMAND_TIMEOUT_MS", command_ms),
        ]);
        self.define("edge".to_owned(), "ackgate-edge", env);
        if let Some(port) = self.direct_edge_port {
            let env = with(&[
                ("ACKGATE_EDGE_ADDR", format!("127.0.0.1:{port}")),
                ("ACKGATE_PRODUCE_TIMEOUT_MS", produce_ms),
            ]);
            self.define("edge-direct".to_owned(), "ackgate-edge", env);
        }
    }

    fn define(&mut self, key: String, name: &'static str, env: Vec<(String, String)>) {
        let service = Service {
            name,
            env,
            process: None,
        };
        self.services.insert(key, service);
    }

    fn start_service(&mut self, key: &str) -> Result<()> {
        let log = self.logs.join(format!("{key}.log"));
        let service = self.services.get_mut(key).context("unknown service")?;
        let mut command = Command::new(&self.binary);
        for name in &self.extra_env.unset {
            command.env_remove(name);
        }
        command
            .args(["service", service.name])
            .envs(service.env.iter().cloned());
        service.process = Some(Process::spawn(&mut command, log)?);
        Ok(())
    }

    /// Each running service process: its name and OS process id.
    pub fn service_pids(&self) -> Vec<(String, u32)> {
        self.services
            .iter()
            .filter_map(|(key, s)| Some((key.clone(), s.process.as_ref()?.pid()?)))
            .collect()
    }

    /// The brokers' processes (NATS, Kafka), as [`Self::service_pids`] names them.
    pub fn broker_pids(&self) -> Vec<(String, u32)> {
        let kafka = (0..self.kafka.size())
            .map(|n| (Component::Kafka(n).to_string(), self.kafka.node_pid(n)));
        std::iter::once(("nats-server".to_owned(), self.nats.pid()))
            .chain(kafka)
            .filter_map(|(name, pid)| Some((name, pid?)))
            .collect()
    }

    /// The edge's base URL.
    pub fn edge_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.edge_port)
    }

    /// The direct (Option A) edge's base URL, when [`ClusterOptions::direct_edge`] is set.
    pub fn direct_edge_url(&self) -> Option<String> {
        self.direct_edge_port
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// The bl-service settings an operator command would use against this cluster.
    pub fn ops_settings(&self, timings: &ServiceTimings) -> bl_services::Settings {
        use clap::Parser;
        let mut settings = bl_services::Settings::parse_from(["bl-service"]);
        settings.common.nats_url = self.nats.url();
        settings.common.namespace = self.names.namespace.clone();
        settings.kafka.kafka_bootstrap = self.kafka.bootstrap();
        settings.produce.produce_timeout = timings.produce_timeout;
        settings
    }

    /// Every component the chaos may kill.
    pub fn components(&self) -> Vec<Component> {
        let mut all: Vec<Component> = (0..self.kafka.size()).map(Component::Kafka).collect();
        all.push(Component::Nats);
        all.extend((0..self.bl_instances).map(Component::Bl));
        all.push(Component::Projections);
        all.push(Component::Postgres);
        all
    }

    /// SIGKILLs `component`.
    pub fn kill(&mut self, component: Component) {
        match component {
            Component::Kafka(n) => self.kafka.stop_node(n),
            Component::Nats => self.nats.stop(),
            Component::Postgres => self.postgres.kill(),
            service => {
                if let Some(s) = self.services.get_mut(&service.to_string()) {
                    s.process = None;
                }
            }
        }
    }

    /// Starts `component` again (brokers on the same port with the same data).
    pub async fn restart(&mut self, component: Component) -> Result<()> {
        match component {
            Component::Kafka(n) => self.kafka.restart_node(n).await,
            Component::Nats => self.nats.restart().await,
            Component::Postgres => self.postgres.restart().await,
            service => self.start_service(&service.to_string()),
        }
    }

    /// Restarts any service that exited on its own (as an orchestrator would), counting it.
    pub fn supervise(&mut self) -> Result<()> {
        let mut exited = Vec::new();
        for (key, service) in &mut self.services {
            if service.process.as_mut().is_some_and(Process::has_exited) {
                exited.push(key.clone());
            }
        }
        for key in exited {
            tracing::warn!(service = %key, "service exited on its own; restarting it");
            self.unexpected_exits += 1;
            self.start_service(&key)?;
        }
        Ok(())
    }
}

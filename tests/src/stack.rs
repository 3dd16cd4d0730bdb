//! The whole system for one test: its own NATS server, its own namespace on the test
//! binary's shared Apache Kafka (or a Kafka of its own), N bl-service instances, the
//! projections and the edge, in-process, each stoppable and restartable.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use contracts::{Names, Namespace};
use futures::StreamExt;
use runtime::{CommonArgs, KafkaArgs, LogFormat, ProduceArgs, TimelineArgs};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{KafkaCluster, NatsServer, PostgresServer, eventually, kafka};

/// How a test wants its stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Business-logic service instances started at once.
    pub bl_instances: usize,
    /// Whether to start the projections.
    pub projections: bool,
    /// An Apache Kafka of the test's own, for tests that stop or pause it; otherwise the
    /// test binary's shared broker, in a namespace of this stack's own.
    pub own_kafka: bool,
    /// The BL services' produce bound.
    pub produce_timeout: Duration,
    /// The edge's wait for a BL reply.
    pub command_timeout: Duration,
    /// The edge's body limit.
    pub body_limit_bytes: usize,
    /// How long the idempotency ledger remembers a command.
    pub ledger_retention: Duration,
    /// Read models in a PostgreSQL server of the stack's own (else in memory).
    pub postgres: bool,
    /// The projections' longest read-your-writes wait.
    pub read_wait_max: Duration,
    /// A directory of commands of the test's own, beside the shipped catalog
    /// (`ACKGATE_CATALOG_DIR`), loaded by every service of the stack.
    pub catalog_dir: Option<std::path::PathBuf>,
    /// The BL services write in Kafka transactions (the default).
    pub transactions: bool,
    /// Transactional producers per BL instance (the service's default, 4).
    pub transaction_lanes: u16,
    /// Every service records command timelines (the default).
    pub timeline: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            bl_instances: 1,
            projections: true,
            own_kafka: false,
            produce_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            body_limit_bytes: 16 * 1024,
            ledger_retention: Duration::from_secs(3600),
            postgres: false,
            read_wait_max: Duration::from_secs(2),
            catalog_dir: None,
            transactions: true,
            transaction_lanes: 4,
            timeline: true,
        }
    }
}

/// A service running in this process.
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn spawn<F>(run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Self { shutdown, task }
    }

    /// Graceful stop, as on SIGTERM.
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Brokers plus services, and clients to drive and inspect them.
pub struct TestStack {
    /// The NATS server.
    pub nats: NatsServer,
    /// Apache Kafka: shared by the test binary unless `StackOptions::own_kafka`.
    pub kafka: Arc<KafkaCluster>,
    /// This stack's topics, subjects and buckets, in a namespace of its own.
    pub names: Names,
    /// The PostgreSQL server, with `StackOptions::postgres`.
    pub postgres: Option<PostgresServer>,
    /// The read-model database, with `StackOptions::postgres`.
    pub database_url: Option<String>,
    /// What the stack was started with.
    pub options: StackOptions,
    bl: Vec<Running>,
    projections: Vec<Running>,
    edge: Option<Running>,
    edge_url: String,
    /// HTTP client for the edge.
    pub http: reqwest::Client,
    /// NATS client for inspection (service stats, silent responders).
    pub nats_client: async_nats::Client,
    /// Ports of the `/health` and `/ready` endpoints of every BL and projections instance
    /// started so far.
    pub health_ports: Vec<u16>,
}

impl TestStack {
    /// Starts brokers and services and waits until the BL instances are listening.
    pub async fn start(options: StackOptions) -> Result<Self> {
        crate::init_test_tracing();
        let nats = NatsServer::start().await?;
        let kafka = if options.own_kafka {
            Arc::new(KafkaCluster::start(1).await?)
        } else {
            KafkaCluster::shared().await?
        };
        let names = Names::new(unique_namespace());
        bl_services::kafka::ensure_topic(&kafka.bootstrap(), &names.officer_events, 3, 1).await?;
        let nats_client = async_nats::connect(nats.url()).await?;
        let (postgres, database_url) = if options.postgres {
            let server = PostgresServer::start().await?;
            let url = server.create_database("ackgate_read_models").await?;
            (Some(server), Some(url))
        } else {
            (None, None)
        };
        let mut stack = Self {
            nats,
            kafka,
            names,
            postgres,
            database_url,
            options: options.clone(),
            bl: Vec::new(),
            projections: Vec::new(),
            edge: None,
            edge_url: String::new(),
            http: reqwest::Client::new(),
            nats_client,
            health_ports: Vec::new(),
        };
        for _ in 0..options.bl_instances {
            stack.start_bl().await?;
        }
        if options.projections {
            stack.start_projections().await?;
        }
        stack.start_edge().await?;
        Ok(stack)
    }

    fn common(&self) -> CommonArgs {
        CommonArgs {
            nats_url: self.nats.url(),
            log_format: LogFormat::Text,
            namespace: self.names.namespace.clone(),
            shutdown_grace: Duration::from_secs(5),
            catalog_dir: self.options.catalog_dir.clone(),
            timeline: TimelineArgs {
                timeline: self.options.timeline,
                timeline_retention: Duration::from_secs(3600),
                instance: None,
            },
            metrics: true,
            otlp_endpoint: None,
        }
    }

    fn kafka_args(&self) -> KafkaArgs {
        KafkaArgs {
            kafka_bootstrap: self.kafka.bootstrap(),
        }
    }

    /// The bl-service settings of this stack.
    pub fn bl_settings(&self) -> bl_services::Settings {
        bl_services::Settings {
            common: self.common(),
            kafka: self.kafka_args(),
            http_addr: "127.0.0.1:0".parse().expect("valid address"),
            produce: ProduceArgs {
                produce_timeout: self.options.produce_timeout,
                linger_ms: 0,
            },
            topic_partitions: 3,
            topic_replication: 1,
            transactions: self.options.transactions,
            transaction_lanes: self.options.transaction_lanes,
            max_in_flight: 256,
            ledger_retention: self.options.ledger_retention,
            domains: Vec::new(),
            operation: None,
        }
    }

    /// Runs an `bl-service` operator command and returns its JSON output lines.
    pub async fn ops(&self, operation: bl_services::ops::Operation) -> Result<Vec<Value>> {
        run_ops(&self.bl_settings(), operation).await
    }

    /// Starts one more bl-service instance and waits until it answers `$SRV.PING`.
    pub async fn start_bl(&mut self) -> Result<()> {
        let app = bl_services::Application::build(self.bl_settings()).await?;
        self.health_ports.push(app.http_port());
        self.bl.push(Running::spawn(|shutdown| async move {
            app.run(shutdown).await.expect("officer service runs");
        }));
        let expected = self.bl.len();
        self.wait_for_instances(&self.names.domain_service("officer"), expected)
            .await;
        Ok(())
    }

    /// Starts an bl-service instance as a process of its own (`binary service
    /// bl-service`, the `ackgate-fault` binary), configured as the in-process ones, so
    /// a test can freeze it with SIGSTOP or kill it. Waits until it answers `$SRV.PING`.
    pub async fn spawn_bl_process(
        &self,
        binary: &std::path::Path,
        log: std::path::PathBuf,
    ) -> Result<crate::brokers::Process> {
        let settings = self.bl_settings();
        let env = [
            ("ACKGATE_NATS_URL", settings.common.nats_url.clone()),
            ("ACKGATE_NAMESPACE", settings.common.namespace.to_string()),
            (
                "ACKGATE_KAFKA_BOOTSTRAP",
                settings.kafka.kafka_bootstrap.clone(),
            ),
            ("ACKGATE_BL_HTTP_ADDR", "127.0.0.1:0".to_owned()),
            (
                "ACKGATE_PRODUCE_TIMEOUT_MS",
                settings.produce.produce_timeout.as_millis().to_string(),
            ),
            ("ACKGATE_TRANSACTIONS", settings.transactions.to_string()),
            ("RUST_LOG", "info,rdkafka=warn".to_owned()),
        ];
        let mut command = std::process::Command::new(binary);
        command.args(["service", "bl-service"]).envs(env);
        if let Some(dir) = &settings.common.catalog_dir {
            command.env("ACKGATE_CATALOG_DIR", dir);
        }
        let process = crate::brokers::Process::spawn(&mut command, log)?;
        let expected = self.bl.len() + 1;
        self.wait_for_instances(&self.names.domain_service("officer"), expected)
            .await;
        Ok(process)
    }

    /// Stops every bl-service instance (gracefully).
    pub async fn stop_all_bl(&mut self) {
        for running in self.bl.drain(..) {
            running.stop().await;
        }
    }

    /// The projections' settings in this stack (PostgreSQL store with
    /// `StackOptions::postgres`).
    pub fn projections_settings(&self) -> projections::Settings {
        use clap::Parser;
        let mut settings = projections::Settings::parse_from(["projections"]);
        settings.common = self.common();
        settings.kafka = self.kafka_args();
        settings.group_id = "e2e-projections".to_owned();
        settings.http_addr = "127.0.0.1:0".parse().expect("valid address");
        settings.apply_backoff = Duration::from_millis(10);
        settings.read_wait_max = self.options.read_wait_max;
        if let Some(url) = &self.database_url {
            settings.store = projections::StoreKind::Postgres;
            settings.database_url = url.clone();
        }
        settings
    }

    /// Starts one more projections instance (in memory: with empty read models, rebuilt
    /// from the topic) and waits until it answers `$SRV.PING`.
    pub async fn start_projections(&mut self) -> Result<()> {
        let app = projections::Application::build(self.projections_settings()).await?;
        self.health_ports.push(app.http_port());
        self.projections.push(Running::spawn(|shutdown| async move {
            app.run(shutdown).await.expect("projections run");
        }));
        let expected = self.projections.len();
        self.wait_for_instances(&self.names.projections_service, expected)
            .await;
        Ok(())
    }

    /// Stops every projections instance (gracefully); in-memory read models are gone.
    pub async fn stop_projections(&mut self) {
        for running in self.projections.drain(..) {
            running.stop().await;
        }
    }

    /// Stops the projections instance started `n`-th among those still running.
    pub async fn stop_projections_instance(&mut self, n: usize) {
        if n < self.projections.len() {
            self.projections.remove(n).stop().await;
        }
    }

    /// Runs a `projections` operator command and returns its JSON output lines.
    pub async fn projections_ops(
        &self,
        operation: projections::ops::Operation,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        projections::ops::run(&self.projections_settings(), operation, &mut out).await?;
        json_lines(&out)
    }

    async fn start_edge(&mut self) -> Result<()> {
        let settings = edge::Settings {
            common: self.common(),
            http_addr: "127.0.0.1:0".parse()?,
            body_limit_bytes: self.options.body_limit_bytes,
            command_timeout: self.options.command_timeout,
            query_timeout: self.options.read_wait_max + Duration::from_secs(3),
            topic_partitions: 3,
            topic_replication: 1,
            kafka: self.kafka_args(),
            produce: ProduceArgs {
                produce_timeout: self.options.produce_timeout,
                linger_ms: 0,
            },
        };
        let app = edge::Application::build(settings).await?;
        self.edge_url = format!("http://127.0.0.1:{}", app.port());
        self.edge = Some(Running::spawn(|shutdown| async move {
            app.run(shutdown).await.expect("edge runs");
        }));
        Ok(())
    }

    /// The edge's base URL.
    pub fn edge_url(&self) -> &str {
        &self.edge_url
    }

    /// `POST /v1/officers` with a JSON body and extra headers.
    pub async fn register(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).expect("json");
        self.post_raw("/v1/officers", bytes, "application/json", headers)
            .await
    }

    /// A command: `POST path` with a JSON body and extra headers.
    pub async fn send(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).expect("json");
        self.post_raw(path, bytes, "application/json", headers)
            .await
    }

    /// A POST with any body and content type.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.edge_url))
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("edge answers")
    }

    /// A GET on the edge.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.edge_url))
            .send()
            .await
            .expect("edge answers")
    }

    /// A GET on the edge that reads its own write: answered once `position` (a 202's
    /// `Ackgate-Event-Position`) is applied.
    pub async fn get_at(&self, path: &str, position: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.edge_url))
            .header(contracts::headers::http::MIN_POSITION, position)
            .send()
            .await
            .expect("edge answers")
    }

    /// The officer's view (`GET /v1/officers/{badge}`) and the outcomes of its history, in
    /// order.
    pub async fn officer_history(&self, badge: &str) -> (Value, Vec<String>) {
        let officer: Value = self
            .get(&format!("/v1/officers/{badge}"))
            .await
            .json()
            .await
            .expect("officer json");
        let outcomes = officer["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| h["outcome"].as_str().expect("outcome").to_owned())
            .collect();
        (officer, outcomes)
    }

    /// Waits until the command with this correlationId is projected, and returns its status.
    pub async fn wait_until_projected(&self, correlation_id: &str) -> Value {
        let path = format!("/v1/commands/{correlation_id}");
        eventually(
            Duration::from_secs(20),
            "the command to be projected",
            || async {
                let response = self.get(&path).await;
                if !response.status().is_success() {
                    return None;
                }
                let status: Value = response.json().await.ok()?;
                (status["status"] == "projected").then_some(status)
            },
        )
        .await
    }

    /// The end offsets of the officer topic, summed: records plus transaction markers, so 0
    /// means nothing at all was written.
    pub async fn topic_end_offsets(&self) -> i64 {
        self.end_offsets_of(&self.names.officer_events).await
    }

    /// The end offsets of `topic` (in the namespace), summed.
    pub async fn end_offsets_of(&self, topic: &str) -> i64 {
        let (bootstrap, topic) = (self.kafka.bootstrap(), topic.to_owned());
        tokio::task::spawn_blocking(move || kafka::end_offsets(&bootstrap, &topic))
            .await
            .expect("joins")
            .expect("watermarks")
    }

    /// A producer writing straight to this stack's officer topic.
    pub fn event_writer(&self) -> Result<crate::events::EventWriter> {
        crate::events::EventWriter::new(&self.kafka.bootstrap(), &self.names.officer_events)
    }

    /// Every record of the officer topic.
    pub async fn read_topic(&self) -> Vec<kafka::Record> {
        self.read_topic_named(&self.names.officer_events).await
    }

    /// Every record of `topic` (in the namespace).
    pub async fn read_topic_named(&self, topic: &str) -> Vec<kafka::Record> {
        let (bootstrap, topic) = (self.kafka.bootstrap(), topic.to_owned());
        tokio::task::spawn_blocking(move || kafka::read_all(&bootstrap, &topic))
            .await
            .expect("joins")
            .expect("topic readable")
    }

    /// `$SRV.STATS` of every instance of `service`: requests handled per instance.
    pub async fn requests_per_instance(&self, service: &str) -> Vec<u64> {
        self.service_replies(&format!("$SRV.STATS.{service}"))
            .await
            .iter()
            .map(|stats| {
                stats["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["num_requests"].as_u64().unwrap_or(0))
                    .sum()
            })
            .collect()
    }

    async fn wait_for_instances(&self, service: &str, count: usize) {
        let subject = format!("$SRV.PING.{service}");
        eventually(
            Duration::from_secs(20),
            &format!("{count} {service} instance(s)"),
            || async { (self.service_replies(&subject).await.len() >= count).then_some(()) },
        )
        .await;
    }

    /// Every reply to a `$SRV` request within a short window (one per instance).
    async fn service_replies(&self, subject: &str) -> Vec<Value> {
        service_replies(&self.nats_client, subject, Duration::from_millis(300)).await
    }
}

/// A namespace no other stack of this test binary uses (`t` and 12 hex digits).
pub fn unique_namespace() -> Namespace {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t{}", &id[..12])
        .parse()
        .expect("letters and digits make a namespace")
}

/// Runs an `bl-service` operator command with `settings` and returns its JSON output
/// lines.
pub async fn run_ops(
    settings: &bl_services::Settings,
    operation: bl_services::ops::Operation,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    bl_services::ops::run(settings, operation, &mut out).await?;
    json_lines(&out)
}

fn json_lines(out: &[u8]) -> Result<Vec<Value>> {
    out.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| Ok(serde_json::from_slice(line)?))
        .collect()
}

/// Every reply to a `$SRV` request (`$SRV.PING.<service>`, ...) within `window`: one per
/// instance of the service.
pub async fn service_replies(
    client: &async_nats::Client,
    subject: &str,
    window: Duration,
) -> Vec<Value> {
    let inbox = client.new_inbox();
    let Ok(replies) = client.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    if client
        .publish_with_reply(subject.to_owned(), inbox, "".into())
        .await
        .is_err()
    {
        return Vec::new();
    }
    replies
        .take_until(tokio::time::sleep(window))
        .filter_map(|reply| async move { serde_json::from_slice(&reply.payload).ok() })
        .collect()
        .await
}

/// The read-your-writes token a 202 carries (`Ackgate-Event-Position`).
pub fn event_position(accepted: &reqwest::Response) -> String {
    accepted.headers()[contracts::headers::http::EVENT_POSITION]
        .to_str()
        .expect("an ASCII position")
        .to_owned()
}

/// The JSON pointers of a problem's schema violations.
pub fn violation_pointers(problem: &Value) -> Vec<&str> {
    problem["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["pointer"].as_str().expect("pointer"))
        .collect()
}

/// A valid `RecordObservation` body: `badge` observed something at `observed_at`.
pub fn observation(badge: &str, observed_at: &str) -> Value {
    serde_json::json!({
        "badgeNumber": badge,
        "observedAt": observed_at,
        "location": { "latitude": 38.627, "longitude": -90.1994, "label": "Market St" },
        "text": format!("Observed at {observed_at}."),
    })
}

/// A valid `RegisterOfficer` body for `badge`.
pub fn officer(badge: &str) -> Value {
    serde_json::json!({
        "badgeNumber": badge,
        "firstName": "Ana",
        "lastName": "Reyes",
        "rank": "sergeant",
        "email": "ana.reyes@example.org",
        "hireDate": "2019-04-01"
    })
}

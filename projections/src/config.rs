//! Settings: flags with environment-variable fallbacks and local defaults.

use std::{net::SocketAddr, time::Duration};

use runtime::{CommonArgs, KafkaArgs, millis};

/// Where the read models live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In this process, rebuilt from the topic on every start (run one instance).
    Memory,
    /// In PostgreSQL (`--database-url`), durable and shared by every instance.
    Postgres,
}

/// The PostgreSQL of the read models, unless configured (`ACKGATE_DATABASE_URL`).
pub const DEFAULT_DATABASE_URL: &str = "postgres://ackgate@127.0.0.1:5432/ackgate";

/// Everything the projections process needs to know at start-up.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "projections",
    version,
    about = "Ackgate projections: read models and queries",
    args_override_self = true
)]
pub struct Settings {
    /// NATS and logging.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Kafka consumer group. Its committed offsets show the projection's lag; the store's
    /// own offsets decide where consumption resumes.
    #[arg(
        long,
        env = "ACKGATE_PROJECTIONS_GROUP",
        default_value = "ackgate-projections",
        global = true
    )]
    pub group_id: String,
    /// Address of the `/health` and `/ready` endpoints (port 0 picks a free one).
    #[arg(
        long,
        env = "ACKGATE_PROJECTIONS_HTTP_ADDR",
        default_value = "127.0.0.1:8082",
        global = true
    )]
    pub http_addr: SocketAddr,
    /// Read-model store.
    #[arg(
        long,
        env = "ACKGATE_STORE",
        value_enum,
        default_value = "memory",
        global = true
    )]
    pub store: StoreKind,
    /// PostgreSQL connection URL, for `--store postgres`.
    #[arg(
        long,
        env = "ACKGATE_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        global = true
    )]
    pub database_url: String,
    /// Attempts to apply an event the read model refuses, before it is parked.
    #[arg(
        long,
        env = "ACKGATE_APPLY_ATTEMPTS",
        default_value = "3",
        global = true
    )]
    pub apply_attempts: u32,
    /// Pause after the first refused attempt, doubled for each further one.
    #[arg(long = "apply-backoff-ms", env = "ACKGATE_APPLY_BACKOFF_MS", default_value = "50", value_parser = millis, global = true)]
    pub apply_backoff: Duration,
    /// Most records applied in one store transaction.
    #[arg(long, env = "ACKGATE_BATCH_MAX", default_value = "500", global = true)]
    pub batch_max: usize,
    /// Longest a read-your-writes query waits for its position to be applied. Keep it below
    /// the edge's query timeout, so the client gets `not-yet-projected`, not a timeout.
    #[arg(long = "read-wait-max-ms", env = "ACKGATE_READ_WAIT_MAX_MS", default_value = "2000", value_parser = millis, global = true)]
    pub read_wait_max: Duration,
    /// Longest a fetch waits at the broker for new records (`fetch.wait.max.ms`). Apache Kafka
    /// answers a waiting fetch as soon as records arrive, so this bounds idle polling, not
    /// latency; brokers that answer only when the wait ends need a few milliseconds here.
    #[arg(
        long = "fetch-wait-max-ms",
        env = "ACKGATE_FETCH_WAIT_MAX_MS",
        default_value = "500",
        global = true
    )]
    pub fetch_wait_max_ms: u32,
    /// Partitions of an events topic, when the projections create it (so a consumer joins
    /// its group with the topic already there, whichever service starts first).
    #[arg(
        long,
        env = "ACKGATE_TOPIC_PARTITIONS",
        default_value = "3",
        global = true
    )]
    pub topic_partitions: i32,
    /// Replication factor of an events topic, when the projections create it (-1: the
    /// cluster's `default.replication.factor`).
    #[arg(
        long,
        env = "ACKGATE_TOPIC_REPLICATION",
        default_value = "-1",
        allow_negative_numbers = true,
        global = true
    )]
    pub topic_replication: i32,
    /// Partitions of the dead-letter topic, when the projections create it.
    #[arg(
        long,
        env = "ACKGATE_DLQ_TOPIC_PARTITIONS",
        default_value = "1",
        global = true
    )]
    pub dlq_topic_partitions: i32,
}

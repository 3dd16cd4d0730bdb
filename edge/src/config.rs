//! Settings: flags with environment-variable fallbacks and local defaults.

use std::{net::SocketAddr, time::Duration};

use runtime::{CommonArgs, KafkaArgs, ProduceArgs, millis};

/// Everything the edge needs to know at start-up.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "ackgate-edge", version, about = "Ackgate REST edge")]
pub struct Settings {
    /// NATS and logging.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address the REST API listens on (port 0 picks a free one).
    #[arg(long, env = "ACKGATE_EDGE_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Largest accepted command body, in bytes.
    #[arg(long, env = "ACKGATE_BODY_LIMIT_BYTES", default_value_t = 16 * 1024)]
    pub body_limit_bytes: usize,
    /// Longest wait for a BL service's reply before answering 504. Keep it above the BL
    /// service's produce timeout, so a Kafka outage is reported as 503, not as a timeout.
    #[arg(long, env = "ACKGATE_COMMAND_TIMEOUT_MS", default_value = "10000", value_parser = millis)]
    pub command_timeout: Duration,
    /// Longest wait for a projection's answer to a query. Keep it above the projections'
    /// read-your-writes wait (2 s by default), so a position not yet applied is reported as
    /// `not-yet-projected`, not as a timeout.
    #[arg(long, env = "ACKGATE_QUERY_TIMEOUT_MS", default_value = "5000", value_parser = millis)]
    pub query_timeout: Duration,
    /// Partitions of a direct command's topic when the edge has to create it.
    #[arg(long, env = "ACKGATE_TOPIC_PARTITIONS", default_value_t = 3)]
    pub topic_partitions: i32,
    /// Replication factor of a direct command's topic when the edge has to create it (-1:
    /// the cluster's `default.replication.factor`).
    #[arg(long, env = "ACKGATE_TOPIC_REPLICATION", default_value_t = -1, allow_negative_numbers = true)]
    pub topic_replication: i32,
    /// Kafka, for the catalog's direct commands (Option A).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Producing direct commands.
    #[command(flatten)]
    pub produce: ProduceArgs,
}

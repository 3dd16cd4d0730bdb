//! Settings: flags with environment-variable fallbacks and local defaults.

use std::{net::SocketAddr, time::Duration};

use runtime::{CommonArgs, KafkaArgs, ProduceArgs, secs};

/// Everything the business-logic service needs to know at start-up.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "bl-service",
    version,
    about = "Ackgate business-logic service: the catalog's commands of one or more domains"
)]
pub struct Settings {
    /// NATS and logging.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Address of the `/health` and `/ready` endpoints (port 0 picks a free one).
    #[arg(long, env = "ACKGATE_BL_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    /// Produce timeout and batching.
    #[command(flatten)]
    pub produce: ProduceArgs,
    /// Domains (aggregate types) whose commands this instance serves, comma-separated
    /// (empty: every domain with a business-logic command in the catalog).
    #[arg(long, env = "ACKGATE_BL_DOMAINS", value_delimiter = ',')]
    pub domains: Vec<String>,
    /// Partitions of an event topic when this service has to create it.
    #[arg(long, env = "ACKGATE_TOPIC_PARTITIONS", default_value_t = 3)]
    pub topic_partitions: i32,
    /// Replication factor of an event topic when this service has to create it (-1: the
    /// cluster's `default.replication.factor`).
    #[arg(long, env = "ACKGATE_TOPIC_REPLICATION", default_value_t = -1, allow_negative_numbers = true)]
    pub topic_replication: i32,
    /// Write events in Kafka transactions, so that no crash, timeout or paused instance can
    /// ever leave a second record of one command (see the README). `false` keeps the
    /// idempotent producer alone: faster, but those windows can write a duplicate record
    /// (the projections still apply it once).
    #[arg(long, env = "ACKGATE_TRANSACTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub transactions: bool,
    /// Transactional producers per instance, committing side by side: a command goes to the
    /// least busy, so one's commit markers are written while another commits. Each is one
    /// Kafka client and one transactional id.
    #[arg(long, env = "ACKGATE_TRANSACTION_LANES", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub transaction_lanes: u16,
    /// Commands handled concurrently by one instance.
    #[arg(long, env = "ACKGATE_BL_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// How long the idempotency ledger remembers a command (seconds). A retry after that is
    /// a new command; its event carries the same eventId, so projections still apply it once.
    #[arg(long, env = "ACKGATE_LEDGER_RETENTION_SECS", default_value = "86400", value_parser = secs)]
    pub ledger_retention: Duration,
}

impl Settings {
    /// How long an attempt may stay pending before a retry on another instance takes it
    /// over: longer than the produce bound plus the ledger write grace, so a live attempt
    /// is never taken over.
    pub fn attempt_lease(&self) -> Duration {
        self.produce.produce_timeout + Duration::from_secs(6)
    }
}

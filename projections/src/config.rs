//! Settings: flags with environment-variable fallbacks and local defaults.

use std::net::SocketAddr;

use contracts::runtime::{CommonArgs, KafkaArgs};

/// Everything the projections process needs to know at start-up.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "projections",
    version,
    about = "Ackgate projections: read models and queries"
)]
pub struct Settings {
    /// NATS and logging.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Kafka consumer group. Its committed offsets show the projection's lag.
    #[arg(
        long,
        env = "ACKGATE_PROJECTIONS_GROUP",
        default_value = "ackgate-projections"
    )]
    pub group_id: String,
    /// Address of the `/health` and `/ready` endpoints (port 0 picks a free one).
    #[arg(
        long,
        env = "ACKGATE_PROJECTIONS_HTTP_ADDR",
        default_value = "127.0.0.1:8082"
    )]
    pub http_addr: SocketAddr,
}

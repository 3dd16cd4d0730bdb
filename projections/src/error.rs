//! The crate's error type: failures that stop the projections process.

/// Why projections could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] contracts::runtime::nats::ConnectFailed),
    /// The NATS service API refused to register the query service.
    #[error("cannot register the NATS query service: {0}")]
    NatsService(String),
    /// The Kafka consumer could not be created or subscribed.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The health endpoint could not bind or serve.
    #[error("health endpoint: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

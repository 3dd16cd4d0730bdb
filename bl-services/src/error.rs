//! The crate's error type. Request-level failures become problem replies (see
//! [`crate::officer`]); these are the failures that stop a service from starting.

/// Why the officer service could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] runtime::nats::ConnectFailed),
    /// The NATS service API refused to register the service.
    #[error("cannot register the NATS service: {0}")]
    NatsService(String),
    /// A JetStream key/value bucket (registry, ledger, dead-letter queue) could not be
    /// opened or created.
    #[error("cannot open the key/value bucket {0}: {1}")]
    Bucket(String, String),
    /// An operator command failed.
    #[error("{0}")]
    Operation(String),
    /// The Kafka client could not be created (bad configuration).
    #[error("cannot create the Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A shipped schema failed to compile.
    #[error(transparent)]
    Schema(#[from] contracts::schema::SchemaError),
    /// The health endpoint could not bind or serve.
    #[error("health endpoint: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's error type. Request-level failures become problem replies (see
//! [`crate::pipeline`]); these are the failures that stop a service from starting.

/// Why the business-logic service could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] runtime::nats::ConnectFailed),
    /// The NATS service API refused to register the service.
    #[error("cannot register the NATS service: {0}")]
    NatsService(String),
    /// A JetStream key/value bucket (aggregates, ledger, dead-letter queue) could not be
    /// opened or created.
    #[error("cannot open the key/value bucket {0}: {1}")]
    Bucket(String, String),
    /// The timeline's stream could not be created.
    #[error(transparent)]
    TimelineStream(#[from] runtime::timeline::StreamUnavailable),
    /// An operator command failed.
    #[error("{0}")]
    Operation(String),
    /// The Kafka client could not be created (bad configuration).
    #[error("cannot create the Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The catalog cannot be served: an invalid entry, or rules it lists that no handler
    /// judges.
    #[error("catalog: {0}")]
    Catalog(String),
    /// The health endpoint could not bind or serve.
    #[error("health endpoint: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

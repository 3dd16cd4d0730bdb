//! The crate's error type: failures that stop the edge. Failures of single requests are
//! problem responses (see [`crate::problem`]).

/// Why the edge could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] runtime::nats::ConnectFailed),
    /// The timeline's stream could not be created.
    #[error(transparent)]
    TimelineStream(#[from] runtime::timeline::StreamUnavailable),
    /// The catalog cannot be loaded.
    #[error(transparent)]
    Catalog(#[from] contracts::catalog::CatalogError),
    /// An API document could not be written (a defect).
    #[error("API document: {0}")]
    Document(String),
    /// The Kafka producer for direct commands could not be created.
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The listener could not bind or serve.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

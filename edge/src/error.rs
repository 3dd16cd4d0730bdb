//! The crate's error type: failures that stop the edge. Failures of single requests are
//! problem responses (see [`crate::problem`]).

/// Why the edge could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] runtime::nats::ConnectFailed),
    /// A direct command is unknown, or its schema does not compile.
    #[error("direct commands: {0}")]
    DirectCommands(String),
    /// The Kafka producer for direct commands could not be created.
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The listener could not bind or serve.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

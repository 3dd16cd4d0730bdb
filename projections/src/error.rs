//! The crate's error type: failures that stop the projections process or an operator
//! command, and failures of the read-model store (retried by the consumer).

/// Why projections could not start, keep running, or answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] runtime::nats::ConnectFailed),
    /// The NATS service API refused to register the query service, or an admin request
    /// failed.
    #[error("NATS service: {0}")]
    NatsService(String),
    /// A Kafka client could not be created, subscribed or assigned.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// PostgreSQL refused or dropped a statement.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The read model refused an event in an optimistic batch; the batch is applied again
    /// event by event (internal: never leaves the store).
    #[error("the read model refused an event: {0}")]
    Refused(String),
    /// A batch starts past the store's next offset of a partition: records in between were
    /// never applied (the store lost a commit, or the consumer skipped ahead). Nothing was
    /// applied; the consumer re-reads the partition from `expected`.
    #[error(
        "{topic}/{partition}: the store expects offset {expected}, the batch starts at {found}"
    )]
    Gap {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The store's next offset.
        expected: i64,
        /// The batch's first offset of the partition.
        found: i64,
    },
    /// The timeline's stream could not be created.
    #[error(transparent)]
    TimelineStream(#[from] runtime::timeline::StreamUnavailable),
    /// The catalog cannot be loaded.
    #[error(transparent)]
    Catalog(#[from] contracts::catalog::CatalogError),
    /// The read-model store is in a state it cannot work with.
    #[error("read-model store: {0}")]
    Store(String),
    /// The health endpoint could not bind or serve, or output could not be written.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

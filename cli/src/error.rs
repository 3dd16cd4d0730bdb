//! The crate's error type: why an `ackgate` command could not do what was asked.

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] runtime::nats::ConnectFailed),
    /// A running service did not answer, refused, or answered something unreadable.
    #[error(transparent)]
    Ask(#[from] runtime::nats::AskError),
    /// Nothing matches the id asked for.
    #[error("{0}")]
    NotFound(String),
    /// A business-logic operator command failed.
    #[error(transparent)]
    BlService(#[from] bl_services::Error),
    /// A projections operator command failed.
    #[error(transparent)]
    Projections(#[from] projections::Error),
    /// The arguments cannot work together, or a setting is invalid.
    #[error("{0}")]
    Usage(String),
    /// Output could not be written.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The Kafka side: topic provisioning and the shared event producer, whose delivery report
//! is the acceptance of a command.

pub use runtime::kafka::ensure_topic;
pub use runtime::producer::{EventProducer, ProduceError};

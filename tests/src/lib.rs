//! Harness for Ackgate's end-to-end tests: real nats-server, Apache Kafka (KRaft) and
//! PostgreSQL processes on free ports, stopped on drop, and the three services running
//! in-process against them, each stoppable and restartable on its own.

pub mod bench;
pub mod brokers;
pub mod events;
pub mod fault;
pub mod kafka;
pub mod kafka_cluster;
pub mod metrics;
pub mod otel;
pub mod postgres;
pub mod services;
pub mod stack;
pub mod timeline;

pub use brokers::NatsServer;
pub use kafka_cluster::KafkaCluster;
pub use postgres::PostgresServer;
pub use stack::{StackOptions, TestStack};

/// Initialises tracing once; logs are shown only with `TEST_LOG=1`.
pub fn init_test_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _untraced = runtime::init_telemetry(
                "e2e-tests",
                &std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info,rdkafka=warn".to_owned()),
                Default::default(),
                None,
            );
        }
    });
}

/// Polls `probe` until it yields `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

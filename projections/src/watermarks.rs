//! What Kafka holds: the high watermark of each partition, for lag in stats and for the
//! rebuild's progress.

use std::{sync::Arc, time::Duration};

use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A metadata-only Kafka client (no group, never consumes).
#[derive(Clone)]
pub struct Watermarks {
    client: Arc<BaseConsumer>,
}

impl Watermarks {
    /// A client for `bootstrap`.
    pub fn new(bootstrap: &str) -> Result<Self, KafkaError> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "ackgate-projections-metadata")
            .create()?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    /// `(partition, high watermark)` for every partition of `topic`.
    pub async fn high(&self, topic: &str) -> Result<Vec<(i32, i64)>, KafkaError> {
        let ranges = self.ranges(topic).await?;
        Ok(ranges.into_iter().map(|(p, _, high)| (p, high)).collect())
    }

    /// `(partition, low watermark, high watermark)` for every partition of `topic`.
    pub async fn ranges(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
        let client = Arc::clone(&self.client);
        let topic = topic.to_owned();
        match tokio::task::spawn_blocking(move || ranges_blocking(&client, &topic)).await {
            Ok(ranges) => ranges,
            Err(e) => {
                tracing::error!(error = %e, "watermark task failed");
                Err(KafkaError::Canceled)
            }
        }
    }
}

fn ranges_blocking(client: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|p| {
            client
                .fetch_watermarks(topic, p, TIMEOUT)
                .map(|(low, high)| (p, low, high))
        })
        .collect()
}

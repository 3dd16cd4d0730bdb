//! Replay rate: how fast a read model is rebuilt from a topic. Fills a topic of its own with
//! registration events (once), then reads it from the beginning into an in-memory store
//! through the projections' own decode-and-apply path, in the projections' batch size.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use projections::{
    consumer::source_record,
    event::Decoder,
    store::{ApplyPolicy, MemoryStore, ReadModelStore},
};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use runtime::kafka::ensure_topic;
use serde::Serialize;

use crate::events::registration;

/// The topic the replay reads (never the system's own).
pub const REPLAY_TOPIC: &str = "ackgate.bench.replay";

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    /// Events read and applied.
    pub events: u64,
    /// Seconds from the first read to the last apply.
    pub seconds: f64,
    /// `events / seconds`.
    pub per_second: f64,
}

/// Makes sure [`REPLAY_TOPIC`] holds at least `events` events, then replays it.
pub async fn replay_rate(bootstrap: &str, events: u64) -> Result<ReplayResult> {
    ensure_topic(bootstrap, REPLAY_TOPIC, 3, -1).await?;
    let held = held(bootstrap).await?;
    if held < events {
        fill(bootstrap, held, events).await?;
    }
    replay(bootstrap, held.max(events)).await
}

async fn held(bootstrap: &str) -> Result<u64> {
    let watermarks = projections::watermarks::Watermarks::new(bootstrap)?;
    let high = watermarks.high(REPLAY_TOPIC).await?;
    Ok(high
        .iter()
        .map(|(_, h)| u64::try_from(*h).unwrap_or_default())
        .sum())
}

async fn fill(bootstrap: &str, from: u64, to: u64) -> Result<()> {
    tracing::info!(from, to, "filling the replay topic");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .create()?;
    let sends = futures::stream::iter(from..to).map(|n| {
        let producer = producer.clone();
        async move {
            let badge = format!(
                "R{}-{:06}",
                char::from(b'A' + u8::try_from((n / 1_000_000) % 26).unwrap_or_default()),
                n % 1_000_000
            );
            let value = registration(&format!("replay-{n}"), &badge);
            let record = FutureRecord::to(REPLAY_TOPIC).key(&badge).payload(&value);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    });
    let failures = sends
        .buffer_unordered(4096)
        .filter(|sent| std::future::ready(sent.is_err()))
        .count()
        .await;
    anyhow::ensure!(failures == 0, "{failures} replay events were not written");
    Ok(())
}

async fn replay(bootstrap: &str, events: u64) -> Result<ReplayResult> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ackgate-bench-replay")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment.add_partition_offset(REPLAY_TOPIC, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let store = MemoryStore::new(Decoder::shipped()?);
    let policy = ApplyPolicy {
        attempts: 1,
        backoff: Duration::ZERO,
    };
    let started = Instant::now();
    let mut applied = 0;
    let mut batch = Vec::with_capacity(500);
    while applied < events {
        let record = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("the replay topic went quiet")??;
        batch.push(source_record(&record));
        if batch.len() == 500 || applied + batch.len() as u64 == events {
            store.apply_batch(&batch, policy).await?;
            applied += batch.len() as u64;
            batch.clear();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(ReplayResult {
        events: applied,
        seconds,
        per_second: applied as f64 / seconds,
    })
}

//! The ceilings Option B is compared with: what the broker takes from a bare producer, and
//! what NATS request/reply does with a responder that does nothing. Both run closed-loop
//! with a fixed number of requests in flight, as fast as they can, for a fixed time.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use futures::StreamExt;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use serde::Serialize;

/// Throughput of a closed-loop baseline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ceiling {
    /// Completed operations per second.
    pub per_second: f64,
    /// Operations completed.
    pub completed: u64,
    /// Operations that failed.
    pub errors: u64,
    /// In flight at any time.
    pub in_flight: usize,
}

/// Runs `op` with `in_flight` concurrent loops for `duration`.
async fn closed_loop<F, Fut>(in_flight: usize, duration: Duration, op: F) -> Ceiling
where
    F: Fn(u64) -> Fut + Sync,
    Fut: Future<Output = bool>,
{
    let (completed, errors, next) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let worker = || async {
        while started.elapsed() < duration {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let counter = if op(n).await { &completed } else { &errors };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    };
    futures::future::join_all((0..in_flight).map(|_| worker())).await;
    let completed = completed.load(Ordering::Relaxed);
    Ceiling {
        per_second: completed as f64 / started.elapsed().as_secs_f64(),
        completed,
        errors: errors.load(Ordering::Relaxed),
        in_flight,
    }
}

/// Baseline (b): an idempotent `acks=all` producer writing `payload` to `topic`, no HTTP,
/// no NATS: the broker's ceiling on this machine.
pub async fn raw_kafka(
    bootstrap: &str,
    topic: &str,
    payload: &[u8],
    duration: Duration,
) -> Result<Ceiling> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?;
    let ceiling = closed_loop(1024, duration, |n| {
        let producer = producer.clone();
        let key = format!("B-{n}");
        async move {
            let record = FutureRecord::to(topic).key(&key).payload(payload);
            producer.send(record, Duration::from_secs(10)).await.is_ok()
        }
    })
    .await;
    Ok(ceiling)
}

/// Baseline (c): NATS request/reply against a responder that answers at once with the
/// request's body: the message bus's ceiling for one round trip.
pub async fn nats_echo(url: &str, payload: &[u8], duration: Duration) -> Result<Ceiling> {
    let responder = async_nats::connect(url).await?;
    let mut requests = responder.subscribe("ackgate.bench.echo").await?;
    let echo = Arc::new(responder);
    let answering = tokio::spawn({
        let echo = Arc::clone(&echo);
        async move {
            while let Some(request) = requests.next().await {
                if let Some(reply) = request.reply {
                    let _ = echo.publish(reply, request.payload).await;
                }
            }
        }
    });
    let client = async_nats::connect(url).await?;
    client.flush().await?;
    let body = bytes::Bytes::copy_from_slice(payload);
    let ceiling = closed_loop(256, duration, |_| {
        let (client, body) = (client.clone(), body.clone());
        async move { client.request("ackgate.bench.echo", body).await.is_ok() }
    })
    .await;
    answering.abort();
    Ok(ceiling)
}

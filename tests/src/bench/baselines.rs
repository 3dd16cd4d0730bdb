//! The ceilings Option B is compared with: what the broker takes from a bare producer, and
//! what NATS request/reply does with a responder that does nothing. Both run closed-loop
//! with a fixed number of requests in flight, as fast as they can, for a fixed time. The
//! same two, open loop at a fixed rate, give the latency of each stage on its own.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::Result;
use futures::StreamExt;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use serde::Serialize;

use super::open_loop::{self, LoadResult};

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

/// The producer of baseline (b), configured as the services' own (idempotent, `acks=all`,
/// `linger.ms` 0), and warmed up: an idempotent producer holds its first records until it
/// has a producer id, up to a second, which is start-up, not the broker's speed.
async fn bare_producer(bootstrap: &str, topic: &str) -> Result<FutureProducer> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()?;
    for partition in 0..3 {
        let record = FutureRecord::<str, str>::to(topic)
            .partition(partition)
            .payload("warm-up");
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(producer)
}

/// Baseline (b): an idempotent `acks=all` producer writing `payload` to `topic`, no HTTP,
/// no NATS: the broker's ceiling on this machine.
pub async fn raw_kafka(
    bootstrap: &str,
    topic: &str,
    payload: &[u8],
    duration: Duration,
) -> Result<Ceiling> {
    let producer = bare_producer(bootstrap, topic).await?;
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

/// The Kafka stage alone at a fixed rate: the latency of one acknowledged record, open loop.
pub async fn kafka_latency(
    bootstrap: &str,
    topic: &'static str,
    payload: &[u8],
    rate: f64,
    duration: Duration,
) -> Result<LoadResult> {
    let producer = bare_producer(bootstrap, topic).await?;
    let payload = bytes::Bytes::copy_from_slice(payload);
    Ok(
        open_loop::run(rate, duration, Duration::from_secs(15), |n| {
            let (producer, payload) = (producer.clone(), payload.clone());
            async move {
                let key = format!("L-{n}");
                let record = FutureRecord::to(topic).key(&key).payload(payload.as_ref());
                let sent = producer.send(record, Duration::from_secs(10)).await;
                sent.map(|_| ()).map_err(|(e, _)| e.to_string())
            }
        })
        .await,
    )
}

const ECHO: &str = "ackgate.bench.echo";

/// A responder on [`ECHO`] that answers at once with the request's body.
async fn start_echo(url: &str) -> Result<tokio::task::JoinHandle<()>> {
    let responder = async_nats::connect(url).await?;
    let mut requests = responder.subscribe(ECHO).await?;
    responder.flush().await?;
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let _ = responder.publish(reply, request.payload).await;
            }
        }
    }))
}

/// Baseline (c): NATS request/reply against a responder that answers at once with the
/// request's body: the message bus's ceiling for one round trip.
pub async fn nats_echo(url: &str, payload: &[u8], duration: Duration) -> Result<Ceiling> {
    let answering = start_echo(url).await?;
    let client = async_nats::connect(url).await?;
    client.flush().await?;
    let body = bytes::Bytes::copy_from_slice(payload);
    let ceiling = closed_loop(256, duration, |_| {
        let (client, body) = (client.clone(), body.clone());
        async move { client.request(ECHO, body).await.is_ok() }
    })
    .await;
    answering.abort();
    Ok(ceiling)
}

/// The NATS stage alone at a fixed rate: one request/reply round trip, open loop.
pub async fn nats_latency(
    url: &str,
    payload: &[u8],
    rate: f64,
    duration: Duration,
) -> Result<LoadResult> {
    let answering = start_echo(url).await?;
    let client = async_nats::connect(url).await?;
    client.flush().await?;
    let body = bytes::Bytes::copy_from_slice(payload);
    let result = open_loop::run(rate, duration, Duration::from_secs(15), |_| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let reply = client.request(ECHO, body).await;
            reply.map(|_| ()).map_err(|e| e.to_string())
        }
    })
    .await;
    answering.abort();
    Ok(result)
}

//! Stores timeline notices from the stream. A notice is acknowledged only once its steps are
//! stored, so while the store is down the stream keeps them and they are stored when it
//! returns; a step delivered twice is stored once. PostgreSQL-backed instances share one
//! durable consumer; a memory-backed instance reads the whole stream itself, as its read
//! models read the whole topic.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, AckKind, consumer::AckPolicy, consumer::pull};
use contracts::{Names, timeline::TimelineBatch};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{StoredStep, TimelineStore};
use crate::{Error, Result};

/// Largest number of notices stored in one write.
const BATCH_MAX: usize = 500;
/// First pause after the store or the stream failed; doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How often steps past the retention are deleted.
const EXPIRY_EVERY: Duration = Duration::from_secs(600);

/// How this instance reads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Through the shared durable consumer (a shared store).
    Shared,
    /// The whole stream, for this instance alone (a store in its memory).
    Whole,
}

/// Stores notices from the stream in `store` until `shutdown`, and deletes steps older than
/// `retention` every few minutes.
pub async fn run<T: TimelineStore>(
    client: async_nats::Client,
    names: Arc<Names>,
    store: Arc<T>,
    reading: Reading,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let expiring = expire_periodically(Arc::clone(&store), retention, shutdown.clone());
    let recording = async {
        let mut pause = RETRY_MIN;
        while !shutdown.is_cancelled() {
            match record_from_stream(&client, &names, store.as_ref(), reading, &shutdown).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "timeline stream interrupted; reconnecting"),
            }
            sleep_or_stop(&mut pause, &shutdown).await;
        }
    };
    tokio::join!(expiring, recording);
}

async fn record_from_stream<T: TimelineStore>(
    client: &async_nats::Client,
    names: &Names,
    store: &T,
    reading: Reading,
    shutdown: &CancellationToken,
) -> Result<()> {
    let consumer = open_consumer(client, names, reading, None).await?;
    let messages = consumer.messages().await.map_err(nats_error)?;
    let mut batches = messages.ready_chunks(BATCH_MAX);
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            batch = batches.next() => batch,
        };
        let Some(batch) = batch else {
            return Err(Error::NatsService("the timeline stream ended".to_owned()));
        };
        let messages = batch
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(nats_error)?;
        store_until_done(store, &messages, shutdown).await;
        if reading == Reading::Shared {
            for message in &messages {
                // A lost ack only means the notice comes again; its steps are stored once.
                let _ = message.ack_with(AckKind::Ack).await;
            }
        }
    }
}

/// Stores the steps of `messages`, retrying while the store is down.
async fn store_until_done<T: TimelineStore>(
    store: &T,
    messages: &[jetstream::Message],
    shutdown: &CancellationToken,
) {
    let steps = steps_of(messages);
    let mut pause = RETRY_MIN;
    loop {
        match store.record(steps.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, steps = steps.len(), "timeline steps not stored yet; retrying")
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
        sleep_or_stop(&mut pause, shutdown).await;
    }
}

/// Every step of the readable batches; an unreadable batch is logged and skipped.
pub fn steps_of(messages: &[jetstream::Message]) -> Vec<StoredStep> {
    let readable = messages.iter().filter_map(|m| {
        serde_json::from_slice::<TimelineBatch>(&m.payload)
            .inspect_err(|e| tracing::warn!(error = %e, "unreadable timeline batch skipped"))
            .ok()
    });
    readable
        .flat_map(|batch| batch.notices)
        .flat_map(StoredStep::of_notice)
        .collect()
}

/// The consumer of the timeline stream: the shared durable one, or one of this instance's
/// own that reads from the start (or from `start_at`, for a rebuild).
pub async fn open_consumer(
    client: &async_nats::Client,
    names: &Names,
    reading: Reading,
    start_at: Option<OffsetDateTime>,
) -> Result<jetstream::consumer::PullConsumer> {
    let js = jetstream::new(client.clone());
    let stream = js
        .get_stream(&names.timeline_stream)
        .await
        .map_err(nats_error)?;
    let deliver_policy = match start_at {
        Some(start_time) => jetstream::consumer::DeliverPolicy::ByStartTime { start_time },
        None => jetstream::consumer::DeliverPolicy::All,
    };
    let consumer = match reading {
        Reading::Shared => {
            let config = pull::Config {
                durable_name: Some(names.timeline_consumer.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 20_000,
                deliver_policy,
                ..Default::default()
            };
            stream
                .get_or_create_consumer(&names.timeline_consumer, config)
                .await
        }
        Reading::Whole => {
            let config = pull::Config {
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(300),
                deliver_policy,
                ..Default::default()
            };
            stream.create_consumer(config).await
        }
    };
    consumer.map_err(nats_error)
}

/// How far a [`replay`] has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayProgress {
    /// Notices stored so far.
    pub stored: u64,
    /// Notices still in the stream past them.
    pub pending: u64,
}

/// Stores every notice the stream still keeps (from `start_at`, else from its first) in
/// `store`, reporting after each batch: a rebuild of the timeline after its tables were
/// lost. Steps already stored stay as they are; safe while the projections run.
pub async fn replay<T: TimelineStore>(
    client: &async_nats::Client,
    names: &Names,
    store: &T,
    start_at: Option<OffsetDateTime>,
    mut progress: impl FnMut(ReplayProgress),
) -> Result<ReplayProgress> {
    let mut consumer = open_consumer(client, names, Reading::Whole, start_at).await?;
    let mut done = ReplayProgress {
        stored: 0,
        pending: consumer.info().await.map_err(nats_error)?.num_pending,
    };
    while done.pending > 0 {
        let batch = consumer
            .fetch()
            .max_messages(BATCH_MAX)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .map_err(nats_error)?;
        let messages: Vec<_> = batch.try_collect().await.map_err(nats_error)?;
        store.record(steps_of(&messages)).await?;
        done.stored += messages.len() as u64;
        done.pending = consumer.info().await.map_err(nats_error)?.num_pending;
        progress(done);
    }
    Ok(done)
}

async fn expire_periodically<T: TimelineStore>(
    store: Arc<T>,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(EXPIRY_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let before = OffsetDateTime::now_utc() - retention;
        match store.expire(before).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "timeline steps past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "timeline expiry failed; retrying later"),
        }
    }
}

async fn sleep_or_stop(pause: &mut Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(*pause) => {}
    }
    *pause = (*pause * 2).min(RETRY_MAX);
}

fn nats_error(e: impl std::fmt::Display) -> Error {
    Error::NatsService(format!("timeline stream: {e}"))
}

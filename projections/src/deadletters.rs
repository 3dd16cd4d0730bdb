//! The dead-letter topic. The store is the outbox: an event is parked in the same
//! transaction as the offsets that pass it, and published here afterwards (after every batch
//! that parked something, and every few seconds while anything is unpublished), so a crash
//! between the two only delays the record. Records may be published more than once; their
//! source-position headers identify them.

use std::time::Duration;

use contracts::{deadletter::ParkedEvent, headers::message};
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use runtime::Timeline;
use tokio_util::sync::CancellationToken;

use crate::store::{ReadModelStore, UnpublishedDeadLetter};

/// Produces parked events to the dead-letter topic.
#[derive(Clone)]
pub struct DeadLetterPublisher {
    producer: FutureProducer,
    timeline: Timeline,
}

impl DeadLetterPublisher {
    /// An idempotent `acks=all` producer. Each dead letter goes to the dead-letter topic of
    /// its source topic ([`contracts::topics::dead_letter_topic`]), and is reported to its
    /// command's `timeline`.
    pub fn new(bootstrap: &str, timeline: Timeline) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "ackgate-projections-dlq")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Self { producer, timeline })
    }

    /// Publishes every parked event not yet published, and marks the ones Kafka took.
    pub async fn publish_pending<S: ReadModelStore>(&self, store: &S) {
        let pending = match store.unpublished_dead_letters().await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read unpublished dead letters; will retry");
                return;
            }
        };
        let mut published = Vec::with_capacity(pending.len());
        for letter in pending {
            match self.publish(&letter, None).await {
                Ok(()) => {
                    crate::timeline::report::parked(&self.timeline, &letter);
                    published.push(letter.parked.source);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dead letter not published; will retry");
                    break;
                }
            }
        }
        if published.is_empty() {
            return;
        }
        if let Err(e) = store.mark_published(&published).await {
            tracing::warn!(error = %e, "dead letters published but not marked; they will be published again");
        }
    }

    /// Publishes an event an operator gave up, once more, with the operator's `reason`:
    /// the dead-letter topic keeps every discard, and so does the command's timeline.
    pub async fn publish_discarded(
        &self,
        letter: &UnpublishedDeadLetter,
        reason: &str,
    ) -> Result<(), rdkafka::error::KafkaError> {
        crate::timeline::report::discarded(&self.timeline, &letter.parked, reason);
        self.publish(letter, Some(reason)).await
    }

    async fn publish(
        &self,
        letter: &UnpublishedDeadLetter,
        discarded: Option<&str>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let parked = &letter.parked;
        let topic = contracts::topics::dead_letter_topic(&parked.source.topic);
        let record = FutureRecord::to(&topic)
            .key(&parked.key)
            .payload(&letter.payload)
            .headers(dead_letter_headers(letter, discarded));
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
        tracing::info!(
            correlation_id = parked.correlation_id.as_deref().unwrap_or_default(),
            source = %parked.source.token(),
            code = %parked.code,
            discarded,
            "dead letter published"
        );
        Ok(())
    }

    /// Retries unpublished dead letters every `every` until `shutdown`. A round in progress
    /// is abandoned on shutdown (with Kafka gone it waits out every send's timeout): the
    /// store still lists what it did not publish, for the next start.
    pub async fn keep_publishing<S: ReadModelStore>(
        &self,
        store: &S,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.publish_pending(store) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// The original headers, then the source position, the error and the discard's reason.
fn dead_letter_headers(letter: &UnpublishedDeadLetter, discarded: Option<&str>) -> OwnedHeaders {
    let parked: &ParkedEvent = &letter.parked;
    let source = &parked.source;
    let mut ours = vec![
        (message::SOURCE_TOPIC, source.topic.clone()),
        (message::SOURCE_PARTITION, source.partition.to_string()),
        (message::SOURCE_OFFSET, source.offset.to_string()),
        (message::ERROR_CODE, parked.code.as_str().to_owned()),
        (message::ERROR_DETAIL, parked.detail.clone()),
    ];
    if let Some(first) = &parked.blocked_by {
        ours.push((message::BLOCKED_BY, first.token()));
    }
    if let Some(reason) = discarded {
        ours.push((message::DISCARD_REASON, reason.to_owned()));
    }
    let original = letter.headers.iter().map(|(k, v)| (k.as_str(), v.clone()));
    original
        .chain(ours)
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
}

//! The Kafka side: a consumer-group member that resumes each assigned partition from the read
//! models' own position (the beginning, for a fresh in-memory store), applies each event,
//! and only then stores its offset for the group commit.

use std::{sync::Arc, time::Duration};

use contracts::{
    EventPosition,
    envelope::EnvelopeHead,
    headers::message,
    officer::{REGISTER_OFFICER_REQUESTED, REGISTER_OFFICER_VERSION, RegisterOfficerRequested},
};
use rdkafka::{
    ClientConfig, ClientContext, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer},
    message::{BorrowedMessage, Headers},
    types::RDKafkaRespErr,
};
use tokio_util::sync::CancellationToken;

use crate::store::{Applied, ReadModels};

/// Assigns partitions at the offsets the read models say they need, instead of the group's
/// committed offsets: the read models, not the group, know what has been applied.
pub struct ResumeFromReadModels {
    models: Arc<ReadModels>,
}

impl ClientContext for ResumeFromReadModels {}

impl ConsumerContext for ResumeFromReadModels {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.set_resume_offsets(tpl);
                tracing::info!(assignment = ?tpl, "partitions assigned");
                consumer.assign(tpl)
            }
            _ => {
                tracing::info!(reason = ?err, "partitions revoked");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "rebalance failed");
        }
    }
}

impl ResumeFromReadModels {
    fn set_resume_offsets(&self, tpl: &mut TopicPartitionList) {
        let partitions: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        for (topic, partition) in partitions {
            let offset = self
                .models
                .resume_offset(&topic, partition)
                .map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                tracing::error!(error = %e, topic, partition, "cannot set resume offset");
            }
        }
    }
}

/// The projections' consumer.
pub type EventConsumer = StreamConsumer<ResumeFromReadModels>;

/// Joins `group_id` and subscribes to `topic`. Auto-commit is on, but only of offsets
/// explicitly stored after an event was applied.
pub fn create_consumer(
    bootstrap: &str,
    group_id: &str,
    topic: &str,
    models: Arc<ReadModels>,
) -> Result<EventConsumer, rdkafka::error::KafkaError> {
    let consumer: EventConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        .set("client.id", "ackgate-projections")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // Notice a topic created after we subscribed within seconds, not minutes.
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("fetch.wait.max.ms", "10")
        .create_with_context(ResumeFromReadModels { models })?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// Applies events until `shutdown`, then commits the stored offsets.
pub async fn run(consumer: EventConsumer, models: Arc<ReadModels>, shutdown: CancellationToken) {
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        match received {
            Ok(record) => {
                apply(&models, &record);
                if let Err(e) = consumer.store_offset_from_message(&record) {
                    tracing::warn!(error = %e, "offset not stored; the event will be re-read and deduplicated");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer error; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final offset commit skipped");
    }
}

fn apply(models: &ReadModels, record: &BorrowedMessage<'_>) {
    let position = EventPosition {
        topic: record.topic().to_owned(),
        partition: record.partition(),
        offset: record.offset(),
    };
    let correlation_id = header(record, message::CORRELATION_ID).unwrap_or_default();
    let span = tracing::info_span!("event", correlation_id = %correlation_id, partition = position.partition, offset = position.offset);
    let _entered = span.enter();
    match decode(record.payload().unwrap_or_default()) {
        Ok(event) => match models.apply_registration(event, position) {
            Applied::Registered => tracing::info!("officer registered"),
            Applied::Superseded => {
                tracing::warn!("badge already registered by an earlier command; kept the first")
            }
            Applied::Duplicate => tracing::info!("duplicate event ignored"),
        },
        Err(reason) => {
            tracing::error!(reason, "event cannot be applied; skipped");
            models.skip(&position);
        }
    }
}

fn decode(payload: &[u8]) -> Result<RegisterOfficerRequested, String> {
    let head: EnvelopeHead =
        serde_json::from_slice(payload).map_err(|e| format!("not an event envelope: {e}"))?;
    if head.event_type != REGISTER_OFFICER_REQUESTED
        || head.schema_version != REGISTER_OFFICER_VERSION
    {
        return Err(format!(
            "unknown event {} v{}",
            head.event_type, head.schema_version
        ));
    }
    serde_json::from_slice(payload)
        .map_err(|e| format!("malformed {REGISTER_OFFICER_REQUESTED}: {e}"))
}

fn header(record: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    let headers = record.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

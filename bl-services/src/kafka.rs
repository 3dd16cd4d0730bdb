//! The Kafka side: an idempotent, `acks=all` producer whose delivery report is the
//! acceptance of a command, and the topic set-up the service needs on first start.

use std::time::Duration;

use contracts::{EventPosition, headers::message};
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

/// Ids that travel as record headers, so consumers can dedupe and trace without parsing.
#[derive(Debug, Clone, Copy)]
pub struct RecordIds<'a> {
    /// The event's id.
    pub event_id: &'a str,
    /// e.g. `RegisterOfficerRequested`.
    pub event_type: &'a str,
    /// Payload schema version.
    pub schema_version: u32,
    /// Tracing key.
    pub correlation_id: &'a str,
    /// Idempotency key.
    pub command_id: &'a str,
    /// W3C trace context, when the request carried one.
    pub traceparent: Option<&'a str>,
}

/// Why an event was not acknowledged. Either way the command was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// Kafka refused the record or did not acknowledge it within `message.timeout.ms`.
    #[error("kafka did not acknowledge the event: {0}")]
    Rejected(KafkaError),
    /// The delivery report did not arrive within the bound (should not happen: the client's
    /// own timeout fires first).
    #[error("no delivery report within {0:?}")]
    TimedOut(Duration),
}

/// Writes events and waits for their acknowledgement.
#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl EventProducer {
    /// An idempotent producer: `acks=all`, retries without duplicates or reordering, and
    /// `message.timeout.ms` = `timeout`, so a produce either succeeds or fails within it.
    pub fn new(
        bootstrap: &str,
        topic: &str,
        timeout: Duration,
        linger_ms: u32,
    ) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "ackgate-officer-service")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .set("linger.ms", linger_ms.to_string())
            .set("reconnect.backoff.max.ms", "1000")
            .create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            timeout,
        })
    }

    /// Produces one record keyed by `key` and returns where Kafka stored it.
    pub async fn produce(
        &self,
        key: &str,
        value: &[u8],
        ids: RecordIds<'_>,
    ) -> Result<EventPosition, ProduceError> {
        let record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(value)
            .headers(record_headers(ids));
        // The queue wait shares the bound: a full local queue is as unavailable as a dead broker.
        let send = self.producer.send(record, self.timeout);
        let margin = Duration::from_secs(1);
        let delivery = tokio::time::timeout(self.timeout + margin, send)
            .await
            .map_err(|_| ProduceError::TimedOut(self.timeout + margin))?
            .map_err(|(error, _message)| ProduceError::Rejected(error))?;
        Ok(EventPosition {
            topic: self.topic.clone(),
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}

fn record_headers(ids: RecordIds<'_>) -> OwnedHeaders {
    let version = ids.schema_version.to_string();
    let headers = OwnedHeaders::new_with_capacity(6)
        .insert(header(message::EVENT_ID, ids.event_id))
        .insert(header(message::EVENT_TYPE, ids.event_type))
        .insert(header(message::SCHEMA_VERSION, &version))
        .insert(header(message::CORRELATION_ID, ids.correlation_id))
        .insert(header(message::COMMAND_ID, ids.command_id));
    match ids.traceparent {
        Some(traceparent) => headers.insert(header(message::TRACEPARENT, traceparent)),
        None => headers,
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Creates `topic` if it does not exist yet. An existing topic is left as it is.
pub async fn ensure_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

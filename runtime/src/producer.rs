//! The event producer every command path shares: idempotent, `acks=all`, and its delivery
//! report (or, when transactional, its transaction's commit) is the acceptance of a command.
//! The officer service produces through it in transactions after its business rules (see
//! [`super::transactions`]); the edge produces through it for commands accepted directly
//! (Option A), idempotent only.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use serde::Serialize;

use super::{
    resolve,
    transactions::{TransactionalSink, Unresolved},
};
use contracts::{EventEnvelope, EventPosition, headers::message};
use tracing::Instrument;

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

/// One record to write: where, under which key, what.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingRecord<'a> {
    /// The topic (in its namespace).
    pub topic: &'a str,
    /// The aggregate id.
    pub key: &'a str,
    /// The serialized event.
    pub value: &'a [u8],
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
    /// The event could not be serialized (a bug; nothing was sent).
    #[error("the event does not serialize: {0}")]
    Serialize(serde_json::Error),
    /// Kafka acknowledged the record as a duplicate of one it already had, without its offset,
    /// and the record could not be found near the end of its partition.
    #[error("stored, but its offset could not be found: {0}")]
    Unlocated(String),
    /// Nothing was sent: the transactional producer was not ready or had moved on.
    #[error("the event was not sent: {0}")]
    NotSent(String),
    /// The transaction carrying the record was aborted: nothing of it is stored.
    #[error("the transaction was aborted: {0}")]
    Aborted(String),
    /// The transaction's outcome is unknown until its transactional id is fenced.
    #[error("the transaction's outcome is unknown: {reason}")]
    Unresolved {
        /// What it takes to settle it.
        unresolved: Unresolved,
        /// What went wrong.
        reason: String,
    },
}

impl ProduceError {
    /// The record may be in Kafka although no acknowledgement came back (a timeout).
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Self::Rejected(error) => {
                error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut)
            }
            Self::TimedOut(_) | Self::Unlocated(_) | Self::Unresolved { .. } => true,
            Self::Serialize(_) | Self::NotSent(_) | Self::Aborted(_) => false,
        }
    }

    /// How to settle a transactional attempt whose outcome is unknown.
    pub fn unresolved(&self) -> Option<&Unresolved> {
        match self {
            Self::Unresolved { unresolved, .. } => Some(unresolved),
            _ => None,
        }
    }

    /// The kind of failure, a bounded label for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::TimedOut(_) => "timed-out",
            Self::Serialize(_) => "serialize",
            Self::Unlocated(_) => "unlocated",
            Self::NotSent(_) => "not-sent",
            Self::Aborted(_) => "aborted",
            Self::Unresolved { .. } => "unresolved",
        }
    }

    /// What a client can be told about the event: maybe stored, or surely not.
    pub fn stored(&self) -> &'static str {
        if self.is_ambiguous() {
            "the event store did not acknowledge in time, so the event may or may not be stored"
        } else {
            "the event store refused the event, so nothing was stored"
        }
    }
}

/// Records a produce call's latency and outcome, and where the record went, on its span.
fn observe_produced(
    span: &tracing::Span,
    topic: &str,
    written: &Result<EventPosition, ProduceError>,
    elapsed: Duration,
) {
    use super::telemetry::trace;
    let outcome = written.as_ref().map(|_| ()).map_err(ProduceError::kind);
    super::metrics::produce().produced(topic, outcome, elapsed);
    match written {
        Ok(position) => trace::at_position(span, position.partition, position.offset),
        Err(e) => trace::failed(span, e),
    }
}

/// Writes events and waits for their acknowledgement.
#[derive(Clone)]
pub struct EventProducer {
    producer: Arc<Mutex<FutureProducer>>,
    config: ClientConfig,
    bootstrap: String,
    timeout: Duration,
    transactions: Option<TransactionalSink>,
}

impl EventProducer {
    /// An idempotent producer: `acks=all`, retries without duplicates or reordering, and
    /// `message.timeout.ms` = `timeout`, so a produce either succeeds or fails within it.
    pub fn new(
        client_id: &str,
        bootstrap: &str,
        timeout: Duration,
        linger_ms: u32,
    ) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .set("linger.ms", linger_ms.to_string())
            .set("reconnect.backoff.max.ms", "1000");
        let producer = config.create()?;
        Ok(Self {
            producer: Arc::new(Mutex::new(producer)),
            config,
            bootstrap: bootstrap.to_owned(),
            timeout,
            transactions: None,
        })
    }

    /// The same producer, writing every record inside a transaction on one of `lanes`
    /// transactional producers, under the ids `<id_prefix>.<lane>.<generation>` (see
    /// [`super::transactions`]). Needs a Tokio runtime.
    pub fn with_transactions(mut self, id_prefix: &str, lanes: usize) -> Self {
        let sink = TransactionalSink::start(&self.config, id_prefix, self.timeout, lanes);
        self.transactions = Some(sink);
        self
    }

    /// Whether the transactional producer is initialised (`None`: not transactional).
    pub fn readiness(&self) -> Option<super::Readiness> {
        self.transactions.as_ref().map(TransactionalSink::readiness)
    }

    /// The transactional id the next command is to be written under: that of the least busy
    /// lane (`None`: not transactional). Record it before producing, and produce under it.
    pub fn transactional_id(&self) -> Option<String> {
        self.transactions
            .as_ref()
            .map(TransactionalSink::current_id)
    }

    /// Settles an attempt whose transaction's outcome was unknown: fences its id and returns
    /// where its record is in `topic`, or `None` if nothing of it was stored (see
    /// [`resolve::settle`]).
    pub async fn settle(
        &self,
        topic: &str,
        unresolved: &Unresolved,
        event_id: &str,
    ) -> Result<Option<EventPosition>, resolve::SettleError> {
        resolve::settle(&self.bootstrap, topic, unresolved, event_id, self.timeout).await
    }

    fn current(&self) -> FutureProducer {
        self.producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// An idempotent producer that hit a fatal error (for example its sequence numbers were
    /// lost with a broker's state) refuses every later record; start a fresh one.
    fn replace_if_fatal(&self, failed: &FutureProducer) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        let mut current = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if !std::ptr::eq(current.client(), failed.client()) {
            return; // another request replaced it already
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::error!(?code, reason, "producer failed fatally; replaced it");
                *current = fresh;
            }
            Err(e) => tracing::error!(error = %e, "producer failed fatally and cannot be replaced"),
        }
    }

    /// Produces `event` to `topic`, keyed by its aggregate, with its ids as headers, and
    /// returns where Kafka stored it.
    pub async fn produce_event<P: Serialize>(
        &self,
        topic: &str,
        event: &EventEnvelope<P>,
        traceparent: Option<&str>,
    ) -> Result<EventPosition, ProduceError> {
        self.produce_event_under(topic, event, traceparent, None)
            .await
    }

    /// [`Self::produce_event`], in a transaction under `transactional_id` (the one recorded
    /// with the command; `None`: the current one). Nothing is written if the producer moved
    /// on to another id since.
    pub async fn produce_event_under<P: Serialize>(
        &self,
        topic: &str,
        event: &EventEnvelope<P>,
        traceparent: Option<&str>,
        transactional_id: Option<&str>,
    ) -> Result<EventPosition, ProduceError> {
        let value = serde_json::to_vec(event).map_err(ProduceError::Serialize)?;
        let event_id = event.event_id.to_string();
        let ids = RecordIds {
            event_id: &event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            correlation_id: &event.correlation_id,
            command_id: &event.command_id,
            traceparent,
        };
        let record = OutgoingRecord {
            topic,
            key: &event.aggregate_id,
            value: &value,
        };
        self.produce(record, ids, transactional_id).await
    }

    /// Produces one record (in a transaction under `transactional_id`, when transactional)
    /// and returns where Kafka stored it.
    pub async fn produce(
        &self,
        record: OutgoingRecord<'_>,
        ids: RecordIds<'_>,
        transactional_id: Option<&str>,
    ) -> Result<EventPosition, ProduceError> {
        let span = super::telemetry::trace::publish_span("kafka", record.topic, Some(record.key));
        let traceparent = super::telemetry::trace::traceparent_of(&span).map(|t| t.to_string());
        let ids = RecordIds {
            traceparent: traceparent.as_deref().or(ids.traceparent),
            ..ids
        };
        let started = std::time::Instant::now();
        let written = self
            .write(record, ids, transactional_id)
            .instrument(span.clone())
            .await;
        observe_produced(&span, record.topic, &written, started.elapsed());
        written
    }

    /// [`Self::produce`], unobserved.
    async fn write(
        &self,
        record: OutgoingRecord<'_>,
        ids: RecordIds<'_>,
        transactional_id: Option<&str>,
    ) -> Result<EventPosition, ProduceError> {
        let (partition, offset) = match &self.transactions {
            Some(sink) => {
                let expected = transactional_id.map_or_else(|| sink.current_id(), str::to_owned);
                sink.send(record, record_headers(ids), &expected).await?
            }
            None => self.send_idempotent(record, ids).await?,
        };
        let offset = match offset {
            offset if offset >= 0 => offset,
            _ => self.locate(record.topic, partition, ids.event_id).await?,
        };
        Ok(EventPosition {
            topic: record.topic.to_owned(),
            partition,
            offset,
        })
    }

    /// One record, acknowledged (idempotent, outside any transaction).
    async fn send_idempotent(
        &self,
        outgoing: OutgoingRecord<'_>,
        ids: RecordIds<'_>,
    ) -> Result<(i32, i64), ProduceError> {
        let record = FutureRecord::to(outgoing.topic)
            .key(outgoing.key)
            .payload(outgoing.value)
            .headers(record_headers(ids));
        let producer = self.current();
        // The queue wait shares the bound: a full local queue is as unavailable as a dead broker.
        let send = producer.send(record, self.timeout);
        let margin = Duration::from_secs(1);
        let delivery = tokio::time::timeout(self.timeout + margin, send)
            .await
            .map_err(|_| ProduceError::TimedOut(self.timeout + margin))?
            .map_err(|(error, _message)| {
                self.replace_if_fatal(&producer);
                ProduceError::Rejected(error)
            })?;
        Ok((delivery.partition, delivery.offset))
    }

    /// Finds the offset of the record carrying `event_id` near the end of `partition`.
    ///
    /// When an idempotent producer retries a batch the broker had already stored (its ack was
    /// lost in a broker crash), the broker answers `DUPLICATE_SEQUENCE_NUMBER`: the record is
    /// stored, but the delivery report has no offset. A 202 must name a real position, so the
    /// record is looked up; it was written within the produce timeout, so it is recent.
    async fn locate(
        &self,
        topic: &str,
        partition: i32,
        event_id: &str,
    ) -> Result<i64, ProduceError> {
        tracing::warn!(
            partition,
            "acknowledged without an offset (a retried duplicate); locating the record"
        );
        let (bootstrap, topic, event_id) = (
            self.bootstrap.clone(),
            topic.to_owned(),
            event_id.to_owned(),
        );
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            find_event(&bootstrap, &topic, partition, &event_id, timeout)
        })
        .await
        .map_err(|e| ProduceError::Unlocated(e.to_string()))?
        .map_err(|e| ProduceError::Unlocated(e.to_string()))?
        .ok_or_else(|| {
            ProduceError::Unlocated(format!("not among the last {LOCATE_WINDOW} records"))
        })
    }
}

/// How far back from the end of a partition [`EventProducer::locate`] looks.
const LOCATE_WINDOW: i64 = 10_000;

/// The offset of the first record with `event_id` among the last [`LOCATE_WINDOW`] records
/// of `partition`. Blocking.
fn find_event(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    event_id: &str,
    timeout: Duration,
) -> Result<Option<i64>, KafkaError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ackgate-officer-locate")
        .set("enable.auto.commit", "false")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let mut assignment = TopicPartitionList::new();
    let start = low.max(high - LOCATE_WINDOW);
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        if super::kafka::carries_event(&message, event_id) {
            return Ok(Some(message.offset()));
        }
        if message.offset() + 1 >= high {
            break;
        }
    }
    Ok(None)
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

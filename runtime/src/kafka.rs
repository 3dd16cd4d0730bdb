//! Kafka conventions: topics are created by the services that need them, on start.

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
};

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

/// How often [`kafka_readiness`] asks the cluster for its metadata.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Ready while the Kafka cluster answers a metadata request naming `topic` with a leader for
/// every partition. A background task asks every two seconds until `shutdown`, so `/ready`
/// answers at once and says why not: a service whose broker is down stays up, reports
/// not-ready, and is ready again by itself when the broker is back.
pub fn kafka_readiness(
    bootstrap: &str,
    topic: &str,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<super::Readiness, KafkaError> {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "ackgate-readiness")
        .create()?;
    let consumer = std::sync::Arc::new(consumer);
    let state = std::sync::Arc::new(std::sync::Mutex::new(
        Err("Kafka not probed yet".to_owned()),
    ));
    let (probed, topic) = (state.clone(), topic.to_owned());
    tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let (consumer, topic) = (consumer.clone(), topic.clone());
            let outcome = tokio::task::spawn_blocking(move || probe(&consumer, &topic))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            *probed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = outcome;
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    });
    Ok(std::sync::Arc::new(move || {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }))
}

/// One metadata round trip. Blocking.
fn probe(consumer: &rdkafka::consumer::BaseConsumer, topic: &str) -> Result<(), String> {
    use rdkafka::consumer::Consumer;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .map_err(|e| format!("Kafka unreachable: {e}"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(format!("Kafka topic {topic} does not exist yet"));
    }
    match partitions.iter().find(|p| p.leader() < 0) {
        Some(p) => Err(format!("Kafka partition {topic}/{} has no leader", p.id())),
        None => Ok(()),
    }
}

/// [`ensure_topic`], retried every two seconds until it succeeds or `shutdown`: a service
/// started before its broker still comes up (and says it is not ready) instead of exiting.
pub async fn ensure_topic_when_reachable(
    bootstrap: String,
    topic: String,
    partitions: i32,
    replication: i32,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match ensure_topic(&bootstrap, &topic, partitions, replication).await {
            Ok(()) => return tracing::info!(%topic, "topic ready"),
            Err(e) => tracing::warn!(%topic, error = %e, "cannot create the topic yet; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}

/// Whether `record` carries the `Ackgate-Event-Id` header `event_id`.
pub fn carries_event<M: rdkafka::Message>(record: &M, event_id: &str) -> bool {
    use rdkafka::message::Headers;
    record.headers().is_some_and(|headers| {
        headers.iter().any(|h| {
            h.key == contracts::headers::message::EVENT_ID && h.value == Some(event_id.as_bytes())
        })
    })
}

/// A consumer's position on `partition` (of its one topic) and that topic. Past the last
/// delivered record it is also past any commit markers and aborted records read since.
pub fn position_of<C: rdkafka::consumer::Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    partition: i32,
) -> Option<(String, i64)> {
    let positions = consumer.position().ok()?;
    positions.elements().iter().find_map(|e| match e.offset() {
        rdkafka::Offset::Offset(at) if e.partition() == partition => {
            Some((e.topic().to_owned(), at))
        }
        _ => None,
    })
}

/// Which records [`read_to_end`] sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Committed records only.
    Committed,
    /// Every stored record: those of open and aborted transactions too.
    Uncommitted,
}

impl Isolation {
    fn as_config(self) -> &'static str {
        match self {
            Self::Committed => "read_committed",
            Self::Uncommitted => "read_uncommitted",
        }
    }
}

/// A consumer that reads by assignment (no offsets committed) with `isolation`, reporting
/// each end of partition: a transactional topic ends with a commit marker no record is
/// delivered for, so that event is how a reader knows it has everything.
pub fn reader(
    bootstrap: &str,
    group_id: &str,
    isolation: Isolation,
) -> Result<rdkafka::consumer::BaseConsumer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation.as_config())
        .create()
}

/// Why [`read_to_end`] stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ReadToEndError {
    /// Kafka refused or did not answer.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// No record came for `idle`.
    #[error("no record from {topic} for {idle:?}")]
    Idle {
        /// The topic being read.
        topic: String,
        /// How long the reader waited.
        idle: Duration,
    },
}

/// Reads every partition of `topic` from its beginning to the end it had when the read
/// began, handing each record to `visit` until it returns `false`. Blocking.
///
/// The end is the log's (a read-uncommitted high watermark): a read-committed reader is told
/// the last stable offset instead. A transactional topic ends with a commit marker no record
/// is delivered for, so a partition is done at its end-of-partition event once the reader's
/// position reached that end. `idle` bounds the wait for each record, not the whole read.
pub fn read_to_end(
    bootstrap: &str,
    topic: &str,
    isolation: Isolation,
    idle: Duration,
    mut visit: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> bool,
) -> Result<(), ReadToEndError> {
    use rdkafka::{Message, Offset, TopicPartitionList, consumer::Consumer};
    const GROUP: &str = "ackgate-read-to-end";
    let consumer = reader(bootstrap, GROUP, isolation)?;
    let ends = reader(bootstrap, GROUP, Isolation::Uncommitted)?;
    let metadata = consumer.fetch_metadata(Some(topic), idle)?;
    let mut remaining = std::collections::HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = ends.fetch_watermarks(topic, partition.id(), idle)?;
        if high > low {
            remaining.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    while !remaining.is_empty() {
        let polled = consumer.poll(idle).ok_or_else(|| ReadToEndError::Idle {
            topic: topic.to_owned(),
            idle,
        })?;
        let record = match polled {
            Err(KafkaError::PartitionEOF(partition)) => {
                let reached = position_of(&consumer, partition)
                    .is_some_and(|(_, at)| remaining.get(&partition).is_none_or(|end| at >= *end));
                if reached {
                    remaining.remove(&partition);
                }
                continue;
            }
            other => other?,
        };
        if remaining
            .get(&record.partition())
            .is_some_and(|end| record.offset() + 1 >= *end)
        {
            remaining.remove(&record.partition());
        }
        if !visit(&record) {
            break;
        }
    }
    Ok(())
}

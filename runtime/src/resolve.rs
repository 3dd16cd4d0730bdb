//! Settling an attempt whose transaction's outcome is unknown (an [`Unresolved`]): fence its
//! transactional id, then look for its record among the committed ones.
//!
//! Fencing first is what makes the answer final. `InitProducerId` on the same transactional
//! id completes a transaction that was already being committed and aborts any other, and
//! bumps the epoch, so the old holder (crashed, or a zombie paused past its lease) can never
//! commit again. After that, a read-committed search over the only records the attempt could
//! have written either finds the record (the command was accepted: reply with its position)
//! or proves there is none (produce it now). Blocking code runs on the blocking pool.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    producer::{BaseProducer, Producer},
};
use time::OffsetDateTime;

use super::{
    kafka::{self, Isolation},
    transactions::Unresolved,
};
use contracts::EventPosition;

/// Why an attempt could not be settled: its outcome stays unknown and nothing may be produced.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Kafka did not answer (fencing, watermarks, the search).
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// An open transaction kept the partition's last stable offset below its end for longer
    /// than any live transaction may run: a read-committed search cannot get past it.
    #[error(
        "partition {partition} of {topic} stayed unstable for {waited:?}: an open transaction \
         holds its last stable offset at {stable} (end {end}); if it stays open, find it with \
         `kafka-transactions.sh find-hanging` (docs/design-decisions.md, \"Brokers here\")"
    )]
    Unstable {
        /// The topic searched.
        topic: String,
        /// The partition that stayed unstable.
        partition: i32,
        /// Its last stable offset: the first record of the oldest open transaction.
        stable: i64,
        /// Its end when the search began.
        end: i64,
        /// How long the search waited.
        waited: Duration,
    },
    /// The search did not reach the end of the partition in time.
    #[error(
        "the search of partition {partition} of {topic} did not finish within {0:?}",
        SCAN_LIMIT
    )]
    SearchTimedOut {
        /// The topic searched.
        topic: String,
        /// The partition whose search did not finish.
        partition: i32,
    },
    /// The blocking task was lost (the runtime is shutting down).
    #[error("the settling task stopped before it finished")]
    Stopped,
}

/// Longest a search of one partition may take.
const SCAN_LIMIT: Duration = Duration::from_secs(60);

/// Slack for clocks and open transactions: other producers' transactions end within their
/// timeout, and records are stamped when sent.
const WINDOW_MARGIN: Duration = Duration::from_secs(30);

/// Fences `unresolved`'s transactional ids and returns the position of the committed record
/// carrying `event_id`, or `None` if the attempt stored nothing. `Err` when Kafka cannot
/// answer: the outcome stays unknown and nothing may be produced.
pub async fn settle(
    bootstrap: &str,
    topic: &str,
    unresolved: &Unresolved,
    event_id: &str,
    timeout: Duration,
) -> Result<Option<EventPosition>, SettleError> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    let (unresolved, event_id) = (unresolved.clone(), event_id.to_owned());
    let settled = tokio::task::spawn_blocking(move || {
        for transactional_id in &unresolved.transactional_ids {
            fence(&bootstrap, transactional_id, timeout)?;
        }
        find_committed(&bootstrap, &topic, &unresolved, &event_id, timeout)
    });
    settled.await.map_err(|_| SettleError::Stopped)?
}

/// Initialises transactions under `transactional_id` and lets the producer go. Blocking.
fn fence(bootstrap: &str, transactional_id: &str, timeout: Duration) -> Result<(), KafkaError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .create()?;
    producer.init_transactions(timeout)?;
    tracing::info!(transactional_id, "fenced an unresolved transactional id");
    Ok(())
}

/// The committed record carrying `event_id` among those the attempt could have written.
/// Blocking.
fn find_committed(
    bootstrap: &str,
    topic: &str,
    unresolved: &Unresolved,
    event_id: &str,
    timeout: Duration,
) -> Result<Option<EventPosition>, SettleError> {
    let committed = kafka::reader(bootstrap, SETTLE_GROUP, Isolation::Committed)?;
    let raw = kafka::reader(bootstrap, SETTLE_GROUP, Isolation::Uncommitted)?;
    let starts = search_starts(&committed, topic, unresolved, timeout)?;
    let until = OffsetDateTime::now_utc() + WINDOW_MARGIN;
    for (partition, start) in starts {
        let (_, end) = raw.fetch_watermarks(topic, partition, timeout)?;
        wait_until_stable(&committed, topic, partition, end, timeout)?;
        if let Some(offset) = scan(&committed, topic, partition, start, event_id, until)? {
            return Ok(Some(EventPosition {
                topic: topic.to_owned(),
                partition,
                offset,
            }));
        }
    }
    Ok(None)
}

/// The settling readers' consumer group (nothing is committed under it).
const SETTLE_GROUP: &str = "ackgate-settle";

/// Waits until every record below `end` is stable (committed or aborted): a read-committed
/// reader stops at the first open transaction, which may be another instance's, and the
/// record sought may lie beyond it. Open transactions end within their timeout.
fn wait_until_stable(
    committed: &BaseConsumer,
    topic: &str,
    partition: i32,
    end: i64,
    timeout: Duration,
) -> Result<(), SettleError> {
    let began = std::time::Instant::now();
    let limit = timeout + WINDOW_MARGIN;
    loop {
        let (_, stable) = committed.fetch_watermarks(topic, partition, timeout)?;
        if stable >= end {
            return Ok(());
        }
        if began.elapsed() > limit {
            return Err(SettleError::Unstable {
                topic: topic.to_owned(),
                partition,
                stable,
                end,
                waited: began.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where to start looking on each partition: the acknowledged position if there was one,
/// else the first offset stamped at or after `since` on every partition.
fn search_starts(
    consumer: &BaseConsumer,
    topic: &str,
    unresolved: &Unresolved,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    if let Some(at) = &unresolved.position {
        return Ok(vec![(at.partition, at.offset)]);
    }
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let millis = (unresolved.since.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut times = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        times.add_partition_offset(topic, partition.id(), Offset::Offset(millis))?;
    }
    let found = consumer.offsets_for_times(times, timeout)?;
    Ok(found
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(start) => Some((e.partition(), start)),
            _ => None, // nothing stamped after `since` on this partition
        })
        .collect())
}

/// Reads `partition` from `start` (read-committed, so aborted records never show) until the
/// record with `event_id`, the end of the partition, or records stamped after `until`.
fn scan(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    start: i64,
    event_id: &str,
    until: OffsetDateTime,
) -> Result<Option<i64>, SettleError> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let until_millis = (until.unix_timestamp_nanos() / 1_000_000) as i64;
    let deadline = std::time::Instant::now() + SCAN_LIMIT;
    while std::time::Instant::now() < deadline {
        let record = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(polled) => polled?,
        };
        if super::kafka::carries_event(&record, event_id) {
            return Ok(Some(record.offset()));
        }
        if record
            .timestamp()
            .to_millis()
            .is_some_and(|t| t > until_millis)
        {
            return Ok(None);
        }
    }
    Err(SettleError::SearchTimedOut {
        topic: topic.to_owned(),
        partition,
    })
}

//! The Kafka side: a consumer-group member that resumes each assigned partition from the
//! store's own offsets, applies records in batches (each batch atomically with its offsets),
//! and only then stores the offsets for the group commit, which operators watch as lag.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use contracts::EventPosition;
use futures::FutureExt;
use rdkafka::{
    ClientConfig, ClientContext, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer},
    error::KafkaError,
    message::{BorrowedMessage, Headers},
    types::RDKafkaRespErr,
};
use runtime::kafka;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    Error,
    deadletters::DeadLetterPublisher,
    event::SourceRecord,
    observe,
    store::{ApplyPolicy, Offsets, Outcome, ReadModelStore},
};

/// Where each partition resumes: a copy of the store's offsets, loaded at start and moved
/// after every batch. It can only lag the store (another instance may have applied more
/// since), and the store skips what it already holds, so it is safe to resume from.
#[derive(Default)]
pub struct ResumeFromStore {
    next: Mutex<HashMap<(String, i32), i64>>,
}

impl ResumeFromStore {
    /// Starts from the store's offsets for `topic`.
    pub fn new(topic: &str, offsets: &Offsets) -> Self {
        let next = offsets
            .iter()
            .map(|(partition, next)| ((topic.to_owned(), *partition), *next))
            .collect();
        Self {
            next: Mutex::new(next),
        }
    }

    fn advance(&self, records: &[SourceRecord]) {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        for record in records {
            let at = &record.position;
            let entry = next.entry((at.topic.clone(), at.partition)).or_insert(0);
            *entry = (*entry).max(at.offset + 1);
        }
    }

    /// The offset this consumer resumes `partition` from: what it knows the store holds.
    fn next_of(&self, topic: &str, partition: i32) -> Option<i64> {
        let next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        next.get(&(topic.to_owned(), partition)).copied()
    }

    fn move_to(&self, topic: &str, partition: i32, offset: i64) {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = next.entry((topic.to_owned(), partition)).or_insert(0);
        *entry = (*entry).max(offset);
    }

    fn offset_of(&self, topic: &str, partition: i32) -> Offset {
        let next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        next.get(&(topic.to_owned(), partition))
            .map_or(Offset::Beginning, |o| Offset::Offset(*o))
    }
}

impl ClientContext for ResumeFromStore {
    fn stats(&self, statistics: rdkafka::Statistics) {
        observe::record_lag(&statistics);
    }
}

impl ConsumerContext for ResumeFromStore {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                for (topic, partition) in partitions {
                    let offset = self.offset_of(&topic, partition);
                    if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                        tracing::error!(error = %e, topic, partition, "cannot set resume offset");
                    }
                }
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

/// The projections' consumer.
pub type EventConsumer = StreamConsumer<ResumeFromStore>;

/// Joins `group_id` and subscribes to `topic`. Auto-commit is on, but only of offsets
/// explicitly stored after a batch was applied.
pub fn create_consumer(
    bootstrap: &str,
    group_id: &str,
    topic: &str,
    fetch_wait_max_ms: u32,
    resume: ResumeFromStore,
) -> Result<EventConsumer, rdkafka::error::KafkaError> {
    let mut config = ClientConfig::new();
    if runtime::metrics::enabled() {
        config.set("statistics.interval.ms", observe::STATISTICS_INTERVAL_MS);
    }
    let consumer: EventConsumer = config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        .set("client.id", "ackgate-projections")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // Notice a topic created after we subscribed within seconds, not minutes.
        .set("topic.metadata.refresh.interval.ms", "2000")
        // Transactions leave commit markers (and aborted records) no record is delivered
        // for; the end-of-partition event lets the store's offset move past them.
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", fetch_wait_max_ms.to_string())
        .create_with_context(resume)?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// How the consumer applies records.
pub struct Applier<S> {
    /// The read models.
    pub store: Arc<S>,
    /// Retries before parking.
    pub policy: ApplyPolicy,
    /// Most records per transaction.
    pub batch_max: usize,
    /// Publishes parked events to the dead-letter topic.
    pub dead_letters: DeadLetterPublisher,
    /// The next offset of every partition this consumer applied, moved after every committed
    /// batch (read-your-writes waiters listen). One topic: the consumer's.
    pub applied: watch::Sender<Offsets>,
    /// Where applied events are reported for their commands' timelines.
    pub timeline: runtime::Timeline,
}

/// Applies batches until `shutdown`, then commits the stored offsets and leaves the group,
/// waiting at most `patience` for that (with the brokers gone it never ends).
pub async fn run<S: ReadModelStore>(
    consumer: EventConsumer,
    applier: Applier<S>,
    shutdown: CancellationToken,
    patience: Duration,
) {
    let owned = ClosedOffRuntime(Some(consumer));
    if let Some(consumer) = &owned.0 {
        consume(consumer, &applier, &shutdown).await;
    }
    owned.close(patience).await;
}

/// Applies batches until `shutdown`.
async fn consume<S: ReadModelStore>(
    consumer: &EventConsumer,
    applier: &Applier<S>,
    shutdown: &CancellationToken,
) {
    let mut last_gap = None;
    while let Some(polled) = next_batch(consumer, applier.batch_max, shutdown).await {
        let (batch, ended) = match polled {
            Polled::Records { batch, ended } => (batch, ended),
            Polled::EndOf(partition) => {
                applier.caught_up(consumer, partition).await;
                continue;
            }
        };
        match applier
            .apply_until_done(&batch, &mut last_gap, shutdown, consumer.context())
            .await
        {
            Applied::Done => {
                consumer.context().advance(&batch);
                store_group_offsets(consumer, &batch);
                for partition in ended {
                    applier.caught_up(consumer, partition).await;
                }
            }
            Applied::Rewind(gap) => {
                // The store lost commits: waiters must not trust what this consumer saw.
                let lost = |next: &mut Offsets| {
                    next.insert(gap.partition, gap.expected);
                };
                applier.applied.send_modify(lost);
                rewind(consumer, &batch, &gap);
            }
            Applied::ShutDown => break,
        }
    }
}

/// A consumer closed on a thread of its own, however its task ends (finished, or dropped
/// by a stop out of grace). Closing commits the stored offsets and leaves the group; both
/// block, and with the brokers gone neither ends: a runtime thread stuck there would keep
/// the process from ever exiting.
struct ClosedOffRuntime(Option<EventConsumer>);

impl ClosedOffRuntime {
    /// Closes the consumer, waiting at most `patience` for it.
    async fn close(mut self, patience: Duration) {
        let Some(closed) = self.0.take().map(close_on_own_thread) else {
            return;
        };
        if tokio::time::timeout(patience, closed).await.is_err() {
            tracing::warn!(
                patience_ms = u64::try_from(patience.as_millis()).unwrap_or(u64::MAX),
                "the Kafka consumer did not close in time (brokers gone?); leaving it"
            );
        }
    }
}

impl Drop for ClosedOffRuntime {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            drop(close_on_own_thread(consumer));
        }
    }
}

/// Commits and closes `consumer` on a new thread, which the process does not wait for when
/// it exits. The receiver resolves once the consumer is closed.
fn close_on_own_thread(consumer: EventConsumer) -> oneshot::Receiver<()> {
    let (done, closed) = oneshot::channel();
    let close = move || {
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final offset commit skipped");
        }
        drop(consumer); // leaves the group
        let _ = done.send(());
    };
    let thread = std::thread::Builder::new().name("kafka-consumer-close".to_owned());
    if let Err(e) = thread.spawn(close) {
        tracing::error!(error = %e, "no thread to close the Kafka consumer on");
    }
    closed
}

/// What the consumer got.
enum Polled {
    /// Records, in order, and the partitions whose end came right after them.
    Records {
        /// The records.
        batch: Vec<SourceRecord>,
        /// Partitions that reached their end after the batch.
        ended: Vec<i32>,
    },
    /// The end of a partition (its number): everything published is read.
    EndOf(i32),
}

/// The next records, up to `max`, waiting only for the first, or the end of a partition;
/// `None` on shutdown.
async fn next_batch(
    consumer: &EventConsumer,
    max: usize,
    shutdown: &CancellationToken,
) -> Option<Polled> {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return None,
            received = consumer.recv() => received,
        };
        match first {
            Ok(first) => {
                let mut batch = vec![source_record(&first)];
                let mut ended = Vec::new();
                while batch.len() < max {
                    match consumer.recv().now_or_never() {
                        Some(Ok(record)) => batch.push(source_record(&record)),
                        Some(Err(KafkaError::PartitionEOF(partition))) => ended.push(partition),
                        _ => break,
                    }
                }
                return Some(Polled::Records { batch, ended });
            }
            Err(KafkaError::PartitionEOF(partition)) => return Some(Polled::EndOf(partition)),
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer error; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A partition whose batch started past the store's offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    topic: String,
    partition: i32,
    expected: i64,
    found: i64,
}

/// What became of a batch.
enum Applied {
    /// Applied and committed.
    Done,
    /// Not applied: re-read from the store's offset first.
    Rewind(Gap),
    /// Shut down before it could be applied.
    ShutDown,
}

/// Seeks every partition of the discarded `batch` back: the gapped one to the store's
/// offset, the others to their first record in the batch.
fn rewind(consumer: &EventConsumer, batch: &[SourceRecord], gap: &Gap) {
    tracing::warn!(
        ?gap,
        "records missing from the store; re-reading the partition from its offset"
    );
    let mut firsts: HashMap<(String, i32), i64> = HashMap::new();
    for record in batch {
        let at = &record.position;
        firsts
            .entry((at.topic.clone(), at.partition))
            .or_insert(at.offset);
    }
    firsts.insert((gap.topic.clone(), gap.partition), gap.expected);
    for ((topic, partition), offset) in firsts {
        if let Err(e) = consumer.seek(
            &topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            tracing::warn!(error = %e, topic, partition, "seek failed (partition revoked?)");
        }
    }
}

/// Moves `next` past every record of `batch`.
fn moved_past(next: &mut Offsets, batch: &[SourceRecord]) {
    for record in batch {
        let entry = next.entry(record.position.partition).or_insert(0);
        *entry = (*entry).max(record.position.offset + 1);
    }
}

impl<S: ReadModelStore> Applier<S> {
    /// At the end of a partition the consumer's position may be past the last record it
    /// delivered: the records in between were commit markers or aborted records. Moves the
    /// store's offset (and the group's) there too, so lag reads 0 and read-your-writes
    /// waiters see the partition as caught up.
    async fn caught_up(&self, consumer: &EventConsumer, partition: i32) {
        let Some((topic, position)) = kafka::position_of(consumer, partition) else {
            return;
        };
        let resume = consumer.context();
        if resume
            .next_of(&topic, partition)
            .is_none_or(|next| next >= position)
        {
            return;
        }
        match self.store.advance(&topic, partition, position).await {
            Ok(()) => {
                resume.move_to(&topic, partition, position);
                self.applied.send_modify(|next| {
                    let entry = next.entry(partition).or_insert(0);
                    *entry = (*entry).max(position);
                });
                if let Err(e) = consumer.store_offset(&topic, partition, position - 1) {
                    tracing::debug!(error = %e, "group offset not stored (partition revoked?)");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, partition, "offset past transaction markers not stored")
            }
        }
    }

    /// Applies `batch`, retrying while the store is unreachable. A gap is rewound the first
    /// time; the same gap again means the records are not in Kafka any more (retention,
    /// compaction), so the store's offset is moved past them and the batch applied.
    async fn apply_until_done(
        &self,
        batch: &[SourceRecord],
        last_gap: &mut Option<Gap>,
        shutdown: &CancellationToken,
        resume: &ResumeFromStore,
    ) -> Applied {
        let mut pause = Duration::from_millis(100);
        let spans = observe::process_spans(batch);
        loop {
            match self.store.apply_batch(batch, self.policy).await {
                Ok(outcomes) => {
                    *last_gap = None;
                    observe::applied(batch, &outcomes, &spans);
                    log_outcomes(batch, &outcomes);
                    self.applied.send_modify(|next| moved_past(next, batch));
                    crate::timeline::report::applied(&self.timeline, batch, &outcomes);
                    if outcomes.contains(&Outcome::Parked) {
                        self.dead_letters.publish_pending(self.store.as_ref()).await;
                    }
                    return Applied::Done;
                }
                Err(Error::Gap {
                    topic,
                    partition,
                    expected,
                    found,
                }) => {
                    let gap = Gap {
                        topic,
                        partition,
                        expected,
                        found,
                    };
                    // This consumer read on from exactly where the store stands, so what it
                    // skipped were commit markers or aborted records, not lost commits.
                    let skipped = resume.next_of(&gap.topic, gap.partition) == Some(expected);
                    if !skipped && last_gap.as_ref() != Some(&gap) {
                        *last_gap = Some(gap.clone());
                        return Applied::Rewind(gap);
                    }
                    if !skipped {
                        tracing::warn!(
                            ?gap,
                            "records are gone from Kafka; moving the store's offset past them"
                        );
                    }
                    let moved = self.store.advance(&gap.topic, gap.partition, gap.found);
                    match moved.await {
                        Ok(()) => continue,
                        Err(e) => tracing::error!(error = %e, "offset not moved; retrying"),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "batch not applied; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Applied::ShutDown,
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(Duration::from_secs(5)),
            }
        }
    }
}

fn log_outcomes(batch: &[SourceRecord], outcomes: &[Outcome]) {
    // Per-record lines are debug-only: skip the header lookups unless someone reads them.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for (record, outcome) in batch.iter().zip(outcomes) {
        let correlation_id = record
            .headers
            .iter()
            .find(|(name, _)| name == contracts::headers::message::CORRELATION_ID)
            .map_or("", |(_, value)| value.as_str());
        tracing::debug!(correlation_id, position = %record.position.token(), ?outcome, "record applied");
    }
}

/// Stores, for the group commit, the last offset of each partition in the batch.
fn store_group_offsets(consumer: &EventConsumer, batch: &[SourceRecord]) {
    let mut last: HashMap<(&str, i32), i64> = HashMap::new();
    for record in batch {
        let at = &record.position;
        let offset = last
            .entry((at.topic.as_str(), at.partition))
            .or_insert(at.offset);
        *offset = (*offset).max(at.offset);
    }
    for ((topic, partition), offset) in last {
        if let Err(e) = consumer.store_offset(topic, partition, offset) {
            tracing::debug!(error = %e, "group offset not stored (partition revoked?)");
        }
    }
}

/// Copies a record out of the consumer's buffer.
pub fn source_record(record: &BorrowedMessage<'_>) -> SourceRecord {
    let headers = record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    (h.key.to_owned(), value.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    SourceRecord {
        position: EventPosition {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
        },
        key: record
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        payload: record.payload().unwrap_or_default().to_vec(),
        headers,
        timestamp_ms: record.timestamp().to_millis(),
    }
}

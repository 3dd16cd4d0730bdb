//! Transactional delivery with group commit: every event a service produces is written inside
//! a Kafka transaction, and a command is accepted only once its transaction committed.
//!
//! Why: an idempotent producer alone leaves two ways to write a second record with the same
//! eventId — a produce whose acknowledgement never came (the record may be stored, the retry
//! writes it again) and a crash between Kafka's ack and the ledger write (the retry cannot
//! tell). With transactions the outcome of an attempt can always be settled afterwards:
//! re-initialising its transactional id *fences* it (Kafka completes or aborts whatever it
//! left open, and no zombie holding the id can commit again), after which a read-committed
//! search tells for certain whether its record exists (see [`super::resolve`]).
//!
//! A few *lanes* run side by side, each a task owning one producer and its transactions: a
//! command goes to the least busy lane, requests queue while that lane's commit is in flight
//! and its next transaction carries all of them, so throughput grows with load while each
//! command pays one commit, and one lane's commit markers are written while another commits.
//! When a commit's outcome is unknown the lane gives up its transactional id and takes a new
//! one, so that fencing an id found in the ledger never disturbs live work.

mod commit;

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientConfig,
    error::KafkaError,
    message::OwnedHeaders,
    producer::{FutureProducer, FutureRecord, Producer},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use self::commit::CommitFailure;
use super::producer::{OutgoingRecord, ProduceError};
use contracts::EventPosition;

/// Attempts of one command whose transactions may or may not have committed: what it takes
/// to settle them. Stored with a parked command or an in-flight attempt in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unresolved {
    /// The transactional ids the record was (or may have been) written under, oldest first.
    pub transactional_ids: Vec<String>,
    /// When the first of these attempts began: a record of theirs carries a later timestamp.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Where the record was written, when Kafka acknowledged it before the commit failed
    /// (kept for a single attempt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<EventPosition>,
}

impl Unresolved {
    /// An attempt about to write under `transactional_id`, from now.
    pub fn attempt(transactional_id: String) -> Self {
        Self {
            transactional_ids: vec![transactional_id],
            since: OffsetDateTime::now_utc() - Duration::from_secs(1),
            position: None,
        }
    }

    /// These attempts and a later one, to settle together: every id, from the earliest time.
    pub fn and(self, later: Self) -> Self {
        let mut transactional_ids = self.transactional_ids;
        for id in later.transactional_ids {
            if !transactional_ids.contains(&id) {
                transactional_ids.push(id);
            }
        }
        Self {
            transactional_ids,
            since: self.since.min(later.since),
            position: None,
        }
    }
}

/// A record waiting for the next transaction.
struct Queued {
    topic: String,
    key: String,
    value: Vec<u8>,
    headers: OwnedHeaders,
    /// The transactional id the command was begun under (recorded in its ledger entry).
    expected_id: String,
    reply: oneshot::Sender<Result<(i32, i64), ProduceError>>,
}

/// Retry backoff of the transactional producer (milliseconds), see [`Committer::init`].
const RETRY_BACKOFF_MS: &str = "5";

/// Most records one transaction carries.
const MAX_BATCH: usize = 512;

/// Sends records through transactions committed by tasks of their own: several *lanes*,
/// each one producer with its own transactional id, so that one lane's commit markers are
/// being written while another lane's transaction runs (a transaction begun on a lane whose
/// markers are still being written is refused with `CONCURRENT_TRANSACTIONS` and retried
/// after librdkafka's fixed 20 ms).
#[derive(Clone)]
pub struct TransactionalSink {
    lanes: Arc<[Lane]>,
    /// Where the search for the least busy lane starts, so that ties rotate.
    next: Arc<AtomicUsize>,
}

/// One committer task and what the sink needs to route to it.
struct Lane {
    queue: mpsc::Sender<Queued>,
    current_id: Arc<Mutex<String>>,
    state: Arc<Mutex<Result<(), String>>>,
    /// Requests routed to this lane and not answered yet (see [`Outstanding`]).
    outstanding: Arc<AtomicUsize>,
}

/// What the committer task needs.
struct Committer {
    config: ClientConfig,
    id_prefix: String,
    timeout: Duration,
    current_id: Arc<Mutex<String>>,
    state: Arc<Mutex<Result<(), String>>>,
}

impl TransactionalSink {
    /// Starts `lanes` committers (at least one). `config` is the idempotent producer's
    /// configuration; lane `l` writes under the transactional ids
    /// `<id_prefix>.<l>.<generation>`, with `transaction.timeout.ms` a few seconds past the
    /// produce bound, so Kafka aborts (and fences) a transaction whose producer vanished well
    /// before its lease lets another instance take the command over.
    pub fn start(config: &ClientConfig, id_prefix: &str, timeout: Duration, lanes: usize) -> Self {
        let lanes: Vec<Lane> = (0..lanes.max(1))
            .map(|lane| Lane::start(config, format!("{id_prefix}.{lane}"), timeout))
            .collect();
        Self {
            lanes: lanes.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// `Ok` while at least one lane has an initialised transactional producer.
    pub fn readiness(&self) -> super::Readiness {
        let states: Vec<_> = self.lanes.iter().map(|l| l.state.clone()).collect();
        Arc::new(move || {
            let mut first_error = None;
            for state in &states {
                match state.lock().unwrap_or_else(PoisonError::into_inner).clone() {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Err(first_error.unwrap_or_default())
        })
    }

    /// The transactional id the next command is to be written under: the ready lane with
    /// the fewest requests outstanding. Record it with the command before producing, so
    /// whoever takes the command over can fence it, and pass it to [`Self::send`].
    pub fn current_id(&self) -> String {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.lanes.len();
        let lane = (0..count)
            .map(|i| &self.lanes[(start + i) % count])
            .min_by_key(|lane| (!lane.is_ready(), lane.outstanding.load(Ordering::Relaxed)))
            .unwrap_or(&self.lanes[0]);
        lane.current_id()
    }

    /// Writes one record in the next transaction of the lane writing under `expected_id`
    /// (the id recorded with the command) and returns its partition and offset once that
    /// transaction committed. If no lane writes under that id any more, nothing is written.
    pub async fn send(
        &self,
        record: OutgoingRecord<'_>,
        headers: OwnedHeaders,
        expected_id: &str,
    ) -> Result<(i32, i64), ProduceError> {
        let Some(lane) = self.lanes.iter().find(|l| l.current_id() == expected_id) else {
            return Err(stale_id());
        };
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            topic: record.topic.to_owned(),
            key: record.key.to_owned(),
            value: record.value.to_vec(),
            headers,
            expected_id: expected_id.to_owned(),
            reply,
        };
        let _counted = Outstanding::count(&lane.outstanding);
        let stopped = || ProduceError::NotSent("the producer is stopping".to_owned());
        lane.queue.send(queued).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// One request counted as outstanding on its lane until dropped: answered, failed, or
/// abandoned by a caller that stopped waiting.
struct Outstanding<'a>(&'a AtomicUsize);

impl<'a> Outstanding<'a> {
    fn count(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lane {
    fn start(config: &ClientConfig, id_prefix: String, timeout: Duration) -> Self {
        let (queue, requests) = mpsc::channel(MAX_BATCH * 8);
        let current_id = Arc::new(Mutex::new(format!("{id_prefix}.0")));
        let state = Arc::new(Mutex::new(Err(
            "Kafka transactions are being initialised".to_owned()
        )));
        let committer = Committer {
            config: config.clone(),
            id_prefix,
            timeout,
            current_id: current_id.clone(),
            state: state.clone(),
        };
        tokio::spawn(committer.run(requests));
        Self {
            queue,
            current_id,
            state,
            outstanding: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn current_id(&self) -> String {
        self.current_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn is_ready(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_ok()
    }
}

/// The answer to a command whose lane moved on to another transactional id after the
/// command was recorded under the old one.
fn stale_id() -> ProduceError {
    ProduceError::NotSent(
        "the producer changed transactional id after the command began; nothing was written"
            .to_owned(),
    )
}

impl Committer {
    async fn run(self, mut requests: mpsc::Receiver<Queued>) {
        let mut generation = 0u64;
        loop {
            let id = format!("{}.{generation}", self.id_prefix);
            *self
                .current_id
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = id.clone();
            let producer = match self.init(&id).await {
                Ok(producer) => producer,
                Err(e) => {
                    self.set_state(Err(format!("Kafka transactions unavailable: {e}")));
                    tracing::warn!(transactional_id = %id, error = %e, "Kafka transactions not ready; retrying");
                    if !refuse_waiting(&mut requests, &e.to_string()) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            tracing::info!(transactional_id = %id, "transactional producer ready");
            self.set_state(Ok(()));
            let closed = self.serve(&producer, &id, &mut requests).await;
            // Dropping a producer purges and flushes; keep that off the async workers.
            tokio::task::spawn_blocking(move || drop(producer));
            if closed {
                return;
            }
            self.set_state(Err("Kafka transactions are being re-initialised".to_owned()));
            generation += 1;
        }
    }

    fn set_state(&self, state: Result<(), String>) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// A producer with `id`, its transactions initialised (which also fences any earlier
    /// holder of the id).
    async fn init(&self, id: &str) -> Result<FutureProducer, KafkaError> {
        let producer: FutureProducer = self
            .config
            .clone()
            .set("transactional.id", id)
            .set("transaction.timeout.ms", transaction_timeout(self.timeout))
            // A transaction begun right after a commit is refused with CONCURRENT_TRANSACTIONS
            // until the previous markers are written (milliseconds); librdkafka's default
            // 100 ms retry backoff made every command wait ~100 ms (measured; BENCHMARKS.md).
            .set("retry.backoff.ms", RETRY_BACKOFF_MS)
            .create()?;
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || producer.init_transactions(timeout).map(|()| producer))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "init task failed");
                KafkaError::Canceled
            })?
    }

    /// Commits batches until the queue closes (`true`) or the id must be given up (`false`).
    async fn serve(
        &self,
        producer: &FutureProducer,
        id: &str,
        requests: &mut mpsc::Receiver<Queued>,
    ) -> bool {
        while let Some(first) = requests.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (current, stale): (Vec<_>, Vec<_>) =
                batch.into_iter().partition(|q| q.expected_id == id);
            for q in stale {
                let _ = q.reply.send(Err(stale_id()));
            }
            if !current.is_empty() && !self.commit(producer, id, current).await {
                return false;
            }
        }
        true
    }

    /// One transaction: begin, produce the batch, commit. Answers every request; `false`
    /// when a command may need this id fenced to settle it.
    async fn commit(&self, producer: &FutureProducer, id: &str, batch: Vec<Queued>) -> bool {
        if let Err(e) = producer.begin_transaction() {
            for queued in batch {
                let _ = queued.reply.send(Err(ProduceError::NotSent(e.to_string())));
            }
            return false;
        }
        // Records are timestamped when sent, so none of this batch is older than this.
        let started = OffsetDateTime::now_utc() - Duration::from_secs(1);
        let mut sent = Vec::with_capacity(batch.len());
        for queued in batch {
            let record = FutureRecord::to(&queued.topic)
                .key(&queued.key)
                .payload(&queued.value)
                .headers(queued.headers.clone());
            match producer.send_result(record) {
                Ok(delivery) => sent.push((queued, delivery)),
                Err((e, _)) => {
                    let _ = queued.reply.send(Err(ProduceError::NotSent(e.to_string())));
                }
            }
        }
        // Every delivery report first: each names its record's position, which the 202 carries
        // and which settles the command if the commit's outcome is unknown.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut positions = Vec::with_capacity(sent.len());
        for (queued, delivery) in sent {
            let position = match tokio::time::timeout_at(deadline, delivery).await {
                Ok(Ok(Ok(delivered))) => Some((delivered.partition, delivered.offset)),
                _ => None,
            };
            positions.push((queued, position));
        }
        let committing = producer.clone();
        let timeout = self.timeout;
        let committed =
            tokio::task::spawn_blocking(move || commit::commit_transaction(&committing, timeout))
                .await;
        let failure = match committed {
            Ok(Ok(())) => {
                // A record without its report will be settled by fencing this id: give it up.
                let complete = positions.iter().all(|(_, position)| position.is_some());
                for (queued, position) in positions {
                    // Committed, but without a delivery report: settled like an unknown outcome.
                    let outcome = position.ok_or_else(|| ProduceError::Unresolved {
                        unresolved: self.unresolved(id, started, &queued.topic, None),
                        reason: "committed, but the record's delivery report is missing".to_owned(),
                    });
                    let _ = queued.reply.send(outcome);
                }
                return complete;
            }
            Ok(Err(failure)) => failure,
            Err(join) => {
                tracing::error!(error = %join, "commit task failed");
                CommitFailure::unknown(join.to_string())
            }
        };
        self.after_failed_commit(producer, id, started, positions, failure)
            .await
    }

    /// An abortable failure is aborted: nothing was stored. Anything else (a timeout, a fatal
    /// error, a fenced producer) leaves the outcome unknown: each command learns what it
    /// takes to settle it, and the id is given up.
    async fn after_failed_commit(
        &self,
        producer: &FutureProducer,
        id: &str,
        started: OffsetDateTime,
        positions: Vec<(Queued, Option<(i32, i64)>)>,
        error: CommitFailure,
    ) -> bool {
        if error.requires_abort {
            let aborting = producer.clone();
            let timeout = self.timeout;
            let aborted =
                tokio::task::spawn_blocking(move || aborting.abort_transaction(timeout)).await;
            if matches!(aborted, Ok(Ok(()))) {
                tracing::warn!(error = %error, "transaction aborted; nothing of it was stored");
                for (queued, _) in positions {
                    let _ = queued
                        .reply
                        .send(Err(ProduceError::Aborted(error.to_string())));
                }
                return true;
            }
        }
        tracing::error!(transactional_id = id, error = %error, "transaction outcome unknown; giving up this transactional id");
        for (queued, position) in positions {
            let _ = queued.reply.send(Err(ProduceError::Unresolved {
                unresolved: self.unresolved(id, started, &queued.topic, position),
                reason: error.to_string(),
            }));
        }
        false
    }

    /// What it takes to settle a record of transaction `id` begun at `since`.
    fn unresolved(
        &self,
        id: &str,
        since: OffsetDateTime,
        topic: &str,
        at: Option<(i32, i64)>,
    ) -> Unresolved {
        Unresolved {
            transactional_ids: vec![id.to_owned()],
            since,
            position: at.map(|(partition, offset)| EventPosition {
                topic: topic.to_owned(),
                partition,
                offset,
            }),
        }
    }
}

/// `transaction.timeout.ms`: the produce bound plus five seconds.
fn transaction_timeout(produce_timeout: Duration) -> String {
    (produce_timeout + Duration::from_secs(5))
        .as_millis()
        .to_string()
}

/// Refuses every request already waiting (nothing of them was sent). `false` once the
/// queue is closed.
fn refuse_waiting(requests: &mut mpsc::Receiver<Queued>, reason: &str) -> bool {
    loop {
        match requests.try_recv() {
            Ok(q) => {
                let _ = q.reply.send(Err(ProduceError::NotSent(format!(
                    "Kafka transactions are not available: {reason}"
                ))));
            }
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane with no committer behind it: enough to test the routing.
    fn lane(id: &str, ready: bool, outstanding: usize) -> Lane {
        Lane {
            queue: mpsc::channel(1).0,
            current_id: Arc::new(Mutex::new(id.to_owned())),
            state: Arc::new(Mutex::new(if ready {
                Ok(())
            } else {
                Err("initialising".to_owned())
            })),
            outstanding: Arc::new(AtomicUsize::new(outstanding)),
        }
    }

    fn sink(lanes: Vec<Lane>) -> TransactionalSink {
        TransactionalSink {
            lanes: lanes.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    #[test]
    fn a_command_goes_to_the_ready_lane_with_the_fewest_requests() {
        let sink = sink(vec![
            lane("a", true, 3),
            lane("b", false, 0),
            lane("c", true, 1),
        ]);
        for _ in 0..3 {
            assert_eq!(sink.current_id(), "c");
        }
    }

    #[test]
    fn idle_lanes_take_turns() {
        let sink = sink(vec![lane("a", true, 0), lane("b", true, 0)]);
        let chosen: Vec<String> = (0..4).map(|_| sink.current_id()).collect();
        assert_eq!(chosen, ["a", "b", "a", "b"]);
    }

    #[test]
    fn readiness_needs_one_ready_lane() {
        let none = sink(vec![lane("a", false, 0), lane("b", false, 0)]);
        assert_eq!((none.readiness())(), Err("initialising".to_owned()));
        let one = sink(vec![lane("a", false, 0), lane("b", true, 0)]);
        assert_eq!((one.readiness())(), Ok(()));
    }

    const RECORD: OutgoingRecord<'static> = OutgoingRecord {
        topic: "t",
        key: "key",
        value: b"value",
    };

    #[tokio::test]
    async fn a_request_abandoned_by_its_caller_is_no_longer_outstanding() {
        // A queue nobody serves: the request is taken, the answer never comes.
        let (queue, _unserved) = mpsc::channel(1);
        let sink = sink(vec![Lane {
            queue,
            ..lane("a", true, 0)
        }]);
        let send = sink.send(RECORD, OwnedHeaders::new(), "a");
        let waited = tokio::time::timeout(Duration::from_millis(50), send).await;
        assert!(waited.is_err(), "no answer without a committer");
        assert_eq!(sink.lanes[0].outstanding.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_command_whose_lane_moved_on_is_not_sent() {
        let sink = sink(vec![lane("x.0.1", true, 0)]);
        let sent = sink.send(RECORD, OwnedHeaders::new(), "x.0.0").await;
        assert!(matches!(sent, Err(ProduceError::NotSent(_))), "{sent:?}");
    }
}

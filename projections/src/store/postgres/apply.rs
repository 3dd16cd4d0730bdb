//! Writing to one generation inside a transaction: a batch of records with its offsets,
//! or a re-drive of one key's parked events.
//!
//! A batch is first applied optimistically: all its decoded events at once (see [`bulk`]),
//! no savepoints. If the read model
//! refuses an event, that transaction is abandoned ([`crate::Error::Refused`]) and the batch
//! is applied again carefully: each event under a savepoint, so the refused one is retried
//! and then parked without losing the rest. A connection failure fails the whole
//! transaction, which the caller retries.

use std::collections::{HashMap, HashSet};

use contracts::{
    EventPosition,
    deadletter::{ParkedEvent, PoisonCode},
};
use tokio_postgres::{Transaction, error::SqlState};

mod one;

use super::bulk;
use crate::{
    Result,
    event::{DecodedEvent, Decoder, EventKind, EventMeta, Poison, SourceRecord},
    store::{ApplyPolicy, KeyRedrive, Outcome, Redriven, UnpublishedDeadLetter, views},
};
use one::apply_event;

/// Per-batch counters, added to the generation's `counters` at commit.
#[derive(Default)]
struct Counters {
    duplicate_records: i64,
    superseded: i64,
    unreadable: i64,
    /// The newest `occurredAt` seen, in microseconds since the epoch.
    last_event_at_us: Option<i64>,
}

impl Counters {
    fn saw(&mut self, meta: &EventMeta) {
        let micros =
            i64::try_from(meta.occurred_at.unix_timestamp_nanos() / 1000).unwrap_or_default();
        self.last_event_at_us = self.last_event_at_us.max(Some(micros));
    }

    fn count(&mut self, outcome: Outcome) {
        self.duplicate_records += i64::from(outcome == Outcome::Duplicate);
        self.superseded += i64::from(outcome == Outcome::Superseded);
    }
}

/// How a batch treats an event the read model refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No savepoints for what can be applied set-based; a refusal fails the transaction with
    /// [`crate::Error::Refused`].
    Optimistic,
    /// A savepoint per event; a refusal is retried, then the event is parked.
    Careful,
}

/// Decoded events waiting for one set-based apply, with their slots in the outcomes.
type Pending = Vec<(usize, (DecodedEvent, EventPosition))>;

/// Applies `records` to the generation whose schema is on the transaction's search path,
/// skipping records below their partition's stored offset, and stores the new offsets.
pub(crate) async fn apply_batch(
    tx: &mut Transaction<'_>,
    decoder: &Decoder,
    records: &[SourceRecord],
    policy: ApplyPolicy,
    mode: Mode,
) -> Result<Vec<Outcome>> {
    let Some(topic) = records.first().map(|r| r.position.topic.clone()) else {
        return Ok(Vec::new());
    };
    let (mut next, seen) = lock_offsets(tx, &topic, records).await?;
    crate::store::first_gap(records, |partition| {
        seen.contains(&partition)
            .then(|| next.get(&partition).copied())
            .flatten()
    })?;
    let mut blocked = parked_keys(tx, &topic, records).await?;
    let mut counters = Counters::default();
    let mut outcomes = Vec::with_capacity(records.len());
    let mut pending = Pending::new();
    for record in records {
        let at = &record.position;
        let next_offset = next.entry(at.partition).or_insert(0);
        if *next_offset > at.offset {
            outcomes.push(Outcome::AlreadyApplied);
            continue;
        }
        *next_offset = at.offset + 1;
        let decided = decoder.decide(record, blocked.get(&record.key));
        if let Ok(event) = &decided {
            counters.saw(&event.meta);
        }
        let outcome = match (decided, mode) {
            (Ok(event), Mode::Optimistic) if !is_change(&event) => {
                pending.push((outcomes.len(), (event, at.clone())));
                Outcome::Recorded
            }
            (decided, _) => {
                // A change reads the officer as the batch left it so far.
                flush(tx, &mut pending, &mut outcomes, &mut counters).await?;
                apply_or_park(tx, record, decided, policy, &mut counters).await?
            }
        };
        if outcome == Outcome::Parked {
            blocked
                .entry(record.key.clone())
                .or_insert_with(|| at.clone());
        }
        outcomes.push(outcome);
    }
    flush(tx, &mut pending, &mut outcomes, &mut counters).await?;
    store_offsets(tx, &topic, &next).await?;
    add_counters(tx, &counters).await?;
    Ok(outcomes)
}

fn is_change(event: &DecodedEvent) -> bool {
    matches!(event.kind, EventKind::OfficerChange(_))
}

/// Applies the pending events set-based and fills in their outcomes.
async fn flush(
    tx: &Transaction<'_>,
    pending: &mut Pending,
    outcomes: &mut [Outcome],
    counters: &mut Counters,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let (slots, events): (Vec<usize>, Vec<_>) = std::mem::take(pending).into_iter().unzip();
    let applied = bulk::apply_events(tx, &events).await?;
    for (slot, outcome) in slots.into_iter().zip(applied) {
        counters.count(outcome);
        outcomes[slot] = outcome;
    }
    Ok(())
}

/// Applies one decided record under a savepoint with retries, or parks it.
async fn apply_or_park(
    tx: &mut Transaction<'_>,
    record: &SourceRecord,
    decided: Result<DecodedEvent, Poison>,
    policy: ApplyPolicy,
    counters: &mut Counters,
) -> Result<Outcome> {
    let applied = match decided {
        Ok(event) => apply_with_retries(tx, &event, &record.position, policy).await?,
        Err(poison) => Err(poison),
    };
    let poison = match applied {
        Ok(outcome) => {
            counters.count(outcome);
            return Ok(outcome);
        }
        Err(poison) => poison,
    };
    counters.unreadable += i64::from(poison.code != PoisonCode::BlockedByEarlierEvent);
    park(tx, record, poison, policy.attempts).await?;
    Ok(Outcome::Parked)
}

/// A refusal by the read model becomes [`crate::Error::Refused`] (apply the batch again,
/// carefully); anything else is a failure of the database.
pub(super) fn refused_or_failed(error: tokio_postgres::Error) -> crate::Error {
    if is_refusal(&error) {
        crate::Error::Refused(error.to_string())
    } else {
        error.into()
    }
}

/// Why one event was not applied.
enum NotApplied {
    /// The read model refuses it: bad data, a violated constraint, a raised exception, a
    /// serialization conflict, or a change to an officer it does not hold.
    Refused(String),
    /// The database itself failed (connection lost).
    Failed(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for NotApplied {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_refusal(&e) {
            let reason = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned());
            Self::Refused(reason)
        } else {
            Self::Failed(e)
        }
    }
}

impl From<crate::Error> for NotApplied {
    fn from(e: crate::Error) -> Self {
        Self::Refused(e.to_string())
    }
}

/// Applies one event under a savepoint, up to `policy.attempts` times while the read model
/// refuses it. `Ok(Err(_))` means refused every time; `Err(_)` is a failure of the
/// database itself.
async fn apply_with_retries(
    tx: &mut Transaction<'_>,
    event: &DecodedEvent,
    at: &EventPosition,
    policy: ApplyPolicy,
) -> Result<Result<Outcome, Poison>> {
    let mut pause = policy.backoff;
    let mut last_refusal = String::new();
    for attempt in 1..=policy.attempts.max(1) {
        let savepoint = tx.savepoint("apply_event").await?;
        match apply_event(&savepoint, event, at).await {
            Ok(outcome) => {
                savepoint.commit().await?;
                return Ok(Ok(outcome));
            }
            Err(NotApplied::Refused(reason)) => {
                savepoint.rollback().await?;
                tracing::warn!(attempt, reason, "the read model refused the event");
                last_refusal = reason;
                if attempt < policy.attempts {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
            Err(NotApplied::Failed(e)) => return Err(e.into()),
        }
    }
    let detail = format!(
        "the read model refused the event {} times: {last_refusal}",
        policy.attempts.max(1)
    );
    Ok(Err(Poison::refused(detail)))
}

/// A refusal of this event (bad data, a violated constraint, a raised exception, a
/// serialization conflict), as opposed to the database being unreachable.
fn is_refusal(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        let class = code.code().get(..2).unwrap_or_default();
        matches!(class, "22" | "23" | "P0" | "40") || code == &SqlState::UNDEFINED_FUNCTION
    })
}

/// Creates the offset rows of the batch's partitions if needed, then locks them, so two
/// writers of one partition (a rebalance in flight, a re-drive) take turns.
async fn lock_offsets(
    tx: &Transaction<'_>,
    topic: &str,
    records: &[SourceRecord],
) -> Result<(HashMap<i32, i64>, HashSet<i32>)> {
    let partitions: Vec<i32> = records
        .iter()
        .map(|r| r.position.partition)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let created = tx
        .query(
            "INSERT INTO partition_offsets (topic, partition, next_offset)
             SELECT $1, p, 0 FROM unnest($2::int[]) AS p ON CONFLICT DO NOTHING
             RETURNING partition",
            &[&topic, &partitions],
        )
        .await?;
    let created: HashSet<i32> = created.iter().map(|r| r.get(0)).collect();
    let rows = tx
        .query(
            "SELECT partition, next_offset FROM partition_offsets
             WHERE topic = $1 AND partition = ANY($2) ORDER BY partition FOR UPDATE",
            &[&topic, &partitions],
        )
        .await?;
    let next = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let seen = partitions
        .into_iter()
        .filter(|p| !created.contains(p))
        .collect();
    Ok((next, seen))
}

/// The first parked event of each key in the batch.
async fn parked_keys(
    tx: &Transaction<'_>,
    topic: &str,
    records: &[SourceRecord],
) -> Result<HashMap<String, EventPosition>> {
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let rows = tx
        .query(
            "SELECT DISTINCT ON (key) key, partition, \"offset\" FROM parked_events
             WHERE topic = $1 AND key = ANY($2) ORDER BY key, partition, \"offset\"",
            &[&topic, &keys],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let position = EventPosition {
                topic: topic.to_owned(),
                partition: r.get(1),
                offset: r.get(2),
            };
            (r.get(0), position)
        })
        .collect())
}

async fn store_offsets(tx: &Transaction<'_>, topic: &str, next: &HashMap<i32, i64>) -> Result<()> {
    let (partitions, offsets): (Vec<i32>, Vec<i64>) = next.iter().map(|(p, o)| (*p, *o)).unzip();
    tx.execute(
        "UPDATE partition_offsets AS p SET next_offset = n.next_offset
         FROM unnest($2::int[], $3::bigint[]) AS n (partition, next_offset)
         WHERE p.topic = $1 AND p.partition = n.partition",
        &[&topic, &partitions, &offsets],
    )
    .await?;
    Ok(())
}

async fn add_counters(tx: &Transaction<'_>, counters: &Counters) -> Result<()> {
    tx.execute(
        "INSERT INTO counters (name, value)
         VALUES ('duplicate_records', $1), ('superseded', $2), ('unreadable', $3)
         ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value",
        &[
            &counters.duplicate_records,
            &counters.superseded,
            &counters.unreadable,
        ],
    )
    .await?;
    if let Some(micros) = counters.last_event_at_us {
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('last_event_at_us', $1)
             ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, EXCLUDED.value)",
            &[&micros],
        )
        .await?;
    }
    Ok(())
}

async fn park(
    tx: &Transaction<'_>,
    record: &SourceRecord,
    poison: Poison,
    attempts: u32,
) -> Result<()> {
    let parked = crate::event::parked(record, poison, attempts);
    if let Some(status) = views::parked_status(record, &parked) {
        one::put_status(tx, &status).await?;
    }
    let at = &record.position;
    tx.execute(
        "INSERT INTO parked_events (topic, partition, \"offset\", key, event, payload, headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &at.topic,
            &at.partition,
            &at.offset,
            &record.key,
            &views::json(&parked)?,
            &record.payload,
            &views::json(&record.headers)?,
        ],
    )
    .await?;
    Ok(())
}

/// Re-applies the parked events of `key` in source order, stopping at the first that fails
/// again; that one keeps its real error and the rest stay parked behind it.
pub(crate) async fn redrive_key(
    tx: &mut Transaction<'_>,
    decoder: &Decoder,
    topic: &str,
    key: &str,
    policy: ApplyPolicy,
    report: &mut Redriven,
) -> Result<()> {
    let rows = tx
        .query(
            "SELECT partition, \"offset\", event, payload, headers FROM parked_events
             WHERE topic = $1 AND key = $2 ORDER BY partition, \"offset\"",
            &[&topic, &key],
        )
        .await?;
    if let Some(partition) = rows.first().map(|r| r.get::<_, i32>(0)) {
        // Take turns with the consumer of this partition.
        tx.execute(
            "SELECT 1 FROM partition_offsets WHERE topic = $1 AND partition = $2 FOR UPDATE",
            &[&topic, &partition],
        )
        .await?;
    }
    let mut redrive = KeyRedrive::default();
    for row in rows {
        let mut parked: ParkedEvent =
            serde_json::from_value(row.get(2)).map_err(|e| crate::Error::Store(e.to_string()))?;
        let headers: Vec<(String, String)> =
            serde_json::from_value(row.get(4)).map_err(|e| crate::Error::Store(e.to_string()))?;
        let record = SourceRecord {
            position: parked.source.clone(),
            key: key.to_owned(),
            payload: row.get(3),
            headers,
            timestamp_ms: None,
        };
        let outcome = match decoder.decide(&record, redrive.blocker()) {
            Ok(event) => apply_with_retries(tx, &event, &record.position, policy).await?,
            Err(poison) => Err(poison),
        };
        if redrive.attempted(&mut parked, outcome, report) {
            repark(tx, &parked).await?;
        } else {
            unpark(tx, &record.position).await?;
        }
    }
    redrive.finish(key, report);
    Ok(())
}

/// Removes the parked event at `source` and marks its command discarded for `reason`.
pub(crate) async fn discard(
    tx: &Transaction<'_>,
    source: &EventPosition,
    reason: &str,
) -> Result<Option<UnpublishedDeadLetter>> {
    // Take turns with the consumer of this partition, as a re-drive does.
    tx.execute(
        "SELECT 1 FROM partition_offsets WHERE topic = $1 AND partition = $2 FOR UPDATE",
        &[&source.topic, &source.partition],
    )
    .await?;
    let row = tx
        .query_opt(
            "DELETE FROM parked_events WHERE topic = $1 AND partition = $2 AND \"offset\" = $3
             RETURNING event, payload, headers",
            &[&source.topic, &source.partition, &source.offset],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let unreadable = |e: serde_json::Error| crate::Error::Store(e.to_string());
    let parked: ParkedEvent = serde_json::from_value(row.get(0)).map_err(unreadable)?;
    let headers: Vec<(String, String)> = serde_json::from_value(row.get(2)).map_err(unreadable)?;
    if let Some(correlation_id) = &parked.correlation_id {
        let status = tx
            .query_opt(
                "SELECT view FROM commands WHERE correlation_id = $1",
                &[correlation_id],
            )
            .await?;
        if let Some(status) = status {
            let status = serde_json::from_value(status.get(0)).map_err(unreadable)?;
            one::put_status(tx, &views::discarded_status(status, reason)).await?;
        }
    }
    Ok(Some(UnpublishedDeadLetter {
        parked,
        payload: row.get(1),
        headers,
    }))
}

async fn unpark(tx: &Transaction<'_>, at: &EventPosition) -> Result<()> {
    tx.execute(
        "DELETE FROM parked_events WHERE topic = $1 AND partition = $2 AND \"offset\" = $3",
        &[&at.topic, &at.partition, &at.offset],
    )
    .await?;
    Ok(())
}

async fn repark(tx: &Transaction<'_>, parked: &ParkedEvent) -> Result<()> {
    let at = &parked.source;
    tx.execute(
        "UPDATE parked_events SET event = $4 WHERE topic = $1 AND partition = $2 AND \"offset\" = $3",
        &[&at.topic, &at.partition, &at.offset, &views::json(parked)?],
    )
    .await?;
    Ok(())
}

/// Moves `partition`'s next offset forward to `next` (never back) within `tx`: past records
/// a reader skipped (transaction markers, aborted records) that no batch will ever carry.
pub(crate) async fn advance_in(
    tx: &Transaction<'_>,
    topic: &str,
    partition: i32,
    next: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO partition_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
         ON CONFLICT (topic, partition)
         DO UPDATE SET next_offset = GREATEST(partition_offsets.next_offset, EXCLUDED.next_offset)",
        &[&topic, &partition, &next],
    )
    .await?;
    Ok(())
}

/// [`apply_batch`] for a reader that reads each partition in sequence from the store's own
/// offset (a rebuild's copy): a gap it reports can only be records the reader skipped
/// (transaction markers, aborted records), so the offset moves past it and the batch is
/// applied.
pub(crate) async fn apply_skipping_markers(
    tx: &mut Transaction<'_>,
    decoder: &Decoder,
    records: &[SourceRecord],
    policy: ApplyPolicy,
    mode: Mode,
) -> Result<Vec<Outcome>> {
    loop {
        let savepoint = tx.savepoint("batch").await?;
        let mut inner = savepoint;
        match apply_batch(&mut inner, decoder, records, policy, mode).await {
            Err(crate::Error::Gap {
                topic,
                partition,
                found,
                ..
            }) => {
                inner.rollback().await?;
                advance_in(tx, &topic, partition, found).await?;
            }
            outcome => {
                inner.commit().await?;
                return outcome;
            }
        }
    }
}

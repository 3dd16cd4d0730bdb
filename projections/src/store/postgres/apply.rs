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
    deadletter::{ParkedEvent, PoisonCode, RedriveReport},
    officer::{HistoryOutcome, RegisterOfficerRequested},
};
use time::OffsetDateTime;
use tokio_postgres::{
    Transaction,
    error::SqlState,
    types::{ToSql, Type},
};

use super::bulk;
use crate::{
    Result,
    event::{self, Poison, SourceRecord},
    store::{ApplyPolicy, Outcome, views},
};

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
    fn saw(&mut self, event: &RegisterOfficerRequested) {
        let micros =
            i64::try_from(event.occurred_at.unix_timestamp_nanos() / 1000).unwrap_or_default();
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
    /// No savepoints; a refusal fails the transaction with [`crate::Error::Refused`].
    Optimistic,
    /// A savepoint per event; a refusal is retried, then the event is parked.
    Careful,
}

/// Applies `records` to the generation whose schema is on the transaction's search path,
/// skipping records below their partition's stored offset, and stores the new offsets.
pub(crate) async fn apply_batch(
    tx: &mut Transaction<'_>,
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
    // Optimistic: decoded events wait for one set-based apply at the end of the batch.
    let mut pending = Vec::new();
    for record in records {
        let at = &record.position;
        let next_offset = next.entry(at.partition).or_insert(0);
        if *next_offset > at.offset {
            outcomes.push(Outcome::AlreadyApplied);
            continue;
        }
        *next_offset = at.offset + 1;
        let decided = event::decide(record, blocked.get(&record.key));
        if let Ok(event) = &decided {
            counters.saw(event);
        }
        let outcome = match (decided, mode) {
            (Ok(event), Mode::Optimistic) => {
                pending.push((outcomes.len(), (event, at.clone())));
                Outcome::Registered
            }
            (decided, _) => apply_or_park(tx, record, decided, policy, &mut counters).await?,
        };
        if outcome == Outcome::Parked {
            blocked
                .entry(record.key.clone())
                .or_insert_with(|| at.clone());
        }
        outcomes.push(outcome);
    }
    if !pending.is_empty() {
        let (slots, events): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
        let applied = bulk::apply_events(tx, &events)
            .await
            .map_err(refused_or_failed)?;
        for (slot, outcome) in slots.into_iter().zip(applied) {
            counters.count(outcome);
            outcomes[slot] = outcome;
        }
    }
    store_offsets(tx, &topic, &next).await?;
    add_counters(tx, &counters).await?;
    Ok(outcomes)
}

/// Applies one decided record under a savepoint with retries, or parks it.
async fn apply_or_park(
    tx: &mut Transaction<'_>,
    record: &SourceRecord,
    decided: Result<RegisterOfficerRequested, Poison>,
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
fn refused_or_failed(error: tokio_postgres::Error) -> crate::Error {
    if is_refusal(&error) {
        crate::Error::Refused(error.to_string())
    } else {
        error.into()
    }
}

/// Applies one event under a savepoint, up to `policy.attempts` times while the read model
/// refuses it (a data, constraint or serialization error). `Ok(Err(_))` means refused every
/// time; `Err(_)` is a failure of the database itself.
async fn apply_with_retries(
    tx: &mut Transaction<'_>,
    event: &RegisterOfficerRequested,
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
            Err(e) if is_refusal(&e) => {
                savepoint.rollback().await?;
                tracing::warn!(attempt, error = %e, "the read model refused the event");
                last_refusal = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned());
                if attempt < policy.attempts {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let detail = format!(
        "the read model refused the event {} times: {last_refusal}",
        policy.attempts.max(1)
    );
    Ok(Err(Poison {
        code: PoisonCode::HandlerFailed,
        detail,
        blocked_by: None,
    }))
}

/// A refusal of this event (bad data, a violated constraint, a raised exception, a
/// serialization conflict), as opposed to the database being unreachable.
fn is_refusal(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        let class = code.code().get(..2).unwrap_or_default();
        matches!(class, "22" | "23" | "P0" | "40") || code == &SqlState::UNDEFINED_FUNCTION
    })
}

async fn apply_event(
    tx: &Transaction<'_>,
    event: &RegisterOfficerRequested,
    at: &EventPosition,
) -> Result<Outcome, tokio_postgres::Error> {
    // Independent, so pipelined: one round trip for both.
    let dedupe = [(&event.event_id as &(dyn ToSql + Sync), Type::UUID)];
    let badge = [(&event.aggregate_id as &(dyn ToSql + Sync), Type::TEXT)];
    let (fresh, holder) = tokio::try_join!(
        tx.query_typed(
            "INSERT INTO applied_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1",
            &dedupe,
        ),
        tx.query_typed(
            "SELECT view->>'commandId' FROM officers WHERE badge_number = $1",
            &badge,
        ),
    )?;
    if fresh.is_empty() {
        return Ok(Outcome::Duplicate);
    }
    let taken = holder
        .first()
        .is_some_and(|row| row.get::<_, String>(0) != event.command_id);
    let outcome = if taken {
        HistoryOutcome::Superseded
    } else {
        HistoryOutcome::Registered
    };
    let status = views::json(&views::projected_status(
        event,
        at,
        outcome,
        OffsetDateTime::now_utc(),
    ));
    let entry = views::json(&views::history_entry(event, at, outcome));
    let command_params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&event.correlation_id, Type::TEXT),
        (&event.command_id, Type::TEXT),
        (&status, Type::JSONB),
    ];
    let history_params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&event.aggregate_id, Type::TEXT), (&entry, Type::JSONB)];
    let command = tx.query_typed(
        "INSERT INTO commands (correlation_id, command_id, view) VALUES ($1, $2, $3)
         ON CONFLICT (correlation_id) DO UPDATE SET command_id = $2, view = $3",
        &command_params,
    );
    let history = tx.query_typed(
        "INSERT INTO officer_history (badge_number, entry) VALUES ($1, $2)",
        &history_params,
    );
    // The inserts are independent too: one more round trip.
    if taken {
        tokio::try_join!(command, history)?;
        return Ok(Outcome::Superseded);
    }
    tokio::try_join!(command, history, insert_officer(tx, event, at))?;
    Ok(Outcome::Registered)
}

async fn insert_officer(
    tx: &Transaction<'_>,
    event: &RegisterOfficerRequested,
    at: &EventPosition,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let officer = views::officer_of(event, at);
    let o = &officer.officer;
    let view = views::json(&officer);
    let rank = o.rank.as_str();
    let params: [(&(dyn ToSql + Sync), Type); 7] = [
        (&o.badge_number, Type::TEXT),
        (&rank, Type::TEXT),
        (&o.hire_date, Type::DATE),
        (&officer.registered_at, Type::TIMESTAMPTZ),
        (&o.first_name, Type::TEXT),
        (&o.last_name, Type::TEXT),
        (&view, Type::JSONB),
    ];
    tx.query_typed(
        "INSERT INTO officers (badge_number, rank, hire_date, registered_at, names, view)
         VALUES ($1, $2, $3, $4, to_tsvector('simple', $5 || ' ' || $6), $7)",
        &params,
    )
    .await
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
    let parked = event::parked(record, poison, attempts);
    let at = &record.position;
    tx.execute(
        "INSERT INTO parked_events (topic, partition, \"offset\", key, event, payload, headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &at.topic,
            &at.partition,
            &at.offset,
            &record.key,
            &views::json(&parked),
            &record.payload,
            &views::json(&record.headers),
        ],
    )
    .await?;
    Ok(())
}

/// Re-applies the parked events of `key` in source order, stopping at the first that fails
/// again; that one keeps its real error and the rest stay parked behind it.
pub(crate) async fn redrive_key(
    tx: &mut Transaction<'_>,
    topic: &str,
    key: &str,
    policy: ApplyPolicy,
    report: &mut RedriveReport,
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
    let mut blocker: Option<EventPosition> = None;
    for row in rows {
        let mut parked: ParkedEvent =
            serde_json::from_value(row.get(2)).map_err(|e| crate::Error::Store(e.to_string()))?;
        let headers: Vec<(String, String)> = serde_json::from_value(row.get(4)).unwrap_or_default();
        let record = SourceRecord {
            position: parked.source.clone(),
            key: key.to_owned(),
            payload: row.get(3),
            headers,
        };
        let outcome = match event::decide(&record, blocker.as_ref()) {
            Ok(event) => apply_with_retries(tx, &event, &record.position, policy).await?,
            Err(poison) => Err(poison),
        };
        match outcome {
            Ok(_) => {
                unpark(tx, &record.position).await?;
                report.applied += 1;
            }
            Err(poison) => {
                blocker.get_or_insert_with(|| record.position.clone());
                parked.attempts += u32::from(poison.code != PoisonCode::BlockedByEarlierEvent);
                parked.code = poison.code;
                parked.detail = poison.detail;
                parked.blocked_by = poison.blocked_by;
                repark(tx, &parked).await?;
                report.still_parked += 1;
            }
        }
    }
    if blocker.is_none() {
        report.released_keys.push(key.to_owned());
    }
    Ok(())
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
        &[&at.topic, &at.partition, &at.offset, &views::json(parked)],
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
    records: &[SourceRecord],
    policy: ApplyPolicy,
    mode: Mode,
) -> Result<Vec<Outcome>> {
    loop {
        let savepoint = tx.savepoint("batch").await?;
        let mut inner = savepoint;
        match apply_batch(&mut inner, records, policy, mode).await {
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

//! Rebuilding the idempotency ledger and the aggregate state from Kafka, the source of
//! truth, after their buckets were lost (or to check them).
//!
//! Every event carries its commandId and correlationId, and its position is where the
//! accepted reply pointed, so the reply a client got is rebuilt byte for byte from the first
//! record of each eventId. Entries already accepted in the ledger are left alone; pending or
//! parked entries whose event is in Kafka become accepted and leave the dead-letter queue.
//! Aggregate state is the fold of each aggregate's events through the same handlers that
//! decided them; an entry is written only where the bucket holds an older version.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use contracts::{Catalog, CommandAccepted, EventEnvelope, EventPosition, catalog::CommandPath};
use rdkafka::Message;
use runtime::kafka;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::{
    Error, Result,
    aggregates::{AggregateEntry, Head, Loaded},
    domain::Handlers,
    ledger::{self, LedgerEntry, LedgerState, Recorded},
    startup::Buckets,
};

/// What a rebuild found and did, printed for the operator.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    /// Records read.
    pub records: u64,
    /// Distinct events (by eventId).
    pub events: u64,
    /// Records repeating an eventId already seen (re-produced in a crash window).
    pub duplicate_records: u64,
    /// Events older than the ledger retention: folded into state, not written to the ledger.
    pub older_than_retention: u64,
    /// Records that are not events of a business-logic command in the catalog.
    pub unreadable: u64,
    /// Ledger entries written for commands it did not know.
    pub added: u64,
    /// Pending or parked entries found accepted in Kafka.
    pub resolved: u64,
    /// Entries already accepted.
    pub already_accepted: u64,
    /// Events the rules refuse on the state before them (accepted without the rules, e.g. a
    /// second registration of a badge sent directly): skipped, as the read models skip them.
    pub refused_on_replay: u64,
    /// Aggregate entries written back.
    pub aggregates_restored: u64,
    /// Aggregate entries already at or past the topic's version.
    pub aggregates_current: u64,
}

/// The state of one aggregate while its events are folded.
struct Folded {
    kind: String,
    id: String,
    entry: AggregateEntry,
}

/// Reads every business-logic topic of `catalog` from the beginning to its current end and
/// writes back what it finds.
pub async fn rebuild(
    bootstrap: &str,
    names: &contracts::Names,
    catalog: &Catalog,
    retention: Duration,
    targets: &Buckets,
) -> Result<RebuildReport> {
    let handlers = Handlers::shipped();
    let mut report = RebuildReport::default();
    let mut aggregates: HashMap<(String, String), Folded> = HashMap::new();
    let oldest = OffsetDateTime::now_utc() - retention;
    let mut seen = HashSet::new();
    for topic in business_logic_topics(catalog) {
        let topic = names.namespace.dotted(&topic);
        tracing::info!(%topic, "reading");
        let (records, mut incoming) = mpsc::channel(1024);
        let reader = {
            let (bootstrap, topic) = (bootstrap.to_owned(), topic.clone());
            tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic, &records))
        };
        while let Some(record) = incoming.recv().await {
            report.records += 1;
            let Some((event, position)) = record else {
                report.unreadable += 1;
                continue;
            };
            let Some(entry) = catalog.by_event(&event.event_type, event.schema_version) else {
                report.unreadable += 1;
                continue;
            };
            if !seen.insert(event.event_id) {
                report.duplicate_records += 1;
                continue;
            }
            report.events += 1;
            fold(&handlers, &entry.spec, &event, &mut aggregates, &mut report);
            if event.occurred_at < oldest {
                report.older_than_retention += 1;
            } else {
                restore_ledger(&entry.spec.command, &event, position, targets, &mut report).await?;
            }
        }
        reader
            .await
            .map_err(|e| Error::Operation(format!("topic reader failed: {e}")))??;
    }
    for folded in aggregates.into_values() {
        restore_aggregate(folded, targets, &mut report).await?;
    }
    Ok(report)
}

fn business_logic_topics(catalog: &Catalog) -> Vec<String> {
    let mut topics: Vec<String> = catalog
        .entries()
        .iter()
        .filter(|e| e.spec.path == CommandPath::BusinessLogic)
        .map(|e| e.spec.topic.clone())
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// Applies one event to its aggregate, as the service decided it.
fn fold(
    handlers: &Handlers,
    spec: &contracts::CommandSpec,
    event: &EventEnvelope<Value>,
    aggregates: &mut HashMap<(String, String), Folded>,
    report: &mut RebuildReport,
) {
    let key = (spec.aggregate.kind.clone(), event.aggregate_id.clone());
    let current = aggregates.get(&key).map(|f| &f.entry);
    let state = match handlers.get(&spec.command) {
        Some(handler) => match handler.decide(&event.payload, current.map(|e| &e.state)) {
            Ok(state) => state,
            Err(refusal) => {
                report.refused_on_replay += 1;
                tracing::warn!(event_id = %event.event_id, code = %refusal.code, "event refused on replay; skipped");
                return;
            }
        },
        None => Value::Null,
    };
    let entry = AggregateEntry {
        version: current.map_or(0, |e| e.version) + 1,
        state,
        head: Head {
            command_type: spec.command.clone(),
            command_id: event.command_id.clone(),
            ledger_key: ledger::ledger_key(&spec.command, &event.command_id),
            resend: None,
        },
    };
    let (kind, id) = key.clone();
    aggregates.insert(key, Folded { kind, id, entry });
}

async fn restore_ledger(
    command: &str,
    event: &EventEnvelope<Value>,
    position: EventPosition,
    targets: &Buckets,
    report: &mut RebuildReport,
) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Operation(e.to_string());
    let entry = accepted_entry(command, event, position).map_err(|e| failed(&e))?;
    match targets
        .ledger
        .record_accepted(&entry)
        .await
        .map_err(|e| failed(&e))?
    {
        Recorded::Added => report.added += 1,
        Recorded::AlreadyAccepted => report.already_accepted += 1,
        Recorded::Resolved => {
            report.resolved += 1;
            let key = ledger::ledger_key(command, &event.command_id);
            targets.dlq.remove(&key).await.map_err(|e| failed(&e))?;
        }
    }
    Ok(())
}

/// Writes `folded` unless the bucket holds its version or a later one (a command decided
/// since the topic was read).
async fn restore_aggregate(
    folded: Folded,
    targets: &Buckets,
    report: &mut RebuildReport,
) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Operation(e.to_string());
    let id = &folded.id;
    loop {
        let stored: Loaded = targets
            .aggregates
            .load(&folded.kind, id)
            .await
            .map_err(|e| failed(&e))?;
        if stored.version().is_some_and(|v| v >= folded.entry.version) {
            report.aggregates_current += 1;
            return Ok(());
        }
        let written = targets
            .aggregates
            .take_turn(&folded.kind, id, &stored, &folded.entry)
            .await
            .map_err(|e| failed(&e))?;
        if written {
            report.aggregates_restored += 1;
            return Ok(());
        }
    }
}

/// The ledger entry of an accepted event: the reply is serialized exactly as the service
/// serialized it, and the fingerprint is taken over the same canonical command.
fn accepted_entry(
    command: &str,
    event: &EventEnvelope<Value>,
    position: EventPosition,
) -> serde_json::Result<LedgerEntry> {
    let reply = serde_json::to_vec(&CommandAccepted::of(event, position))?;
    let canonical = serde_json::to_vec(&event.payload)?;
    Ok(LedgerEntry {
        command_type: command.to_owned(),
        command_id: event.command_id.clone(),
        correlation_id: event.correlation_id.clone(),
        fingerprint: ledger::fingerprint(&canonical),
        state: LedgerState::Accepted {
            reply: String::from_utf8_lossy(&reply).into_owned(),
        },
        updated_at: OffsetDateTime::now_utc(),
    })
}

type ReadRecord = Option<(EventEnvelope<Value>, EventPosition)>;

/// Sends every record of `topic` (as read when it starts) down `records`, `None` for a
/// record that is not a readable event envelope. Blocking: runs on its own thread.
fn read_topic(bootstrap: &str, topic: &str, records: &mpsc::Sender<ReadRecord>) -> Result<()> {
    const IDLE: Duration = Duration::from_secs(10);
    let send = |message: &rdkafka::message::BorrowedMessage<'_>| {
        let position = EventPosition {
            topic: topic.to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let event =
            serde_json::from_slice::<EventEnvelope<Value>>(message.payload().unwrap_or_default())
                .ok();
        // A closed channel: the writer stopped on an error, and reports it.
        records.blocking_send(event.map(|e| (e, position))).is_ok()
    };
    kafka::read_to_end(bootstrap, topic, kafka::Isolation::Committed, IDLE, send)
        .map_err(|e| Error::Operation(e.to_string()))
}

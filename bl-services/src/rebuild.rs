//! Rebuilding the idempotency ledger and the badge registry from Kafka, the source of truth,
//! after their bucket was lost (or to check them).
//!
//! Every event carries its commandId and correlationId, and its position is where the
//! accepted reply pointed, so the reply a client got is rebuilt byte for byte from the first
//! record of each eventId. Entries already accepted in the ledger are left alone; pending or
//! parked entries whose event is in Kafka become accepted and leave the dead-letter queue.

use std::{collections::HashSet, time::Duration};

use contracts::{
    CommandAccepted, EventPosition,
    officer::{REGISTER_OFFICER, RegisterOfficerRequested},
};
use rdkafka::Message;
use runtime::kafka;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::{
    Error, Result,
    ledger::{self, LedgerEntry, LedgerState, Recorded},
    registry::Claim,
    startup::Buckets,
};

/// What a rebuild found and did, printed for the operator.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    /// Records read.
    pub records: u64,
    /// Distinct events (by eventId) within the retention.
    pub events: u64,
    /// Records repeating an eventId already seen (re-produced in a crash window).
    pub duplicate_records: u64,
    /// Events older than the ledger retention, not written back.
    pub older_than_retention: u64,
    /// Records that are not readable officer events.
    pub unreadable: u64,
    /// Ledger entries written for commands it did not know.
    pub added: u64,
    /// Pending or parked entries found accepted in Kafka.
    pub resolved: u64,
    /// Entries already accepted.
    pub already_accepted: u64,
    /// Badge claims written back.
    pub badges_restored: u64,
    /// Badges held by a different command than the first event for them.
    pub badge_conflicts: u64,
}

/// Reads `topic` from the beginning to its current end and writes back what it finds.
pub async fn rebuild(
    bootstrap: &str,
    topic: &str,
    retention: Duration,
    targets: &Buckets,
) -> Result<RebuildReport> {
    let (records, mut incoming) = mpsc::channel(1024);
    let reader = {
        let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic, &records))
    };
    let oldest = OffsetDateTime::now_utc() - retention;
    let mut seen = HashSet::new();
    let mut report = RebuildReport::default();
    while let Some(record) = incoming.recv().await {
        report.records += 1;
        let Some((event, position)) = record else {
            report.unreadable += 1;
            continue;
        };
        if !seen.insert(event.event_id) {
            report.duplicate_records += 1;
        } else if event.occurred_at < oldest {
            report.older_than_retention += 1;
        } else {
            report.events += 1;
            restore(&event, position, targets, &mut report).await?;
        }
    }
    reader
        .await
        .map_err(|e| Error::Operation(format!("topic reader failed: {e}")))??;
    Ok(report)
}

async fn restore(
    event: &RegisterOfficerRequested,
    position: EventPosition,
    targets: &Buckets,
    report: &mut RebuildReport,
) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Operation(e.to_string());
    let entry = accepted_entry(event, position).map_err(|e| failed(&e))?;
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
            let key = ledger::ledger_key(REGISTER_OFFICER, &event.command_id);
            targets.dlq.remove(&key).await.map_err(|e| failed(&e))?;
        }
    }
    let claim = targets
        .registry
        .claim(&event.aggregate_id, &event.command_id);
    match claim.await.map_err(|e| failed(&e))? {
        Claim::Won => report.badges_restored += 1,
        Claim::AlreadyOurs => {}
        Claim::Taken { by } => {
            report.badge_conflicts += 1;
            tracing::warn!(badge = %event.aggregate_id, held_by = %by, first_event_command_id = %event.command_id, "badge held by another command than its first event");
        }
    }
    Ok(())
}

/// The ledger entry of an accepted event: the reply is serialized exactly as the service
/// serialized it, and the fingerprint is taken over the same canonical command.
fn accepted_entry(
    event: &RegisterOfficerRequested,
    position: EventPosition,
) -> serde_json::Result<LedgerEntry> {
    let reply = serde_json::to_vec(&CommandAccepted::of(event, position))?;
    let canonical = serde_json::to_vec(&event.payload)?;
    Ok(LedgerEntry {
        command_type: REGISTER_OFFICER.to_owned(),
        command_id: event.command_id.clone(),
        correlation_id: event.correlation_id.clone(),
        fingerprint: ledger::fingerprint(&canonical),
        state: LedgerState::Accepted {
            reply: String::from_utf8_lossy(&reply).into_owned(),
        },
        updated_at: OffsetDateTime::now_utc(),
    })
}

type ReadRecord = Option<(RegisterOfficerRequested, EventPosition)>;

/// Sends every record of `topic` (as read when it starts) down `records`, `None` for a
/// record that is not a readable officer event. Blocking: runs on its own thread.
fn read_topic(bootstrap: &str, topic: &str, records: &mpsc::Sender<ReadRecord>) -> Result<()> {
    const IDLE: Duration = Duration::from_secs(10);
    let send = |message: &rdkafka::message::BorrowedMessage<'_>| {
        let position = EventPosition {
            topic: topic.to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let event = serde_json::from_slice::<RegisterOfficerRequested>(
            message.payload().unwrap_or_default(),
        )
        .ok();
        // A closed channel: the writer stopped on an error, and reports it.
        records.blocking_send(event.map(|e| (e, position))).is_ok()
    };
    kafka::read_to_end(bootstrap, topic, kafka::Isolation::Committed, IDLE, send)
        .map_err(|e| Error::Operation(e.to_string()))
}

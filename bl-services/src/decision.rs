//! Deciding a command on its aggregate's current state, one command at a time.
//!
//! The steps: read the aggregate; if the command that took its newest version (the head) is
//! not settled yet, wait for it; check `If-Match`; judge the rules; take the next version
//! with compare-and-set. Losing the compare-and-set means another command won the version in
//! between: read again and judge on its state. So two concurrent commands on one aggregate
//! are judged in some serial order on consistent state, and no rule ever reads a read model.
//!
//! A head is settled when its ledger entry says accepted (its event is in Kafka). Waiting
//! for it keeps the topic in version order: the next event is produced only after the
//! previous one was acknowledged. A head that will not settle by waiting (parked, or left
//! pending by an instance that died) is sent again with its own ids by the command behind it
//! ([`NotDecided::Unsettled`]), exactly as its client's retry would: that settles it (one
//! event, found or written) and the command is decided after it.

use std::time::Duration;

use contracts::{CommandSpec, ErrorCode, precondition::IfMatch};
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    aggregates::{AggregateEntry, AggregateError, AggregateStore, Head, Loaded},
    dlq::CommandDlq,
    domain::{Handler, Refusal},
    ledger::{CommandLedger, LedgerState},
};

/// The stores a decision reads and writes.
#[derive(Clone, Copy)]
pub struct DecisionStores<'a> {
    /// Aggregate state.
    pub aggregates: &'a AggregateStore,
    /// Whether heads are settled.
    pub ledger: &'a CommandLedger,
    /// Whether a head whose ledger entry expired is still parked.
    pub dlq: &'a CommandDlq,
}

/// One command to decide.
pub struct Pending<'a> {
    /// Its catalog entry.
    pub spec: &'a CommandSpec,
    /// Its rules, if it has any.
    pub handler: Option<&'a dyn Handler>,
    /// The aggregate it addresses.
    pub aggregate_id: &'a str,
    /// The validated body.
    pub body: &'a Value,
    /// The client's `If-Match`, if any.
    pub if_match: Option<&'a IfMatch>,
    /// Who is asking: this command's head entry.
    pub head: Head,
}

/// Why a command could not take its turn.
#[derive(Debug)]
pub enum NotDecided {
    /// A rule or the precondition refused it: a 4xx, nothing written.
    Refused(Refusal),
    /// The head stayed unsettled for the whole wait, or is parked, and cannot be sent again.
    Busy(String),
    /// The head is parked, or its instance died (its lease passed): sending it again with its
    /// ids settles it (a retry would do the same), and then this command can be decided.
    Unsettled(Box<crate::dlq::Resend>),
    /// The state or the ledger could not be read.
    Unavailable(ErrorCode, String),
}

impl From<AggregateError> for NotDecided {
    fn from(e: AggregateError) -> Self {
        Self::Unavailable(ErrorCode::AggregateStoreUnavailable, e.to_string())
    }
}

/// Whether the head is settled, or why not.
enum HeadState {
    Settled,
    InFlight,
    /// Pending past its lease: its instance is presumed dead.
    Abandoned,
    Parked,
}

/// Decides `command` and takes the aggregate's next version for it; returns that version.
/// A command whose earlier attempt took a version already (a retry after a crash or a park)
/// keeps it without being judged again. Waits at most `wait` for an unsettled head.
pub async fn decide(
    stores: DecisionStores<'_>,
    command: &Pending<'_>,
    wait: Duration,
) -> Result<u64, NotDecided> {
    let kind = &command.spec.aggregate.kind;
    if let Some(version) = create_if_absent(stores, command).await? {
        return Ok(version);
    }
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(2);
    loop {
        let seen = stores.aggregates.load(kind, command.aggregate_id).await?;
        if let Some(entry) = &seen.entry {
            if entry.head.ledger_key == command.head.ledger_key {
                return Ok(entry.version);
            }
            match head_state(stores, &entry.head).await? {
                HeadState::Settled => {}
                HeadState::InFlight if Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                    continue;
                }
                HeadState::InFlight => {
                    return Err(busy(command, &entry.head, &HeadState::InFlight));
                }
                // Parked, or abandoned by its instance: waiting will not settle it.
                stuck => {
                    return Err(match &entry.head.resend {
                        Some(resend) => NotDecided::Unsettled(Box::new(resend.clone())),
                        None => busy(command, &entry.head, &stuck),
                    });
                }
            }
        }
        let next = judge(command, &seen)?;
        let version = next.version;
        if stores
            .aggregates
            .take_turn(kind, command.aggregate_id, &seen, &next)
            .await?
        {
            return Ok(version);
        }
        tracing::debug!(
            version,
            "another command took this version first; judging again"
        );
    }
}

/// The fast path of a command that creates its aggregate (a registration): judged on no
/// state, and if its rules allow that, written with one create-if-absent instead of a read
/// and a write. `None` when the aggregate exists (or the rules need one): then the command
/// takes the normal path, which reads it.
async fn create_if_absent(
    stores: DecisionStores<'_>,
    command: &Pending<'_>,
) -> Result<Option<u64>, NotDecided> {
    let absent = Loaded {
        entry: None,
        revision: 0,
    };
    let Ok(first) = judge(command, &absent) else {
        return Ok(None);
    };
    let kind = &command.spec.aggregate.kind;
    let created = stores
        .aggregates
        .take_turn(kind, command.aggregate_id, &absent, &first)
        .await?;
    Ok(created.then_some(first.version))
}

/// The precondition, then the rules: the entry this command would write.
fn judge(command: &Pending<'_>, seen: &Loaded) -> Result<AggregateEntry, NotDecided> {
    if let Some(condition) = command.if_match
        && !condition.holds_for(seen.version())
    {
        let detail = match seen.version() {
            Some(v) => format!(
                "If-Match does not hold: {} {} is at version {v} (ETag {})",
                command.spec.aggregate.kind,
                command.aggregate_id,
                contracts::precondition::etag(v)
            ),
            None => format!(
                "If-Match does not hold: {} {} does not exist",
                command.spec.aggregate.kind, command.aggregate_id
            ),
        };
        return Err(NotDecided::Refused(Refusal::new(
            ErrorCode::PreconditionFailed,
            detail,
        )));
    }
    let current = seen.entry.as_ref().map(|e| &e.state);
    let state = match command.handler {
        Some(handler) => handler
            .decide(command.body, current)
            .map_err(NotDecided::Refused)?,
        None => Value::Null,
    };
    Ok(AggregateEntry {
        version: seen.version().unwrap_or(0) + 1,
        state,
        head: command.head.clone(),
    })
}

async fn head_state(stores: DecisionStores<'_>, head: &Head) -> Result<HeadState, NotDecided> {
    let ledger_down = |e: &dyn std::fmt::Display| {
        NotDecided::Unavailable(ErrorCode::LedgerUnavailable, e.to_string())
    };
    let entry = stores
        .ledger
        .get(&head.ledger_key)
        .await
        .map_err(|e| ledger_down(&e))?;
    Ok(match entry.map(|e| e.state) {
        Some(LedgerState::Accepted { .. }) => HeadState::Settled,
        Some(LedgerState::Pending { lease_until, .. })
            if lease_until <= time::OffsetDateTime::now_utc() =>
        {
            HeadState::Abandoned
        }
        Some(LedgerState::Pending { .. }) => HeadState::InFlight,
        Some(LedgerState::Parked { .. }) => HeadState::Parked,
        // Older than the ledger's retention: settled, unless it still waits for re-drive.
        None => match stores.dlq.get(&head.ledger_key).await {
            Ok(Some(_)) => HeadState::Parked,
            Ok(None) => HeadState::Settled,
            Err(e) => return Err(ledger_down(&e)),
        },
    })
}

fn busy(command: &Pending<'_>, head: &Head, state: &HeadState) -> NotDecided {
    let why = match state {
        HeadState::Parked => "is parked for re-drive",
        HeadState::Abandoned => "was left unsettled by an instance that stopped",
        _ => "is still in flight",
    };
    NotDecided::Busy(format!(
        "an earlier command on {} {} ({} {}) {why}; retry shortly",
        command.spec.aggregate.kind, command.aggregate_id, head.command_type, head.command_id
    ))
}

//! What the projections tell the timeline: an event applied (and from when queries show it),
//! superseded, parked or discarded. These steps may be reported again (a rebuild applies an
//! event again, a dead letter is published again), so their ids derive from the event's
//! position and are stored once.

use contracts::{
    EventPosition,
    deadletter::ParkedEvent,
    headers::message,
    timeline::{CommandIds, Step, StepKind},
};
use runtime::Timeline;
use time::OffsetDateTime;

use crate::{
    event::SourceRecord,
    store::{Outcome, UnpublishedDeadLetter},
};

/// The read models an outcome changed, as the timeline names them.
fn read_models(outcome: Outcome) -> Option<&'static [&'static str]> {
    match outcome {
        Outcome::Registered | Outcome::Changed => Some(&["officers", "command-status"]),
        Outcome::Observed => Some(&["observations", "command-status"]),
        Outcome::Recorded => Some(&["command-status"]),
        Outcome::Superseded | Outcome::Duplicate | Outcome::AlreadyApplied | Outcome::Parked => {
            None
        }
    }
}

/// Reports the events a re-drive applied, visible to queries now.
pub fn redriven(timeline: &Timeline, applied: &[(ParkedEvent, Outcome)]) {
    let visible_at = OffsetDateTime::now_utc();
    for (parked, outcome) in applied {
        let Some(correlation_id) = parked.correlation_id.as_deref() else {
            continue;
        };
        // Re-driven long after it arrived: its lag runs from when it was parked.
        let parked_ms = Some(epoch_ms(parked.parked_at));
        let Some(kind) = step_of(*outcome, &parked.source, parked_ms, visible_at) else {
            continue;
        };
        let step = event_step(kind, &parked.source, visible_at);
        timeline.publish_steps(correlation_id, &of_key(parked), vec![step]);
    }
}

/// A step about the event at `position`, stored once however often it is reported.
fn event_step(kind: StepKind, position: &EventPosition, at: OffsetDateTime) -> Step {
    let identity = format!("{}:{}", kind.name(), position.token());
    Step::once(&identity, at, kind)
}

/// The step an applied record's `outcome` is, if it is one.
fn step_of(
    outcome: Outcome,
    position: &EventPosition,
    timestamp_ms: Option<i64>,
    visible_at: OffsetDateTime,
) -> Option<StepKind> {
    let position = position.clone();
    match (outcome, read_models(outcome)) {
        (Outcome::Superseded, _) => Some(StepKind::Superseded { position }),
        (_, Some(models)) => Some(StepKind::Applied {
            position,
            read_models: models.iter().map(|m| (*m).to_owned()).collect(),
            lag_ms: lag_ms(timestamp_ms, visible_at),
        }),
        (_, None) => None,
    }
}

/// Reports a committed batch: each record applied or superseded, visible to queries now.
pub fn applied(timeline: &Timeline, batch: &[SourceRecord], outcomes: &[Outcome]) {
    if !timeline.is_on() {
        return;
    }
    let visible_at = OffsetDateTime::now_utc();
    for (record, outcome) in batch.iter().zip(outcomes) {
        let Some(correlation_id) = record.header(message::CORRELATION_ID) else {
            continue;
        };
        let Some(kind) = step_of(*outcome, &record.position, record.timestamp_ms, visible_at)
        else {
            continue;
        };
        let step = event_step(kind, &record.position, visible_at);
        let command = CommandIds {
            command_id: record.header(message::COMMAND_ID).map(str::to_owned),
            command_type: None,
            aggregate_id: Some(record.key.clone()),
        };
        timeline.publish_steps(correlation_id, &command, vec![step]);
    }
}

/// Reports an event parked (once per failed attempt), when its dead letter is published.
pub fn parked(timeline: &Timeline, letter: &UnpublishedDeadLetter) {
    let parked = &letter.parked;
    let Some(correlation_id) = parked.correlation_id.as_deref() else {
        return;
    };
    let kind = StepKind::Parked {
        position: parked.source.clone(),
        code: parked.code,
        detail: parked.detail.clone(),
    };
    let identity = format!("parked:{}:{}", parked.source.token(), parked.attempts);
    // Stamped when published, right after the batch that parked it committed.
    let step = Step::once(&identity, OffsetDateTime::now_utc(), kind);
    timeline.publish_steps(correlation_id, &of_key(parked), vec![step]);
}

/// Reports a parked event an operator discarded.
pub fn discarded(timeline: &Timeline, parked: &ParkedEvent, reason: &str) {
    let Some(correlation_id) = parked.correlation_id.as_deref() else {
        return;
    };
    let kind = StepKind::Discarded {
        position: parked.source.clone(),
        reason: reason.to_owned(),
    };
    let command = of_key(parked);
    timeline.publish_steps(correlation_id, &command, vec![Step::now(kind)]);
}

/// The command of a parked event: its key is the aggregate.
fn of_key(parked: &ParkedEvent) -> CommandIds {
    CommandIds {
        command_id: parked.command_id.clone(),
        command_type: None,
        aggregate_id: Some(parked.key.clone()),
    }
}

/// From the record's timestamp to `visible_at`; 0 without a timestamp or with clock skew.
fn lag_ms(timestamp_ms: Option<i64>, visible_at: OffsetDateTime) -> u64 {
    let Some(stamped) = timestamp_ms else {
        return 0;
    };
    u64::try_from(epoch_ms(visible_at) - stamped).unwrap_or(0)
}

/// Milliseconds since the epoch, as Kafka stamps records.
fn epoch_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

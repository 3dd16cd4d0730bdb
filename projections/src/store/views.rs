//! What an event becomes in the read models, and the rules that decide it: the same for
//! every store, written once.

use contracts::{
    EventPosition,
    deadletter::ParkedEvent,
    headers::message,
    observation::{ObservationView, RecordObservation},
    officer::{
        HistoryOutcome, OfficerChange, OfficerHistoryEntry, OfficerStatus, OfficerView,
        RegisterOfficer,
    },
    status::{
        CommandAcceptedNotice, CommandParkedNotice, CommandState, CommandStatusView, DeadLetter,
        ParkedReason,
    },
};
use time::OffsetDateTime;

use crate::event::{EventMeta, SourceRecord};

/// The registration rule: the first command to register a badge holds it; a later one (only
/// possible for commands accepted without the rules) is superseded and changes nothing.
/// `holder` is the commandId of the registration in the read model, if any.
pub(crate) fn registration_outcome(holder: Option<&str>, meta: &EventMeta) -> HistoryOutcome {
    match holder {
        Some(holder) if holder != meta.command_id => HistoryOutcome::Superseded,
        _ => HistoryOutcome::Registered,
    }
}

/// The command status of an applied event.
pub(crate) fn projected_status(
    meta: &EventMeta,
    position: &EventPosition,
    state: CommandState,
    projected_at: OffsetDateTime,
) -> CommandStatusView {
    CommandStatusView {
        correlation_id: meta.correlation_id.clone(),
        command_id: meta.command_id.clone(),
        command_type: meta.command.clone(),
        aggregate_id: meta.aggregate_id.clone(),
        status: state,
        event: Some(position.clone()),
        accepted_at: Some(meta.occurred_at),
        dead_letter: None,
        parked: None,
        projected_at: Some(projected_at),
    }
}

/// The status of an officer event with `outcome`.
pub(crate) fn state_of(outcome: HistoryOutcome) -> CommandState {
    match outcome {
        HistoryOutcome::Superseded => CommandState::Superseded,
        HistoryOutcome::Registered | HistoryOutcome::Changed => CommandState::Projected,
    }
}

/// The officer a registration creates.
pub(crate) fn officer_of(
    meta: &EventMeta,
    registration: &RegisterOfficer,
    position: &EventPosition,
) -> OfficerView {
    OfficerView {
        officer: registration.clone(),
        status: OfficerStatus::Active,
        version: meta.aggregate_version.unwrap_or(1),
        suspension_reason: None,
        retired_on: None,
        registered_at: meta.occurred_at,
        updated_at: None,
        correlation_id: meta.correlation_id.clone(),
        command_id: meta.command_id.clone(),
        event: position.clone(),
    }
}

/// Applies a change to an officer. The business-logic service judged it on the officer's
/// state; the read model takes it as decided, and counts the version the service gave it.
pub(crate) fn change_officer(officer: &mut OfficerView, meta: &EventMeta, change: &OfficerChange) {
    match change {
        OfficerChange::Contact(contact) => {
            if let Some(email) = &contact.email {
                officer.officer.email.clone_from(email);
            }
            if contact.phone.is_some() {
                officer.officer.phone.clone_from(&contact.phone);
            }
        }
        OfficerChange::Rank(rank) => officer.officer.rank = rank.rank,
        OfficerChange::Suspended(suspension) => {
            officer.status = OfficerStatus::Suspended;
            officer.suspension_reason = Some(suspension.reason.clone());
        }
        OfficerChange::Reinstated(_) => {
            officer.status = OfficerStatus::Active;
            officer.suspension_reason = None;
        }
        OfficerChange::Retired(retirement) => {
            officer.status = OfficerStatus::Retired;
            officer.suspension_reason = None;
            officer.retired_on = Some(retirement.retired_on);
        }
    }
    officer.version = meta.aggregate_version.unwrap_or(officer.version + 1);
    officer.updated_at = Some(meta.occurred_at);
}

/// Why a change cannot be applied: there is no such officer in the read model.
pub(crate) fn missing_officer(meta: &EventMeta) -> String {
    format!(
        "{} for badge {}, which the read model does not hold",
        meta.event_type, meta.aggregate_id
    )
}

/// The history entry of an officer event.
pub(crate) fn history_entry(
    meta: &EventMeta,
    position: &EventPosition,
    outcome: HistoryOutcome,
) -> OfficerHistoryEntry {
    OfficerHistoryEntry {
        event_id: meta.event_id,
        event_type: meta.event_type.clone(),
        correlation_id: meta.correlation_id.clone(),
        command_id: meta.command_id.clone(),
        occurred_at: meta.occurred_at,
        event: position.clone(),
        outcome,
    }
}

/// The observation an event records.
pub(crate) fn observation_of(
    meta: &EventMeta,
    observation: &RecordObservation,
    position: &EventPosition,
) -> ObservationView {
    ObservationView {
        event_id: meta.event_id,
        observation: observation.clone(),
        recorded_at: meta.occurred_at,
        correlation_id: meta.correlation_id.clone(),
        command_id: meta.command_id.clone(),
        event: position.clone(),
    }
}

/// The `accepted` status an accepted notice carries.
pub(crate) fn accepted_status(notice: CommandAcceptedNotice) -> CommandStatusView {
    let reply = notice.reply;
    CommandStatusView {
        correlation_id: reply.correlation_id,
        command_id: reply.command_id,
        command_type: notice.command_type,
        aggregate_id: notice.aggregate_id,
        status: CommandState::Accepted,
        event: Some(reply.event),
        accepted_at: Some(notice.accepted_at),
        dead_letter: None,
        parked: None,
        projected_at: None,
    }
}

/// The `dead-lettered` status a parked notice carries.
pub(crate) fn dead_lettered_status(notice: CommandParkedNotice) -> CommandStatusView {
    CommandStatusView {
        correlation_id: notice.correlation_id,
        command_id: notice.command_id,
        command_type: notice.command_type,
        aggregate_id: notice.aggregate_id,
        status: CommandState::DeadLettered,
        event: None,
        accepted_at: None,
        dead_letter: Some(DeadLetter {
            code: notice.code,
            parked_at: notice.parked_at,
        }),
        parked: None,
        projected_at: None,
    }
}

/// The status of a command whose event `parked` was parked (found by the record's ids;
/// `None` without a correlationId). What the record does not say, its status does not
/// either: an unreadable record's command type is its event type header, or `unknown`.
pub(crate) fn parked_status(
    record: &SourceRecord,
    parked: &ParkedEvent,
) -> Option<CommandStatusView> {
    let correlation_id = parked.correlation_id.clone()?;
    let command_type = record
        .header(message::EVENT_TYPE)
        .map(|event| event.strip_suffix("Requested").unwrap_or(event))
        .unwrap_or("unknown");
    Some(CommandStatusView {
        correlation_id,
        command_id: record
            .header(message::COMMAND_ID)
            .unwrap_or_default()
            .to_owned(),
        command_type: command_type.to_owned(),
        aggregate_id: record.key.clone(),
        status: CommandState::Parked,
        event: Some(parked.source.clone()),
        accepted_at: None,
        dead_letter: None,
        parked: Some(ParkedReason {
            code: parked.code,
            detail: parked.detail.clone(),
            discarded: None,
        }),
        projected_at: None,
    })
}

/// `status` once an operator discarded its parked event for `reason`.
pub(crate) fn discarded_status(mut status: CommandStatusView, reason: &str) -> CommandStatusView {
    status.status = CommandState::Discarded;
    if let Some(parked) = &mut status.parked {
        parked.discarded = Some(reason.to_owned());
    }
    status
}

/// Whether a notice's status may replace `current`: notices travel on core NATS and may
/// arrive late, so they replace nothing or a `dead-lettered` status only (a command that
/// was parked and then accepted moves on; nothing moves back).
pub(crate) fn notice_replaces(current: Option<&CommandStatusView>) -> bool {
    current.is_none_or(|c| c.status == CommandState::DeadLettered)
}

/// A view as stored in a `jsonb` column. Views are plain data and always serialize; a
/// failure would be a defect, reported rather than stored as an empty value.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, crate::Error> {
    serde_json::to_value(value)
        .map_err(|e| crate::Error::Store(format!("view does not serialize: {e}")))
}

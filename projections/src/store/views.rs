//! What a registration event becomes in the read models, the same for every store.

use contracts::{
    EventPosition,
    officer::{
        HistoryOutcome, OfficerHistoryEntry, OfficerView, REGISTER_OFFICER,
        REGISTER_OFFICER_REQUESTED, RegisterOfficerRequested,
    },
    status::{
        CommandAcceptedNotice, CommandParkedNotice, CommandState, CommandStatusView, DeadLetter,
    },
};
use time::OffsetDateTime;

/// The command status of an applied registration.
pub(crate) fn projected_status(
    event: &RegisterOfficerRequested,
    position: &EventPosition,
    outcome: HistoryOutcome,
    projected_at: OffsetDateTime,
) -> CommandStatusView {
    CommandStatusView {
        correlation_id: event.correlation_id.clone(),
        command_id: event.command_id.clone(),
        command_type: REGISTER_OFFICER.to_owned(),
        aggregate_id: event.aggregate_id.clone(),
        status: match outcome {
            HistoryOutcome::Superseded => CommandState::Superseded,
            HistoryOutcome::Registered => CommandState::Projected,
        },
        event: Some(position.clone()),
        accepted_at: Some(event.occurred_at),
        dead_letter: None,
        projected_at: Some(projected_at),
    }
}

/// The officer a registration creates.
pub(crate) fn officer_of(
    event: &RegisterOfficerRequested,
    position: &EventPosition,
) -> OfficerView {
    OfficerView {
        officer: event.payload.clone(),
        registered_at: event.occurred_at,
        correlation_id: event.correlation_id.clone(),
        command_id: event.command_id.clone(),
        event: position.clone(),
    }
}

/// The history entry of a registration.
pub(crate) fn history_entry(
    event: &RegisterOfficerRequested,
    position: &EventPosition,
    outcome: HistoryOutcome,
) -> OfficerHistoryEntry {
    OfficerHistoryEntry {
        event_id: event.event_id,
        event_type: REGISTER_OFFICER_REQUESTED.to_owned(),
        correlation_id: event.correlation_id.clone(),
        command_id: event.command_id.clone(),
        occurred_at: event.occurred_at,
        event: position.clone(),
        outcome,
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
        projected_at: None,
    }
}

/// Whether a notice's status may replace `current`: notices travel on core NATS and may
/// arrive late, so they replace nothing or a `dead-lettered` status only (a command that
/// was parked and then accepted moves on; nothing moves back).
pub(crate) fn notice_replaces(current: Option<&CommandStatusView>) -> bool {
    current.is_none_or(|c| c.status == CommandState::DeadLettered)
}

/// A view as stored in a `jsonb` column (views always serialize).
pub(crate) fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

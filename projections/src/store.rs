//! The in-memory read models: command status by correlationId and officer by badge number,
//! plus what has been applied (eventIds, and the next offset of each partition).

use std::{
    collections::{HashMap, HashSet},
    sync::{PoisonError, RwLock},
};

use contracts::{
    EventPosition,
    officer::{OfficerView, REGISTER_OFFICER, RegisterOfficerRequested},
    status::{
        CommandAcceptedNotice, CommandParkedNotice, CommandState, CommandStatusView, DeadLetter,
        ProjectionStats,
    },
};
use time::OffsetDateTime;
use uuid::Uuid;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The officer was registered.
    Registered,
    /// The badge was already registered by another command; the officer is unchanged.
    Superseded,
    /// This eventId was applied before (a re-produced duplicate); nothing changed.
    Duplicate,
}

#[derive(Default)]
struct Models {
    commands: HashMap<String, CommandStatusView>,
    officers: HashMap<String, OfficerView>,
    applied_events: HashSet<Uuid>,
    next_offsets: HashMap<(String, i32), i64>,
    duplicate_records: u64,
    superseded: u64,
    unreadable: u64,
}

/// The read models, shared by the consumer (writer) and the query responders (readers).
#[derive(Default)]
pub struct ReadModels {
    models: RwLock<Models>,
}

impl ReadModels {
    /// Applies a registration event stored at `position`, once per eventId.
    pub fn apply_registration(
        &self,
        event: RegisterOfficerRequested,
        position: EventPosition,
    ) -> Applied {
        let mut models = self.models.write().unwrap_or_else(PoisonError::into_inner);
        models.next_offsets.insert(
            (position.topic.clone(), position.partition),
            position.offset + 1,
        );
        if !models.applied_events.insert(event.event_id) {
            models.duplicate_records += 1;
            return Applied::Duplicate;
        }
        let badge = event.aggregate_id.clone();
        let outcome = match models.officers.get(&badge) {
            Some(holder) if holder.command_id != event.command_id => {
                models.superseded += 1;
                Applied::Superseded
            }
            _ => Applied::Registered,
        };
        let status = status_of(&event, &position, outcome);
        models.commands.insert(event.correlation_id.clone(), status);
        if outcome == Applied::Registered {
            models.officers.insert(badge, officer_of(event, position));
        }
        outcome
    }

    /// Records a command as accepted before its event is projected. Never downgrades a
    /// command that is already projected.
    pub fn note_accepted(&self, notice: CommandAcceptedNotice) {
        let reply = notice.reply;
        self.note_unprojected(CommandStatusView {
            correlation_id: reply.correlation_id,
            command_id: reply.command_id,
            command_type: notice.command_type,
            aggregate_id: notice.aggregate_id,
            status: CommandState::Accepted,
            event: Some(reply.event),
            accepted_at: Some(notice.accepted_at),
            dead_letter: None,
            projected_at: None,
        });
    }

    /// Records a command parked in the command dead-letter queue. Never downgrades a command
    /// that is already accepted or projected.
    pub fn note_parked(&self, notice: CommandParkedNotice) {
        self.note_unprojected(CommandStatusView {
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
        });
    }

    /// Stores a status learnt from a notice, over nothing or over a dead-lettered status
    /// only: the notices travel on core NATS, so they may arrive after the event.
    fn note_unprojected(&self, view: CommandStatusView) {
        let mut models = self.models.write().unwrap_or_else(PoisonError::into_inner);
        let current = models.commands.get(&view.correlation_id);
        let replaceable = current.is_none_or(|c| c.status == CommandState::DeadLettered);
        if replaceable {
            models.commands.insert(view.correlation_id.clone(), view);
        }
    }

    /// The status of the command with this correlationId.
    pub fn command_status(&self, correlation_id: &str) -> Option<CommandStatusView> {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        models.commands.get(correlation_id).cloned()
    }

    /// The officer holding this badge number.
    pub fn officer(&self, badge_number: &str) -> Option<OfficerView> {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        models.officers.get(badge_number).cloned()
    }

    /// The offset to resume `partition` of `topic` from: one past the last applied event.
    pub fn resume_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        models
            .next_offsets
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    /// What has been applied so far.
    pub fn stats(&self) -> ProjectionStats {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        ProjectionStats {
            applied_events: count(models.applied_events.len()),
            duplicate_records: models.duplicate_records,
            superseded: models.superseded,
            unreadable: models.unreadable,
            commands: count(models.commands.len()),
            officers: count(models.officers.len()),
        }
    }

    /// Marks an event that could not be applied as passed, so the stream moves on.
    pub fn skip(&self, position: &EventPosition) {
        let mut models = self.models.write().unwrap_or_else(PoisonError::into_inner);
        models.unreadable += 1;
        models.next_offsets.insert(
            (position.topic.clone(), position.partition),
            position.offset + 1,
        );
    }
}

fn status_of(
    event: &RegisterOfficerRequested,
    position: &EventPosition,
    outcome: Applied,
) -> CommandStatusView {
    CommandStatusView {
        correlation_id: event.correlation_id.clone(),
        command_id: event.command_id.clone(),
        command_type: REGISTER_OFFICER.to_owned(),
        aggregate_id: event.aggregate_id.clone(),
        status: match outcome {
            Applied::Superseded => CommandState::Superseded,
            _ => CommandState::Projected,
        },
        event: Some(position.clone()),
        accepted_at: Some(event.occurred_at),
        dead_letter: None,
        projected_at: Some(OffsetDateTime::now_utc()),
    }
}

fn officer_of(event: RegisterOfficerRequested, position: EventPosition) -> OfficerView {
    OfficerView {
        officer: event.payload,
        registered_at: event.occurred_at,
        correlation_id: event.correlation_id,
        command_id: event.command_id,
        event: position,
    }
}

#[cfg(test)]
mod tests {
    use contracts::{
        EventEnvelope,
        officer::{Rank, RegisterOfficer},
    };

    use super::*;

    fn event(command_id: &str, badge: &str) -> RegisterOfficerRequested {
        EventEnvelope {
            event_id: contracts::ids::event_id(REGISTER_OFFICER, command_id),
            event_type: "RegisterOfficerRequested".to_owned(),
            schema_version: 1,
            correlation_id: format!("corr-{command_id}"),
            command_id: command_id.to_owned(),
            aggregate_id: badge.to_owned(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            payload: RegisterOfficer {
                badge_number: badge.to_owned(),
                first_name: "Ana".to_owned(),
                last_name: "Reyes".to_owned(),
                rank: Rank::Sergeant,
                email: "ana@example.org".to_owned(),
                hire_date: time::macros::date!(2019 - 04 - 01),
            },
        }
    }

    fn at(offset: i64) -> EventPosition {
        EventPosition {
            topic: "t".to_owned(),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn an_event_applied_twice_changes_the_models_once() {
        let models = ReadModels::default();
        assert_eq!(
            models.apply_registration(event("c1", "B-100"), at(0)),
            Applied::Registered
        );
        assert_eq!(
            models.apply_registration(event("c1", "B-100"), at(1)),
            Applied::Duplicate
        );
        let officer = models.officer("B-100").expect("registered");
        assert_eq!(
            officer.event.offset, 0,
            "the duplicate did not overwrite the first"
        );
        assert_eq!(models.resume_offset("t", 0), Some(2));
        let stats = models.stats();
        assert_eq!((stats.applied_events, stats.duplicate_records), (1, 1));
    }

    #[test]
    fn the_first_registration_of_a_badge_wins() {
        let models = ReadModels::default();
        models.apply_registration(event("c1", "B-100"), at(0));
        assert_eq!(
            models.apply_registration(event("c2", "B-100"), at(1)),
            Applied::Superseded
        );
        assert_eq!(models.officer("B-100").expect("kept").command_id, "c1");
        let loser = models.command_status("corr-c2").expect("tracked");
        assert_eq!(loser.status, CommandState::Superseded);
    }

    #[test]
    fn an_accepted_notice_never_downgrades_a_projected_command() {
        let models = ReadModels::default();
        models.apply_registration(event("c1", "B-100"), at(0));
        let projected = models.command_status("corr-c1").expect("tracked");
        models.note_accepted(CommandAcceptedNotice {
            reply: contracts::CommandAccepted {
                correlation_id: "corr-c1".to_owned(),
                command_id: "c1".to_owned(),
                status: contracts::reply::AcceptedStatus::Accepted,
                event: at(0),
            },
            command_type: REGISTER_OFFICER.to_owned(),
            aggregate_id: "B-100".to_owned(),
            accepted_at: OffsetDateTime::UNIX_EPOCH,
        });
        assert_eq!(models.command_status("corr-c1"), Some(projected));
    }
}

#[cfg(test)]
mod notice_tests {
    use contracts::ErrorCode;

    use super::*;

    fn parked(correlation_id: &str) -> CommandParkedNotice {
        CommandParkedNotice {
            correlation_id: correlation_id.to_owned(),
            command_id: "c1".to_owned(),
            command_type: REGISTER_OFFICER.to_owned(),
            aggregate_id: "B-100".to_owned(),
            code: ErrorCode::KafkaUnavailable,
            parked_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn accepted(correlation_id: &str) -> CommandAcceptedNotice {
        CommandAcceptedNotice {
            reply: contracts::CommandAccepted {
                correlation_id: correlation_id.to_owned(),
                command_id: "c1".to_owned(),
                status: contracts::reply::AcceptedStatus::Accepted,
                event: EventPosition {
                    topic: "t".to_owned(),
                    partition: 0,
                    offset: 7,
                },
            },
            command_type: REGISTER_OFFICER.to_owned(),
            aggregate_id: "B-100".to_owned(),
            accepted_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_parked_command_shows_dead_lettered_until_accepted() {
        let models = ReadModels::default();
        models.note_parked(parked("corr-1"));
        let status = models.command_status("corr-1").expect("tracked");
        assert_eq!(status.status, CommandState::DeadLettered);
        assert_eq!(
            status.dead_letter.map(|d| d.code),
            Some(ErrorCode::KafkaUnavailable)
        );
        models.note_accepted(accepted("corr-1"));
        let status = models.command_status("corr-1").expect("tracked");
        assert_eq!(status.status, CommandState::Accepted);
        assert_eq!(status.dead_letter, None);
    }

    #[test]
    fn a_late_parked_notice_never_downgrades_an_accepted_command() {
        let models = ReadModels::default();
        models.note_accepted(accepted("corr-1"));
        models.note_parked(parked("corr-1"));
        let status = models.command_status("corr-1").expect("tracked");
        assert_eq!(status.status, CommandState::Accepted);
    }
}

//! What support staff read: a command's timeline assembled from its steps, and the search
//! over timelines.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CommandIds, Component, StepKind};

/// Where a command stands, read off its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimelineOutcome {
    /// Taken, not answered yet.
    InFlight,
    /// Refused (4xx): nothing was written.
    Refused,
    /// Failed (5xx) without being parked: nothing was written; the client may retry.
    Failed,
    /// Parked in the command dead-letter queue.
    DeadLettered,
    /// Kafka holds the event; no read model has applied it yet.
    Accepted,
    /// The read models applied it.
    Projected,
    /// A projection parked its event.
    Parked,
    /// Its event lost the race for its aggregate.
    Superseded,
    /// An operator discarded its parked event.
    Discarded,
}

/// One step as `GET /v1/commands/{correlationId}/timeline` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineStep {
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Milliseconds since the step before it (absent on the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_previous_ms: Option<f64>,
    /// Which request of the command (1 for the first; a retry starts the next) took it.
    pub attempt: u32,
    /// That request's correlationId.
    pub correlation_id: String,
    /// Who took it.
    pub component: Component,
    /// Which instance.
    pub instance: String,
    /// The failure's code, when the step is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: StepKind,
}

/// The whole story of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandTimeline {
    /// The correlationId asked for.
    pub correlation_id: String,
    /// The command.
    #[serde(flatten)]
    pub command: CommandIds,
    /// Where it stands.
    pub outcome: TimelineOutcome,
    /// How many requests carried it.
    pub attempts: u32,
    /// Every step of every attempt, oldest first.
    pub steps: Vec<TimelineStep>,
}

/// A timeline query on [`crate::subjects::QUERY_TIMELINE`]: by any request's correlationId
/// or by the command's idempotency key, as a status query.
pub type TimelineQuery = crate::status::CommandStatusQuery;

/// `GET /v1/timelines`: commands, newest first, matching every filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimelineSearch {
    /// Only this command (its idempotency key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Only commands on this aggregate (an officer's badge number, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_id: Option<String>,
    /// Only commands of this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_type: Option<String>,
    /// Only commands with a step at or after this time.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<OffsetDateTime>,
    /// Only commands with a step before this time.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<OffsetDateTime>,
    /// Only commands with a failed step (refused, failed, dead-lettered, parked,
    /// superseded): the console's live view.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// At most this many (1-100, default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl TimelineSearch {
    /// Default page size.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 100;

    /// The page size asked for, or why it is out of range.
    pub fn page_size(&self) -> Result<u32, String> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(format!("limit must be 1-{}, not {n}", Self::MAX_LIMIT)),
        }
    }

    /// `Ok` when the search can be answered; otherwise every reason why not, in words.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = self.page_size() {
            problems.push(e);
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            problems.push("from must be before to".to_owned());
        }
        for (name, value) in [
            ("commandId", &self.command_id),
            ("aggregateId", &self.aggregate_id),
            ("commandType", &self.command_type),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.is_empty() || v.len() > 128)
            {
                problems.push(format!("{name} must be 1-128 characters"));
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    }
}

/// One command in a search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineSummary {
    /// The correlationId of its first request.
    pub correlation_id: String,
    /// The command.
    #[serde(flatten)]
    pub command: CommandIds,
    /// Where it stands.
    pub outcome: TimelineOutcome,
    /// Its latest failure's code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// How many requests carried it.
    pub attempts: u32,
    /// Its first step.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Its latest step.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

/// The answer to a [`TimelineSearch`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineSearchResults {
    /// Matching commands, newest first.
    pub items: Vec<TimelineSummary>,
}

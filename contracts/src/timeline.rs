//! The command timeline: every step one command took, from every component, for support
//! staff answering "I got a 202 at 10:14 and the officer is not there".
//!
//! Components publish [`TimelineNotice`]s (fire and forget, never on the accept path's
//! critical section) on [`crate::subjects::TIMELINE_STEPS`]; a JetStream stream keeps them
//! for the timeline's retention, and the projections store them and answer
//! [`TimelineQuery`] and [`TimelineSearch`]. A step holds ids, codes, positions and timings
//! only: never a command body, a header value other than the ids, or a credential.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ErrorCode, EventPosition, deadletter::PoisonCode};

mod view;

pub use view::{
    CommandTimeline, TimelineOutcome, TimelineQuery, TimelineSearch, TimelineSearchResults,
    TimelineStep, TimelineSummary,
};

/// Namespace of [`Step::once`] ids.
const STEP_NAMESPACE: Uuid = Uuid::from_u128(0x6163_6b67_6174_652d_7374_6570_2d69_6473);

/// Steps one component took for one request, published as one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineNotice {
    /// The correlationId of the request the steps belong to.
    pub correlation_id: String,
    /// The command, as far as the component knew it.
    #[serde(flatten)]
    pub command: CommandIds,
    /// Which component took the steps.
    pub component: Component,
    /// Which instance of it (`<host>:<pid>` unless configured).
    pub instance: String,
    /// The steps, in the order they were taken.
    pub steps: Vec<Step>,
}

/// What goes on [`crate::subjects::TIMELINE_STEPS`]: the notices one component gathered
/// over a few milliseconds, so a busy service publishes (and the stream keeps) one message
/// per batch rather than one per request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineBatch {
    /// The notices, in the order they were queued.
    pub notices: Vec<TimelineNotice>,
}

/// What is known of a command: its ids, its type and its aggregate, each once known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandIds {
    /// The commandId, once known (absent when the request was refused before one was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// e.g. `RegisterOfficer`, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_type: Option<String>,
    /// The aggregate the command targets, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_id: Option<String>,
}

impl CommandIds {
    /// Fills in what `other` knows and this does not.
    pub fn learn(&mut self, other: &Self) {
        let fill = |slot: &mut Option<String>, value: &Option<String>| {
            if slot.is_none() {
                slot.clone_from(value);
            }
        };
        fill(&mut self.command_id, &other.command_id);
        fill(&mut self.command_type, &other.command_type);
        fill(&mut self.aggregate_id, &other.aggregate_id);
    }
}

/// A component of Ackgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// The REST edge.
    Edge,
    /// A business-logic service.
    BlService,
    /// The projections.
    Projections,
    /// An operator command (`ackgate ...`).
    Operator,
}

impl Component {
    /// The kebab-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::BlService => "bl-service",
            Self::Projections => "projections",
            Self::Operator => "operator",
        }
    }
}

/// One step, stamped where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Unique per step, so a notice delivered twice is stored once.
    pub id: Uuid,
    /// When it happened, by the clock of the component that took it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    #[serde(flatten)]
    pub kind: StepKind,
}

impl Step {
    /// A step that happens now.
    pub fn now(kind: StepKind) -> Self {
        Self {
            id: Uuid::now_v7(),
            at: OffsetDateTime::now_utc(),
            kind,
        }
    }

    /// A step that may be reported more than once (an event applied again by a rebuild, a
    /// dead letter published again): its id derives from `identity`, so it is stored once.
    pub fn once(identity: &str, at: OffsetDateTime, kind: StepKind) -> Self {
        Self {
            id: Uuid::new_v5(&STEP_NAMESPACE, identity.as_bytes()),
            at,
            kind,
        }
    }
}

/// What happened at one step. `step` names it in JSON; the other members are its details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "step",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum StepKind {
    /// The edge took the HTTP request.
    Received {
        /// HTTP method.
        method: String,
        /// The route template (`/v1/officers`), never the raw path.
        route: String,
        /// Who sent it, once authentication exists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        principal: Option<String>,
        /// The client chose the correlationId (`X-Correlation-Id`).
        client_correlation_id: bool,
        /// The client chose the commandId (`Idempotency-Key`).
        client_command_id: bool,
    },
    /// A business-logic service took the NATS request.
    Requested {
        /// The command's subject.
        subject: String,
        /// Sent again from the command dead-letter queue or by a later command.
        redrive: bool,
    },
    /// The idempotency ledger's answer.
    Ledger {
        /// What the ledger knew of the command.
        outcome: LedgerOutcome,
    },
    /// The decision on the aggregate's current state.
    Decided {
        /// The aggregate version the command takes, when accepted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
        /// Why not, when refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
    },
    /// Kafka acknowledged the command's event.
    Appended {
        /// Where the event is.
        #[serde(flatten)]
        position: EventPosition,
    },
    /// Kafka did not take the event: the command is parked in the command dead-letter queue.
    DeadLettered {
        /// The failure.
        code: ErrorCode,
    },
    /// A business-logic service or the edge answered.
    Answered {
        /// The HTTP status the client gets (202 for an accept).
        status: u16,
        /// The problem's code, when refused or failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
        /// The reply is the stored one of an earlier attempt.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
    },
    /// A projection applied the event; queries show it from `at` on.
    Applied {
        /// Where the event is.
        #[serde(flatten)]
        position: EventPosition,
        /// The read models it changed.
        read_models: Vec<String>,
        /// From Kafka's timestamp of the record to `at`.
        lag_ms: u64,
    },
    /// The event reached the read models after another command took its aggregate.
    Superseded {
        /// Where the event is.
        #[serde(flatten)]
        position: EventPosition,
    },
    /// A projection could not apply the event and parked it (published to the dead-letter
    /// topic); the command stays `parked` until it is re-driven or discarded.
    Parked {
        /// Where the event is.
        #[serde(flatten)]
        position: EventPosition,
        /// Why.
        code: PoisonCode,
        /// The failure in words.
        detail: String,
    },
    /// An operator discarded the parked event, so later events of its key can apply.
    Discarded {
        /// Where the event is.
        #[serde(flatten)]
        position: EventPosition,
        /// The operator's reason.
        reason: String,
    },
}

impl StepKind {
    /// The `step` name, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Received { .. } => "received",
            Self::Requested { .. } => "requested",
            Self::Ledger { .. } => "ledger",
            Self::Decided { .. } => "decided",
            Self::Appended { .. } => "appended",
            Self::DeadLettered { .. } => "dead-lettered",
            Self::Answered { .. } => "answered",
            Self::Applied { .. } => "applied",
            Self::Superseded { .. } => "superseded",
            Self::Parked { .. } => "parked",
            Self::Discarded { .. } => "discarded",
        }
    }

    /// The failure this step records, as a code, if it is one: what the console highlights
    /// and the search's `failed` filter finds.
    pub fn failure(&self) -> Option<String> {
        match self {
            Self::Decided {
                code: Some(code), ..
            }
            | Self::DeadLettered { code }
            | Self::Answered {
                code: Some(code), ..
            } => Some(code.as_str().to_owned()),
            Self::Parked { code, .. } => Some(code.as_str().to_owned()),
            Self::Superseded { .. } => Some("superseded".to_owned()),
            _ => None,
        }
    }
}

/// What the idempotency ledger knew of a command when a business-logic service took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerOutcome {
    /// First attempt: this instance owns it.
    New,
    /// An earlier attempt was left unfinished (its instance died or timed out): this one
    /// takes it over and settles it first.
    TakenOver,
    /// The command was parked before; this attempt resumes it.
    ResumesParked,
    /// Accepted before: the stored reply is sent again.
    Replayed,
    /// The key belongs to a command with a different body.
    KeyReused,
    /// Another attempt is still in flight.
    InProgress,
}

//! The officer domain: the `RegisterOfficer` command, its event and its read model.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::{EventEnvelope, EventPosition};

/// Command type name (eventId namespace, status views).
pub const REGISTER_OFFICER: &str = "RegisterOfficer";

/// Event type written to [`crate::topics::OFFICER_EVENTS`] when a registration is accepted.
pub const REGISTER_OFFICER_REQUESTED: &str = "RegisterOfficerRequested";

/// Schema version of [`RegisterOfficer`] (and of its event payload).
pub const REGISTER_OFFICER_VERSION: u32 = 1;

time::serde::format_description!(full_date, Date, "[year]-[month]-[day]");

/// Ranks, lowest first. The JSON Schema's `enum` lists the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Rank {
    Officer,
    Corporal,
    Sergeant,
    Lieutenant,
    Captain,
    Major,
    Commander,
    Chief,
}

/// Register a sworn officer (schema `register-officer.v1.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterOfficer {
    /// Unique badge number, e.g. `B-1042`; the aggregate id.
    pub badge_number: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Rank.
    pub rank: Rank,
    /// Work e-mail address.
    pub email: String,
    /// First day of service.
    #[serde(with = "full_date")]
    pub hire_date: Date,
}

/// The event written when a registration is accepted.
pub type RegisterOfficerRequested = EventEnvelope<RegisterOfficer>;

/// An officer as the read model holds it (`GET /v1/officers/{badge}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerView {
    /// The registration as accepted.
    #[serde(flatten)]
    pub officer: RegisterOfficer,
    /// When the registration was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// The registering request's tracing key.
    pub correlation_id: String,
    /// The registering command's id.
    pub command_id: String,
    /// Where the registration event is stored.
    pub event: EventPosition,
}

/// Body of an officer query on [`crate::subjects::QUERY_OFFICER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerQuery {
    /// Which officer.
    pub badge_number: String,
}

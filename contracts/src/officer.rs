//! The officer domain: its commands (registration, and the lifecycle after it: contact,
//! rank, suspension, reinstatement, retirement), its read model and its queries.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::{EventEnvelope, EventPosition};

mod lifecycle;

pub use lifecycle::*;

/// Command type name (eventId namespace, status views).
pub const REGISTER_OFFICER: &str = "RegisterOfficer";

/// Event type written to [`crate::topics::OFFICER_EVENTS`] when a registration is accepted.
pub const REGISTER_OFFICER_REQUESTED: &str = "RegisterOfficerRequested";

time::serde::format_description!(full_date, Date, "[year]-[month]-[day]");

/// Ranks, lowest first. The JSON Schema's `enum` lists the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// Register a sworn officer (schemas `register-officer.v1.json` and `.v2.json`; version 2
/// adds the optional `phone` and `precinct`, so a version 1 body reads as a version 2 one).
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
    /// Phone number (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Precinct the officer is assigned to (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precinct: Option<String>,
}

/// The event written when a registration is accepted.
pub type RegisterOfficerRequested = EventEnvelope<RegisterOfficer>;

/// An officer as the read model holds it (`GET /v1/officers/{badge}`): the registration with
/// every later change applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerView {
    /// The registration's fields, as changed since (rank, e-mail, phone).
    #[serde(flatten)]
    pub officer: RegisterOfficer,
    /// Active, suspended or retired.
    #[serde(default = "active")]
    pub status: OfficerStatus,
    /// 1 after registration, one more after each change: the `ETag` of the officer, which a
    /// command's `If-Match` names.
    #[serde(default = "first_version")]
    pub version: u64,
    /// Why the officer is suspended, while suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension_reason: Option<String>,
    /// Last day of service, once retired.
    #[serde(
        default,
        with = "full_date::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retired_on: Option<Date>,
    /// When the registration was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// When the newest applied change was accepted (the registration's time until then).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<OffsetDateTime>,
    /// The registering request's tracing key.
    pub correlation_id: String,
    /// The registering command's id.
    pub command_id: String,
    /// Where the registration event is stored.
    pub event: EventPosition,
}

impl Rank {
    /// Every rank, lowest first.
    pub const ALL: [Rank; 8] = [
        Self::Officer,
        Self::Corporal,
        Self::Sergeant,
        Self::Lieutenant,
        Self::Captain,
        Self::Major,
        Self::Commander,
        Self::Chief,
    ];

    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::Corporal => "corporal",
            Self::Sergeant => "sergeant",
            Self::Lieutenant => "lieutenant",
            Self::Captain => "captain",
            Self::Major => "major",
            Self::Commander => "commander",
            Self::Chief => "chief",
        }
    }

    /// Reads [`Self::as_str`] back.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// Views stored before versions existed hold one registration: version 1, active.
fn first_version() -> u64 {
    1
}

fn active() -> OfficerStatus {
    OfficerStatus::Active
}

/// What an event did to an officer's read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HistoryOutcome {
    /// The registration took effect.
    Registered,
    /// A change after registration (contact, rank, suspension, ...) took effect.
    Changed,
    /// Another command had registered the badge first; this one changed nothing.
    Superseded,
}

/// One event of an officer's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerHistoryEntry {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// e.g. `RegisterOfficerRequested`.
    pub event_type: String,
    /// The request that caused it.
    pub correlation_id: String,
    /// The command that caused it.
    pub command_id: String,
    /// When the BL service accepted the command.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Where the event is stored.
    pub event: EventPosition,
    /// What it did.
    pub outcome: HistoryOutcome,
}

/// `GET /v1/officers/{badge}`: the officer and every event of the badge, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerDetail {
    /// The officer.
    #[serde(flatten)]
    pub officer: OfficerView,
    /// Events of this badge in the order applied.
    pub history: Vec<OfficerHistoryEntry>,
}

/// A change to a registered officer, as its event carries it: what the read models apply.
#[derive(Debug, Clone, PartialEq)]
pub enum OfficerChange {
    /// New contact details.
    Contact(UpdateOfficerContact),
    /// A new rank.
    Rank(ChangeOfficerRank),
    /// Suspended.
    Suspended(SuspendOfficer),
    /// Reinstated.
    Reinstated(ReinstateOfficer),
    /// Retired.
    Retired(RetireOfficer),
}

impl OfficerChange {
    /// Reads the payload of a lifecycle event, by its command's name; `None` for any other
    /// command, `Some(Err)` when the payload does not fit its type.
    pub fn read(
        command: &str,
        payload: serde_json::Value,
    ) -> Option<Result<Self, serde_json::Error>> {
        let read = match command {
            UPDATE_OFFICER_CONTACT => serde_json::from_value(payload).map(Self::Contact),
            CHANGE_OFFICER_RANK => serde_json::from_value(payload).map(Self::Rank),
            SUSPEND_OFFICER => serde_json::from_value(payload).map(Self::Suspended),
            REINSTATE_OFFICER => serde_json::from_value(payload).map(Self::Reinstated),
            RETIRE_OFFICER => serde_json::from_value(payload).map(Self::Retired),
            _ => return None,
        };
        Some(read)
    }

    /// The officer it changes.
    pub fn badge_number(&self) -> &str {
        match self {
            Self::Contact(c) => &c.badge_number,
            Self::Rank(c) => &c.badge_number,
            Self::Suspended(c) => &c.badge_number,
            Self::Reinstated(c) => &c.badge_number,
            Self::Retired(c) => &c.badge_number,
        }
    }
}

/// Default page size of officer lists and searches.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Largest page size of officer lists and searches.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Body of [`crate::subjects::QUERY_OFFICER_LIST`] and the query string of
/// `GET /v1/officers`: officers ordered by badge number, filtered, one page at a time.
/// The cursor is the last badge of the previous page, so pages stay stable while officers
/// are added (keyset pagination).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfficerListQuery {
    /// Only this rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<Rank>,
    /// Hired on or after this day.
    #[serde(
        default,
        with = "full_date::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub hired_from: Option<Date>,
    /// Hired on or before this day.
    #[serde(
        default,
        with = "full_date::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub hired_to: Option<Date>,
    /// Page size, 1 to [`MAX_PAGE_LIMIT`] (default [`DEFAULT_PAGE_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl OfficerListQuery {
    /// The page size, or why it is out of range.
    pub fn page_limit(&self) -> Result<u32, String> {
        page_limit(self.limit)
    }

    /// The badge after which the page starts, or why the cursor is not one of ours.
    pub fn after_badge(&self) -> Result<Option<String>, String> {
        self.cursor.as_deref().map(decode_cursor).transpose()
    }

    /// Everything that makes the query unanswerable, in words.
    pub fn validate(&self) -> Result<(), String> {
        self.page_limit()?;
        self.after_badge()?;
        if let (Some(from), Some(to)) = (self.hired_from, self.hired_to)
            && from > to
        {
            return Err(format!("hiredFrom {from} is after hiredTo {to}"));
        }
        Ok(())
    }
}

/// A page of officers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerPage {
    /// Officers in badge order.
    pub items: Vec<OfficerView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of [`crate::subjects::QUERY_OFFICER_SEARCH`] and the query string of
/// `GET /v1/officers/search`: full-text search over first and last names. Every word must
/// match the start of a name word, ignoring case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfficerSearchQuery {
    /// The words to look for.
    pub q: String,
    /// Most results, 1 to [`MAX_PAGE_LIMIT`] (default [`DEFAULT_PAGE_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl OfficerSearchQuery {
    /// The words, lowercased, split on anything not alphanumeric.
    pub fn terms(&self) -> Vec<String> {
        search_terms(&self.q)
    }

    /// Everything that makes the query unanswerable, in words.
    pub fn validate(&self) -> Result<(), String> {
        page_limit(self.limit)?;
        if self.terms().is_empty() {
            return Err("q must contain at least one letter or digit".to_owned());
        }
        Ok(())
    }
}

/// Search results, best match first (then by badge number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerSearchResults {
    /// Matching officers.
    pub items: Vec<OfficerView>,
}

/// How names and queries are cut into words for search: lowercase, alphanumeric runs.
pub fn search_terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The page size `limit` asks for, or why it is out of range.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, String> {
    match limit.unwrap_or(DEFAULT_PAGE_LIMIT) {
        n @ 1..=MAX_PAGE_LIMIT => Ok(n),
        n => Err(format!("limit {n} is not between 1 and {MAX_PAGE_LIMIT}")),
    }
}

/// The opaque cursor for a page that ends at `badge` (hex, so it is URL-safe as it is).
pub fn encode_cursor(badge: &str) -> String {
    badge.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Reads [`encode_cursor`] back.
pub(crate) fn decode_cursor(cursor: &str) -> Result<String, String> {
    let invalid = || format!("cursor {cursor:?} was not issued by this API");
    if !cursor.len().is_multiple_of(2) || cursor.is_empty() {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// Body of an officer query on [`crate::subjects::QUERY_OFFICER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfficerQuery {
    /// Which officer.
    pub badge_number: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_foreign_ones_are_refused() {
        let query = OfficerListQuery {
            cursor: Some(encode_cursor("B-1042")),
            ..OfficerListQuery::default()
        };
        assert_eq!(query.after_badge(), Ok(Some("B-1042".to_owned())));
        for cursor in ["", "abc", "zz", "ff"] {
            let query = OfficerListQuery {
                cursor: Some(cursor.to_owned()),
                ..OfficerListQuery::default()
            };
            assert!(query.validate().is_err(), "{cursor}");
        }
    }

    #[test]
    fn limits_and_date_ranges_are_checked() {
        let too_big = OfficerListQuery {
            limit: Some(MAX_PAGE_LIMIT + 1),
            ..OfficerListQuery::default()
        };
        assert!(too_big.validate().is_err());
        let reversed = OfficerListQuery {
            hired_from: Some(time::macros::date!(2024 - 02 - 01)),
            hired_to: Some(time::macros::date!(2024 - 01 - 01)),
            ..OfficerListQuery::default()
        };
        assert!(reversed.validate().is_err());
        assert_eq!(
            OfficerListQuery::default().page_limit(),
            Ok(DEFAULT_PAGE_LIMIT)
        );
    }

    #[test]
    fn search_terms_are_lowercase_words() {
        assert_eq!(
            search_terms(" O'Brien-Smith  jr."),
            ["o", "brien", "smith", "jr"]
        );
        let blank = OfficerSearchQuery {
            q: " -- ".to_owned(),
            limit: None,
        };
        assert!(blank.validate().is_err());
    }
}

//! Officers' field observations: the `RecordObservation` command (accepted directly by the
//! edge, Option A) and the per-officer observation list.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::EventPosition;

/// Command name of [`RecordObservation`].
pub const RECORD_OBSERVATION: &str = "RecordObservation";

/// Where an observation was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    /// Degrees north, -90 to 90.
    pub latitude: f64,
    /// Degrees east, -180 to 180.
    pub longitude: f64,
    /// A place name or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// An officer's field observation (schema `record-observation.v1.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordObservation {
    /// The observing officer; the record key.
    pub badge_number: String,
    /// When it was observed.
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// Where.
    pub location: Location,
    /// What was observed.
    pub text: String,
}

/// One observation as the read model holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationView {
    /// The event's id, which identifies the observation.
    pub event_id: uuid::Uuid,
    /// The observation as recorded.
    #[serde(flatten)]
    pub observation: RecordObservation,
    /// When the edge accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The recording request's tracing key.
    pub correlation_id: String,
    /// The recording command's id.
    pub command_id: String,
    /// Where the event is stored.
    pub event: EventPosition,
}

/// Body of [`crate::subjects::QUERY_OBSERVATIONS`] and the query string of
/// `GET /v1/officers/{badge}/observations`: newest observation first, one page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservationQuery {
    /// Whose observations (from the path).
    #[serde(default)]
    pub badge_number: String,
    /// Page size, 1 to [`crate::officer::MAX_PAGE_LIMIT`] (default
    /// [`crate::officer::DEFAULT_PAGE_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Where a page of observations starts: after this (observedAt, eventId), going back in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObservationCursor {
    /// `observedAt` in nanoseconds since the epoch.
    pub observed_at_nanos: i128,
    /// The eventId, which breaks ties.
    pub event_id: uuid::Uuid,
}

impl ObservationCursor {
    /// The cursor of `view`: a page ending there continues after it.
    pub fn of(view: &ObservationView) -> Self {
        Self {
            observed_at_nanos: view.observation.observed_at.unix_timestamp_nanos(),
            event_id: view.event_id,
        }
    }

    /// The opaque form: `<nanos>_<uuid>` as hex, URL-safe as it is.
    pub fn encode(&self) -> String {
        crate::officer::encode_cursor(&format!("{}_{}", self.observed_at_nanos, self.event_id))
    }
}

impl ObservationQuery {
    /// The page size, or why it is out of range.
    pub fn page_limit(&self) -> Result<u32, String> {
        crate::officer::page_limit(self.limit)
    }

    /// Where the page starts, or why the cursor is not one of ours.
    pub fn after(&self) -> Result<Option<ObservationCursor>, String> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let invalid = || format!("cursor {cursor:?} was not issued by this API");
        let text = crate::officer::decode_cursor(cursor)?;
        let (nanos, id) = text.split_once('_').ok_or_else(invalid)?;
        Ok(Some(ObservationCursor {
            observed_at_nanos: nanos.parse().map_err(|_| invalid())?,
            event_id: id.parse().map_err(|_| invalid())?,
        }))
    }

    /// Everything that makes the query unanswerable, in words.
    pub fn validate(&self) -> Result<(), String> {
        self.page_limit()?;
        self.after()?;
        Ok(())
    }
}

/// A page of observations, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationPage {
    /// Observations, newest first (by `observedAt`, then eventId).
    pub items: Vec<ObservationView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

//! Records as the projections see them, and the first decision about each: apply it, or
//! park it (unreadable, unknown, or behind a parked event of its key). Both stores make
//! this decision the same way; only applying differs.

use std::sync::Arc;

use contracts::{
    Catalog, CatalogEntry, EventEnvelope, EventPosition,
    deadletter::{ParkedEvent, PoisonCode},
    envelope::EnvelopeHead,
    observation::{RECORD_OBSERVATION, RecordObservation},
    officer::{OfficerChange, REGISTER_OFFICER, RegisterOfficer},
};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::upcast;

/// A Kafka record, owned: what the store applies, parks, and may publish to the
/// dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Where it was read.
    pub position: EventPosition,
    /// The record key (the aggregate id); empty when the record has none.
    pub key: String,
    /// The record value.
    pub payload: Vec<u8>,
    /// The record headers, as text.
    pub headers: Vec<(String, String)>,
    /// The record's timestamp (milliseconds since the epoch), when it has one.
    pub timestamp_ms: Option<i64>,
}

impl SourceRecord {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The value of header `name` among a record's `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Why a record is parked instead of applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Poison {
    /// The error code.
    pub code: PoisonCode,
    /// The failure in words.
    pub detail: String,
    /// The parked event of the same key this one waits behind.
    pub blocked_by: Option<EventPosition>,
}

impl Poison {
    fn new(code: PoisonCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            blocked_by: None,
        }
    }

    /// A change the read model refuses (for example, to an officer it does not hold).
    pub fn refused(detail: impl Into<String>) -> Self {
        Self::new(PoisonCode::HandlerFailed, detail)
    }

    /// A record parked only because `first` (of the same key) is parked.
    pub fn behind(first: &EventPosition) -> Self {
        Self {
            code: PoisonCode::BlockedByEarlierEvent,
            detail: format!(
                "an earlier event of this key is parked at {}",
                first.token()
            ),
            blocked_by: Some(first.clone()),
        }
    }
}

/// What an event is, once decoded and upcast: the ids every read model needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    /// The event's id (applied once).
    pub event_id: Uuid,
    /// e.g. `RegisterOfficerRequested`.
    pub event_type: String,
    /// The command that caused it, e.g. `RegisterOfficer`.
    pub command: String,
    /// Its request's tracing key.
    pub correlation_id: String,
    /// Its idempotency key.
    pub command_id: String,
    /// The record key.
    pub aggregate_id: String,
    /// The aggregate's version after it, when it was decided on the aggregate's state.
    pub aggregate_version: Option<u64>,
    /// When the command was accepted.
    pub occurred_at: OffsetDateTime,
}

/// What an event asks of the read models.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// An officer registered.
    Registration(RegisterOfficer),
    /// A registered officer changed.
    OfficerChange(OfficerChange),
    /// A field observation.
    Observation(RecordObservation),
    /// A command of the catalog without a read model of its own: its status only.
    Recorded,
}

/// A decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    /// Ids and times.
    pub meta: EventMeta,
    /// What it asks.
    pub kind: EventKind,
}

/// Reads records as the events of the catalog's commands.
#[derive(Debug, Clone)]
pub struct Decoder {
    catalog: Arc<Catalog>,
}

impl Decoder {
    /// Knows the events of `catalog`'s commands.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    /// Knows the events of the shipped catalog.
    pub fn shipped() -> Result<Self, contracts::catalog::CatalogError> {
        Ok(Self::new(Arc::new(Catalog::built_in()?)))
    }

    /// Decodes a record, or says why it is poison. `blocked_by` is the first parked event of
    /// the record's key, if any: then the record is parked behind it whatever it holds.
    pub fn decide(
        &self,
        record: &SourceRecord,
        blocked_by: Option<&EventPosition>,
    ) -> Result<DecodedEvent, Poison> {
        if let Some(first) = blocked_by {
            return Err(Poison::behind(first));
        }
        self.decode(record)
    }

    /// Reads an event, checking that the catalog knows its type and version and that it
    /// belongs to the record's key, and upcasts it to its command's current version.
    pub fn decode(&self, record: &SourceRecord) -> Result<DecodedEvent, Poison> {
        let head: EnvelopeHead = serde_json::from_slice(&record.payload).map_err(|e| {
            Poison::new(
                PoisonCode::Unparseable,
                format!("not an event envelope: {e}"),
            )
        })?;
        let entry = self.entry_of(&head)?;
        let event: EventEnvelope<Value> = serde_json::from_slice(&record.payload).map_err(|e| {
            let detail = format!("malformed {}: {e}", head.event_type);
            Poison::new(PoisonCode::InvalidPayload, detail)
        })?;
        let keyed = entry.spec.aggregate_id(&event.payload);
        if keyed != Some(event.aggregate_id.as_str()) || event.aggregate_id != record.key {
            let detail = format!(
                "aggregateId {:?}, the payload's {} {keyed:?} and record key {:?} disagree",
                event.aggregate_id, entry.spec.aggregate.id_pointer, record.key
            );
            return Err(Poison::new(PoisonCode::InvalidPayload, detail));
        }
        let command = entry.spec.command.clone();
        let payload = upcast::to_current(&command, event.schema_version, event.payload);
        let kind = kind_of(&command, payload).map_err(|e| {
            let detail = format!("{} payload does not fit its type: {e}", head.event_type);
            Poison::new(PoisonCode::InvalidPayload, detail)
        })?;
        let meta = EventMeta {
            event_id: event.event_id,
            event_type: event.event_type,
            command,
            correlation_id: event.correlation_id,
            command_id: event.command_id,
            aggregate_id: event.aggregate_id,
            aggregate_version: event.aggregate_version,
            occurred_at: event.occurred_at,
        };
        Ok(DecodedEvent { meta, kind })
    }

    fn entry_of(&self, head: &EnvelopeHead) -> Result<&CatalogEntry, Poison> {
        if let Some(entry) = self.catalog.by_event(&head.event_type, head.schema_version) {
            return Ok(entry);
        }
        let known: Vec<u32> = self
            .catalog
            .entries()
            .iter()
            .filter(|e| e.spec.event == head.event_type)
            .map(|e| e.spec.version)
            .collect();
        if known.is_empty() {
            let detail = format!("unknown event type {:?}", head.event_type);
            return Err(Poison::new(PoisonCode::UnknownEventType, detail));
        }
        let detail = format!(
            "{} schema version {} is not supported (this build knows {known:?})",
            head.event_type, head.schema_version
        );
        Err(Poison::new(PoisonCode::UnsupportedSchemaVersion, detail))
    }
}

/// The read models' view of a payload of `command`, in its current version.
fn kind_of(command: &str, payload: Value) -> Result<EventKind, serde_json::Error> {
    match command {
        REGISTER_OFFICER => serde_json::from_value(payload).map(EventKind::Registration),
        RECORD_OBSERVATION => serde_json::from_value(payload).map(EventKind::Observation),
        _ => match OfficerChange::read(command, payload) {
            Some(change) => change.map(EventKind::OfficerChange),
            None => Ok(EventKind::Recorded),
        },
    }
}

/// The parked form of `record`, logged. `handler_attempts` is how often the read model was
/// asked to apply it (for `handler-failed`); a decoding failure was tried once, and an event
/// waiting behind another not at all.
pub fn parked(record: &SourceRecord, poison: Poison, handler_attempts: u32) -> ParkedEvent {
    let Ids {
        event_id,
        correlation_id,
        command_id,
    } = ids(record);
    tracing::warn!(
        correlation_id = correlation_id.as_deref().unwrap_or_default(),
        code = %poison.code,
        detail = %poison.detail,
        position = %record.position.token(),
        "event parked"
    );
    let attempts = match poison.code {
        PoisonCode::BlockedByEarlierEvent => 0,
        PoisonCode::HandlerFailed => handler_attempts.max(1),
        _ => 1,
    };
    ParkedEvent {
        source: record.position.clone(),
        key: record.key.clone(),
        event_id,
        correlation_id,
        command_id,
        code: poison.code,
        detail: poison.detail,
        blocked_by: poison.blocked_by,
        attempts,
        parked_at: time::OffsetDateTime::now_utc(),
    }
}

/// The ids of a record: from its envelope when readable; the correlationId and commandId
/// also from its headers.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ids {
    event_id: Option<String>,
    correlation_id: Option<String>,
    command_id: Option<String>,
}

fn ids(record: &SourceRecord) -> Ids {
    let mut ids: Ids = serde_json::from_slice(&record.payload).unwrap_or_default();
    // An unreadable value may still have come with the ids in its headers.
    let from_header = |name| record.header(name).map(str::to_owned);
    ids.correlation_id = ids
        .correlation_id
        .or_else(|| from_header(contracts::headers::message::CORRELATION_ID));
    ids.command_id = ids
        .command_id
        .or_else(|| from_header(contracts::headers::message::COMMAND_ID));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &str, key: &str) -> SourceRecord {
        SourceRecord {
            position: EventPosition {
                topic: "t".to_owned(),
                partition: 0,
                offset: 3,
            },
            key: key.to_owned(),
            payload: payload.as_bytes().to_vec(),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    fn decoder() -> Decoder {
        Decoder::shipped().expect("the shipped catalog")
    }

    fn code(payload: &str, key: &str) -> PoisonCode {
        decoder()
            .decode(&record(payload, key))
            .expect_err("poison")
            .code
    }

    const HEAD: &str = r#""eventId":"6f1c1f62-4a8e-4c55-9d4e-1c2f8a9b0c11""#;

    #[test]
    fn each_kind_of_poison_gets_its_code() {
        assert_eq!(code("not json", "B-1"), PoisonCode::Unparseable);
        let unknown = format!(r#"{{{HEAD},"eventType":"Nope","schemaVersion":1}}"#);
        assert_eq!(code(&unknown, "B-1"), PoisonCode::UnknownEventType);
        let v9 = format!(r#"{{{HEAD},"eventType":"RegisterOfficerRequested","schemaVersion":9}}"#);
        assert_eq!(code(&v9, "B-1"), PoisonCode::UnsupportedSchemaVersion);
        let empty =
            format!(r#"{{{HEAD},"eventType":"RegisterOfficerRequested","schemaVersion":1}}"#);
        assert_eq!(code(&empty, "B-1"), PoisonCode::InvalidPayload);
    }

    #[test]
    fn a_blocked_key_parks_even_a_good_record() {
        let first = EventPosition {
            topic: "t".to_owned(),
            partition: 0,
            offset: 1,
        };
        let poison = decoder()
            .decide(&record("whatever", "B-1"), Some(&first))
            .expect_err("parked");
        assert_eq!(poison.code, PoisonCode::BlockedByEarlierEvent);
        assert_eq!(poison.blocked_by, Some(first));
    }
}

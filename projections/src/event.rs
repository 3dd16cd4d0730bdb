//! Records as the projections see them, and the first decision about each: apply it, or
//! park it (unreadable, unknown, or behind a parked event of its key). Both stores make
//! this decision the same way; only applying differs.

use contracts::{
    EventPosition,
    deadletter::{ParkedEvent, PoisonCode},
    envelope::EnvelopeHead,
    officer::{REGISTER_OFFICER_REQUESTED, REGISTER_OFFICER_VERSION, RegisterOfficerRequested},
};

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

/// Decodes a record, or says why it is poison. `blocked_by` is the first parked event of
/// the record's key, if any: then the record is parked behind it whatever it holds.
pub fn decide(
    record: &SourceRecord,
    blocked_by: Option<&EventPosition>,
) -> Result<RegisterOfficerRequested, Poison> {
    if let Some(first) = blocked_by {
        return Err(Poison::behind(first));
    }
    decode(record)
}

/// Reads a registration event, checking that its type and version are known and that it
/// belongs to the record's key.
pub fn decode(record: &SourceRecord) -> Result<RegisterOfficerRequested, Poison> {
    let head: EnvelopeHead = serde_json::from_slice(&record.payload).map_err(|e| {
        Poison::new(
            PoisonCode::Unparseable,
            format!("not an event envelope: {e}"),
        )
    })?;
    if head.event_type != REGISTER_OFFICER_REQUESTED {
        let detail = format!("unknown event type {:?}", head.event_type);
        return Err(Poison::new(PoisonCode::UnknownEventType, detail));
    }
    if head.schema_version != REGISTER_OFFICER_VERSION {
        let detail = format!(
            "{} schema version {} is not supported (this build knows {})",
            head.event_type, head.schema_version, REGISTER_OFFICER_VERSION
        );
        return Err(Poison::new(PoisonCode::UnsupportedSchemaVersion, detail));
    }
    let event: RegisterOfficerRequested = serde_json::from_slice(&record.payload).map_err(|e| {
        Poison::new(
            PoisonCode::InvalidPayload,
            format!("malformed {REGISTER_OFFICER_REQUESTED}: {e}"),
        )
    })?;
    if event.aggregate_id != event.payload.badge_number || event.aggregate_id != record.key {
        let detail = format!(
            "aggregateId {:?}, badgeNumber {:?} and record key {:?} disagree",
            event.aggregate_id, event.payload.badge_number, record.key
        );
        return Err(Poison::new(PoisonCode::InvalidPayload, detail));
    }
    Ok(event)
}

/// The parked form of `record`, logged. `handler_attempts` is how often the read model was
/// asked to apply it (for `handler-failed`); a decoding failure was tried once, and an event
/// waiting behind another not at all.
pub fn parked(record: &SourceRecord, poison: Poison, handler_attempts: u32) -> ParkedEvent {
    let (event_id, correlation_id) = ids(record);
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
        code: poison.code,
        detail: poison.detail,
        blocked_by: poison.blocked_by,
        attempts,
        parked_at: time::OffsetDateTime::now_utc(),
    }
}

/// The record's eventId and correlationId, when its envelope is readable at all.
fn ids(record: &SourceRecord) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ids {
        event_id: Option<String>,
        correlation_id: Option<String>,
    }
    serde_json::from_slice::<Ids>(&record.payload)
        .map(|ids| (ids.event_id, ids.correlation_id))
        .unwrap_or_default()
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
        }
    }

    fn code(payload: &str, key: &str) -> PoisonCode {
        decode(&record(payload, key)).expect_err("poison").code
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
        let poison = decide(&record("whatever", "B-1"), Some(&first)).expect_err("parked");
        assert_eq!(poison.code, PoisonCode::BlockedByEarlierEvent);
        assert_eq!(poison.blocked_by, Some(first));
    }
}

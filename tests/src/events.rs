//! Writing records straight to the officer topic, bypassing the BL services: bulk events for
//! projection tests, and the poison a buggy or foreign producer could write.

use anyhow::Result;
use contracts::{
    EventEnvelope, EventPosition,
    headers::message,
    officer::{REGISTER_OFFICER, REGISTER_OFFICER_REQUESTED, Rank, RegisterOfficer},
};
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use serde_json::Value;
use time::OffsetDateTime;

/// An idempotent producer to the test's broker.
pub struct EventWriter {
    producer: FutureProducer,
    topic: String,
}

impl EventWriter {
    /// Connects to `bootstrap`, to write to `topic` (a stack's officer topic).
    pub fn new(bootstrap: &str, topic: &str) -> Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Writes `value` with `key` to the officer topic and returns where it landed.
    pub async fn write(&self, key: &str, value: &[u8]) -> Result<EventPosition> {
        let correlation = format!("corr-{key}");
        let headers = OwnedHeaders::new().insert(Header {
            key: message::CORRELATION_ID,
            value: Some(correlation.as_str()),
        });
        let record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(value)
            .headers(headers);
        let delivery = self
            .producer
            .send(record, std::time::Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
        Ok(EventPosition {
            topic: self.topic.clone(),
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Writes a valid registration of `badge` by command `command_id`.
    pub async fn register(&self, command_id: &str, badge: &str) -> Result<EventPosition> {
        self.write(badge, &registration(command_id, badge)).await
    }
}

/// A valid `RegisterOfficerRequested` record value; names and ranks vary with the badge.
pub fn registration(command_id: &str, badge: &str) -> Vec<u8> {
    serde_json::to_vec(&registration_value(command_id, badge)).unwrap_or_default()
}

/// [`registration`] as JSON, to be altered into poison.
pub fn registration_value(command_id: &str, badge: &str) -> Value {
    let n: usize = badge.bytes().map(usize::from).sum();
    let event = EventEnvelope {
        event_id: contracts::ids::event_id(REGISTER_OFFICER, command_id),
        event_type: REGISTER_OFFICER_REQUESTED.to_owned(),
        schema_version: 1,
        correlation_id: format!("corr-{command_id}"),
        command_id: command_id.to_owned(),
        aggregate_id: badge.to_owned(),
        aggregate_version: Some(1),
        occurred_at: OffsetDateTime::UNIX_EPOCH
            + time::Duration::days(i64::try_from(n % 30).unwrap_or_default()),
        payload: RegisterOfficer {
            badge_number: badge.to_owned(),
            first_name: ["Ana", "Bo", "Cyd", "Dee"][n % 4].to_owned(),
            last_name: format!("Lastname{}", badge.replace('-', "")),
            rank: Rank::ALL[n % Rank::ALL.len()],
            email: "officer@example.org".to_owned(),
            hire_date: time::macros::date!(2015 - 01 - 01)
                + time::Duration::days(i64::try_from(n % 3000).unwrap_or_default()),
            phone: None,
            precinct: None,
        },
    };
    serde_json::to_value(&event).unwrap_or_default()
}

//! Reading a topic back, to check what really reached Kafka.

use std::{collections::HashMap, time::Duration};

use anyhow::{Context, Result};
use rdkafka::{
    Message,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
};
use runtime::kafka::{Isolation, read_to_end, reader};
use serde_json::Value;

/// One record as stored.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key, as text.
    pub key: String,
    /// Headers, as text.
    pub headers: HashMap<String, String>,
    /// Value, as JSON (`null` when it is not JSON: poison written on purpose).
    pub value: Value,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let topic = metadata
        .topics()
        .first()
        .context("topic missing from metadata")?;
    Ok(topic.partitions().iter().map(|p| p.id()).collect())
}

/// The sum of the high watermarks of all partitions: how many records the topic holds.
pub fn end_offsets(bootstrap: &str, topic: &str) -> Result<i64> {
    let group = format!("e2e-reader-{}", uuid::Uuid::new_v4());
    let consumer = reader(bootstrap, &group, Isolation::Uncommitted)?;
    partitions(&consumer, topic)?
        .into_iter()
        .map(|p| Ok(consumer.fetch_watermarks(topic, p, TIMEOUT)?.1))
        .sum()
}

/// Every record of the topic, from the beginning to the current end.
pub fn read_all(bootstrap: &str, topic: &str) -> Result<Vec<Record>> {
    read(bootstrap, topic, false)
}

/// Every record of the topic, uncommitted and aborted ones included: what a zombie wrote.
pub fn read_all_raw(bootstrap: &str, topic: &str) -> Result<Vec<Record>> {
    read(bootstrap, topic, true)
}

fn read(bootstrap: &str, topic: &str, raw: bool) -> Result<Vec<Record>> {
    let isolation = if raw {
        Isolation::Uncommitted
    } else {
        Isolation::Committed
    };
    let mut records = Vec::new();
    read_to_end(bootstrap, topic, isolation, TIMEOUT, |message| {
        records.push(record(message));
        true
    })?;
    Ok(records)
}

fn record(message: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), text(h.value.unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    Record {
        partition: message.partition(),
        offset: message.offset(),
        key: text(message.key().unwrap_or_default()),
        headers,
        value: serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or_default(),
    }
}

/// The records of the command `command_id` (by its `Ackgate-Command-Id` header).
pub fn of_command<'a>(records: &'a [Record], command_id: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| {
            r.headers
                .get(contracts::headers::message::COMMAND_ID)
                .is_some_and(|id| id == command_id)
        })
        .collect()
}

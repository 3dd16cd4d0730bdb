//! Reading a topic back, to check what really reached Kafka.

use std::{collections::HashMap, time::Duration};

use anyhow::{Context, Result};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
};
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

/// A reader of committed records; `raw` also sees uncommitted and aborted ones (and its
/// watermarks are the log's end, not the last stable offset).
fn consumer_with(bootstrap: &str, raw: bool) -> Result<BaseConsumer> {
    let isolation = if raw {
        "read_uncommitted"
    } else {
        "read_committed"
    };
    Ok(ClientConfig::new()
        .set("isolation.level", isolation)
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("e2e-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        // Transactional topics end with a commit marker no record is delivered for: the
        // end-of-partition event says the reader has everything.
        .set("enable.partition.eof", "true")
        .create()?)
}

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
    let consumer = consumer_with(bootstrap, true)?;
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
    let consumer = consumer_with(bootstrap, raw)?;
    let ends = consumer_with(bootstrap, true)?;
    let mut remaining = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions(&consumer, topic)? {
        let high = ends.fetch_watermarks(topic, partition, TIMEOUT)?.1;
        if high > 0 {
            remaining.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut records = Vec::new();
    while !remaining.is_empty() {
        // An idle bound, not a total one: a long topic takes as long as it takes.
        let message = consumer
            .poll(TIMEOUT)
            .with_context(|| format!("no record from {topic} for {TIMEOUT:?}"))?;
        let message = match message {
            Err(rdkafka::error::KafkaError::PartitionEOF(partition)) => {
                // The end of what is committed so far: done once it reaches the watermark
                // (markers are written just after a commit returns).
                if contracts::runtime::kafka::position_of(&consumer, partition)
                    .is_some_and(|(_, at)| remaining.get(&partition).is_none_or(|high| at >= *high))
                {
                    remaining.remove(&partition);
                }
                continue;
            }
            other => other?,
        };
        let record = record(&message)?;
        if remaining
            .get(&record.partition)
            .is_some_and(|high| record.offset + 1 >= *high)
        {
            remaining.remove(&record.partition);
        }
        records.push(record);
    }
    Ok(records)
}

fn record(message: &rdkafka::message::BorrowedMessage<'_>) -> Result<Record> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), text(h.value.unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Record {
        partition: message.partition(),
        offset: message.offset(),
        key: text(message.key().unwrap_or_default()),
        headers,
        value: serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or_default(),
    })
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

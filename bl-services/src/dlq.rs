//! The command dead-letter queue: commands whose event Kafka did not take, parked in a
//! JetStream key/value bucket (outside Kafka, since Kafka is what failed) until the client
//! retries them or an operator re-drives them (see [`crate::ops`]).
//!
//! One entry per command, under the same key as its ledger entry: a command that fails
//! again is counted, not parked twice. Entries do not expire; they leave the queue when an
//! attempt of the command reaches a final answer (202, or a refusal).

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use contracts::ErrorCode;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Error, Result};

/// The dead-letter queue could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("command dead-letter queue unavailable: {0}")]
pub struct DlqError(String);

/// A parked command: everything needed to send it again, and why it is here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedCommand {
    /// e.g. `RegisterOfficer`.
    pub command_type: String,
    /// Its version (the schema it was validated against).
    #[serde(default = "first_version")]
    pub version: u32,
    /// The NATS subject it is re-driven to.
    pub subject: String,
    /// The idempotency key, kept on re-drive.
    pub command_id: String,
    /// The tracing key, kept on re-drive.
    pub correlation_id: String,
    /// W3C trace context of the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The aggregate the command targets.
    pub aggregate_id: String,
    /// The failure (`kafka-unavailable`).
    pub code: ErrorCode,
    /// What the producer reported, last time.
    pub reason: String,
    /// How many attempts failed so far.
    pub attempts: u32,
    /// When it was first parked.
    #[serde(with = "time::serde::rfc3339")]
    pub first_parked_at: OffsetDateTime,
    /// When it last failed.
    #[serde(with = "time::serde::rfc3339")]
    pub last_failed_at: OffsetDateTime,
    /// The command, as validated.
    pub command: serde_json::Value,
}

impl ParkedCommand {
    /// What sending it again takes.
    pub fn resend(&self) -> Resend {
        Resend {
            subject: self.subject.clone(),
            command_id: self.command_id.clone(),
            correlation_id: self.correlation_id.clone(),
            traceparent: self.traceparent.clone(),
            body: self.command.clone(),
        }
    }
}

/// A command as it is sent again with its original ids (a re-drive): by an operator from the
/// dead-letter queue, or by the next command on its aggregate when it was left unsettled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resend {
    /// The NATS subject, in the namespace.
    pub subject: String,
    /// The idempotency key, kept.
    pub command_id: String,
    /// The tracing key, kept.
    pub correlation_id: String,
    /// W3C trace context of the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The command, as validated.
    pub body: serde_json::Value,
}

/// Entries parked before versions were recorded hold version 1 commands.
fn first_version() -> u32 {
    1
}

/// Handle on the dead-letter bucket.
#[derive(Clone)]
pub struct CommandDlq {
    store: kv::Store,
}

impl CommandDlq {
    /// Opens the bucket, creating it (file storage, no expiry) on first use.
    pub async fn open(client: async_nats::Client, bucket: &str) -> Result<Self> {
        let store = jetstream::new(client)
            .create_or_update_key_value(kv::Config {
                bucket: bucket.to_owned(),
                description: "Ackgate: commands Kafka did not take, waiting for re-drive"
                    .to_owned(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Bucket(bucket.to_owned(), e.to_string()))?;
        Ok(Self { store })
    }

    /// Parks `command` under `key`, or counts one more failure of a command already parked.
    pub async fn park(&self, key: &str, command: ParkedCommand) -> Result<(), DlqError> {
        let merged = match self.get(key).await? {
            Some(earlier) => ParkedCommand {
                attempts: earlier.attempts + command.attempts,
                first_parked_at: earlier.first_parked_at,
                ..command
            },
            None => command,
        };
        let value = serde_json::to_vec(&merged).map_err(|e| DlqError(e.to_string()))?;
        self.store
            .put(key, Bytes::from(value))
            .await
            .map(|_| ())
            .map_err(|e| DlqError(e.to_string()))
    }

    /// Takes a command out of the queue (it reached a final answer).
    pub async fn remove(&self, key: &str) -> Result<(), DlqError> {
        self.store
            .delete(key)
            .await
            .map_err(|e| DlqError(e.to_string()))
    }

    /// The parked command under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<ParkedCommand>, DlqError> {
        let Some(value) = self
            .store
            .get(key)
            .await
            .map_err(|e| DlqError(e.to_string()))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&value)
            .map(Some)
            .map_err(|e| DlqError(format!("entry {key} is unreadable: {e}")))
    }

    /// Every parked command with its key, oldest first.
    pub async fn list(&self) -> Result<Vec<(String, ParkedCommand)>, DlqError> {
        let keys = self.keys().await?;
        let mut parked = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(command) = self.get(&key).await? {
                parked.push((key, command));
            }
        }
        parked.sort_by_key(|(_, command)| command.first_parked_at);
        Ok(parked)
    }

    /// How many commands are parked.
    pub async fn depth(&self) -> Result<usize, DlqError> {
        Ok(self.keys().await?.len())
    }

    async fn keys(&self) -> Result<Vec<String>, DlqError> {
        self.store
            .keys()
            .await
            .map_err(|e| DlqError(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| DlqError(e.to_string()))
    }
}

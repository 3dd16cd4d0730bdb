//! Aggregate state: one JetStream key/value entry per aggregate (an officer, ...), holding its
//! version, its state after the newest decided command, and that command (the *head*).
//!
//! Commands on one aggregate are decided one at a time: a command reads the entry, is judged
//! on it, and takes the next version with compare-and-set on the entry's revision *before*
//! its event is produced. Two instances racing on one aggregate cannot both win; the loser
//! reads again and is judged on the winner's state. The head stays unsettled until its event
//! is in Kafka (its ledger entry says accepted); no command is decided behind an unsettled
//! head, so events reach the topic in version order (see [`crate::decision`]).
//!
//! The bucket is shared by all instances, file-backed, and rebuilt from Kafka by
//! `bl-service ledger rebuild` like the ledger.

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, UpdateErrorKind},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The state store could not be read or written: nothing may be decided.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// JetStream did not answer.
    #[error("aggregate state unavailable: {0}")]
    Unavailable(String),
    /// The stored entry is not one this service wrote (a defect, or a foreign writer).
    #[error("aggregate entry {key} is unreadable: {reason}")]
    Unreadable {
        /// The entry's key.
        key: String,
        /// The decoding failure.
        reason: String,
    },
}

/// The command that took an aggregate's newest version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// e.g. `SuspendOfficer`.
    pub command_type: String,
    /// Its idempotency key.
    pub command_id: String,
    /// Its ledger key (its eventId), where whether it settled is recorded.
    pub ledger_key: String,
    /// How to send it again, so the next command on the aggregate can settle it if its
    /// instance died or Kafka did not take it (absent on entries a rebuild wrote: settled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<crate::dlq::Resend>,
}

/// An aggregate as the business-logic services know it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateEntry {
    /// 1 after the first event, one more after each next.
    pub version: u64,
    /// The domain's state after the head's event (`null` for commands without rules).
    pub state: Value,
    /// The command whose event takes this version.
    pub head: Head,
}

/// An entry as read, with the revision a write must compare against.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// `None`: the aggregate does not exist yet.
    pub entry: Option<AggregateEntry>,
    /// The entry's revision (0 when absent).
    pub revision: u64,
}

impl Loaded {
    /// The current version (`None`: the aggregate does not exist).
    pub fn version(&self) -> Option<u64> {
        self.entry.as_ref().map(|e| e.version)
    }
}

/// Handle on the shared aggregate bucket.
#[derive(Clone)]
pub struct AggregateStore {
    store: kv::Store,
}

impl AggregateStore {
    /// Opens the bucket, creating it (file storage, one value per key) on first use.
    pub async fn open(client: async_nats::Client, bucket: &str) -> Result<Self> {
        let context = jetstream::new(client);
        let store = match context.get_key_value(bucket).await {
            Ok(store) => store,
            Err(_) => context
                .create_key_value(kv::Config {
                    bucket: bucket.to_owned(),
                    description: "Ackgate: aggregate -> version, state and newest command"
                        .to_owned(),
                    history: 1,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::Bucket(bucket.to_owned(), e.to_string()))?,
        };
        Ok(Self { store })
    }

    /// Reads the aggregate `id` of type `kind`.
    pub async fn load(&self, kind: &str, id: &str) -> Result<Loaded, AggregateError> {
        let key = entry_key(kind, id);
        let found = self
            .store
            .entry(&key)
            .await
            .map_err(|e| AggregateError::Unavailable(e.to_string()))?;
        let Some(found) = found.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(Loaded {
                entry: None,
                revision: 0,
            });
        };
        let entry =
            serde_json::from_slice(&found.value).map_err(|e| AggregateError::Unreadable {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        Ok(Loaded {
            entry: Some(entry),
            revision: found.revision,
        })
    }

    /// Writes `entry` if the aggregate is still at `seen` (compare-and-set); `false` when
    /// another command took the version first.
    pub async fn take_turn(
        &self,
        kind: &str,
        id: &str,
        seen: &Loaded,
        entry: &AggregateEntry,
    ) -> Result<bool, AggregateError> {
        let key = entry_key(kind, id);
        let value = serde_json::to_vec(entry)
            .map_err(|e| AggregateError::Unavailable(format!("entry does not serialize: {e}")))?
            .into();
        let unavailable = |e: &dyn std::fmt::Display| AggregateError::Unavailable(e.to_string());
        if seen.revision == 0 {
            return match self.store.create(&key, value).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(unavailable(&e)),
            };
        }
        match self.store.update(&key, value, seen.revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Overwrites the aggregate (a rebuild from Kafka).
    pub async fn restore(
        &self,
        kind: &str,
        id: &str,
        entry: &AggregateEntry,
    ) -> Result<(), AggregateError> {
        let value = serde_json::to_vec(entry)
            .map_err(|e| AggregateError::Unavailable(format!("entry does not serialize: {e}")))?;
        self.store
            .put(entry_key(kind, id), value.into())
            .await
            .map(|_| ())
            .map_err(|e| AggregateError::Unavailable(e.to_string()))
    }
}

/// `<kind>.<id>`, the id escaped so any string is a valid key: letters, digits, `-` and `_`
/// stay, every other byte becomes `=XX`.
pub fn entry_key(kind: &str, id: &str) -> String {
    let mut key = format!("{kind}.");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("={byte:02X}"));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_id_becomes_a_valid_key_and_distinct_ids_stay_distinct() {
        assert_eq!(entry_key("officer", "B-1042"), "officer.B-1042");
        assert_eq!(entry_key("permit", "a.b/c d"), "permit.a=2Eb=2Fc=20d");
        assert_ne!(entry_key("permit", "a=2E"), entry_key("permit", "a."));
        let valid = |k: &str| {
            k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=./".contains(&b))
        };
        assert!(valid(&entry_key("permit", "ü*>")));
    }
}

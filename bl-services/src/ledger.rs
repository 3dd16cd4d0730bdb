//! The idempotency ledger: one JetStream key/value entry per command, shared by every BL
//! instance, kept for a retention period, and rebuildable from Kafka (see [`crate::rebuild`]).
//!
//! The key is the command's eventId (derived from its type and commandId), which every event
//! in Kafka carries. An entry goes `pending` -> `accepted` (holding the exact reply bytes) or
//! `pending` -> `parked` (Kafka did not take the event), or is deleted when the command is
//! refused, so a 4xx leaves nothing behind. Create-if-absent and compare-and-set on the
//! entry's revision make each step atomic across instances: of two racing attempts only one
//! produces, and once an entry is `accepted` its reply never changes.
//!
//! With a transactional producer, a `pending` or `parked` entry also names every
//! transactional id that may have written the command's record ([`Unresolved`]). Whoever
//! takes the command over settles those first (fence, then search the committed records),
//! so a crash after Kafka's commit, an unknown commit outcome or a zombie instance never
//! leads to a second record.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, Operation, UpdateErrorKind},
};
use bytes::Bytes;
use contracts::{ErrorCode, ids};
use runtime::{metrics, transactions::Unresolved};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::{Error, Result};

/// The ledger could not be read or written: the outcome of the command cannot be vouched for.
#[derive(Debug, thiserror::Error)]
#[error("idempotency ledger unavailable: {0}")]
pub struct LedgerError(String);

/// Where a command stands in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LedgerState {
    /// An instance is working on it; another may take over once the lease has passed.
    #[serde(rename_all = "camelCase")]
    Pending {
        /// When the attempt is presumed dead (its instance crashed).
        #[serde(with = "time::serde::rfc3339")]
        lease_until: OffsetDateTime,
        /// The transactional ids that may have written the record, this attempt's included.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        writers: Option<Unresolved>,
    },
    /// Kafka acknowledged the event; every retry gets exactly this reply.
    Accepted {
        /// The reply body, byte for byte.
        reply: String,
    },
    /// Kafka did not take the event; the command waits in the dead-letter queue.
    Parked {
        /// Why.
        code: ErrorCode,
        /// Attempts whose outcome is unknown, to settle before producing again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unresolved: Option<Unresolved>,
    },
}

/// One ledger entry (the JSON value stored under the command's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// e.g. `RegisterOfficer`.
    pub command_type: String,
    /// The idempotency key.
    pub command_id: String,
    /// The correlationId the command was first sent with; retries keep it.
    pub correlation_id: String,
    /// Fingerprint of the command body, to refuse a reused key with a different body.
    pub fingerprint: String,
    /// Where it stands.
    #[serde(flatten)]
    pub state: LedgerState,
    /// When this state was written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl LedgerEntry {
    /// The stored form. Strings, numbers and timestamps always serialize; a failure is a
    /// defect, reported as such rather than stored as an empty entry.
    fn to_bytes(&self) -> Result<Bytes, LedgerError> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| LedgerError(format!("entry does not serialize: {e}")))
    }

    fn with_state(&self, state: LedgerState) -> Self {
        Self {
            state,
            updated_at: OffsetDateTime::now_utc(),
            ..self.clone()
        }
    }
}

/// What identifies a command to the ledger.
#[derive(Debug, Clone)]
pub struct CommandIdentity {
    /// e.g. `RegisterOfficer`.
    pub command_type: String,
    /// The idempotency key.
    pub command_id: String,
    /// The correlationId of this request.
    pub correlation_id: String,
    /// [`fingerprint`] of the canonical command.
    pub fingerprint: String,
}

impl CommandIdentity {
    /// The ledger (and dead-letter queue) key: the command's eventId.
    pub fn key(&self) -> String {
        ledger_key(&self.command_type, &self.command_id)
    }

    fn pending(&self, lease: Duration, writer: Option<&str>) -> LedgerEntry {
        let now = OffsetDateTime::now_utc();
        LedgerEntry {
            command_type: self.command_type.clone(),
            command_id: self.command_id.clone(),
            correlation_id: self.correlation_id.clone(),
            fingerprint: self.fingerprint.clone(),
            state: LedgerState::Pending {
                lease_until: now + lease,
                writers: writer.map(|id| Unresolved::attempt(id.to_owned())),
            },
            updated_at: now,
        }
    }
}

/// The key of a command: its eventId, valid as a key/value key whatever the commandId holds.
pub fn ledger_key(command_type: &str, command_id: &str) -> String {
    ids::event_id(command_type, command_id).to_string()
}

/// `sha256:<hex>` of the canonical command (its typed form re-serialized), so a retry that
/// differs only in whitespace or member order is still the same command.
pub fn fingerprint(canonical: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical);
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// An attempt this instance owns: it may produce the event, once earlier attempts whose
/// outcome is unknown are settled.
#[derive(Debug, Clone)]
pub struct Attempt {
    key: String,
    revision: u64,
    entry: LedgerEntry,
    /// The command was parked before this attempt (a retry or a re-drive of it).
    pub resumes_parked: bool,
    /// Earlier attempts that may have written the record: settle them before producing.
    pub earlier: Option<Unresolved>,
}

impl Attempt {
    /// The transactional id this attempt writes under (`None`: not transactional).
    pub fn writer(&self) -> Option<&str> {
        match &self.entry.state {
            LedgerState::Pending {
                writers: Some(writers),
                ..
            } => writers.transactional_ids.last().map(String::as_str),
            _ => None,
        }
    }

    /// The correlationId the command is bound to (its first attempt's).
    pub fn correlation_id(&self) -> &str {
        &self.entry.correlation_id
    }

    /// The ledger key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// How [`CommandLedger::begin`] went.
#[derive(Debug)]
pub enum Begin {
    /// This instance owns the attempt.
    Started(Box<Attempt>),
    /// The command was accepted before: answer with its reply.
    Replay {
        /// The stored reply.
        reply: Bytes,
        /// The command's correlationId.
        correlation_id: String,
    },
    /// The key belongs to a command with a different body.
    KeyReused,
    /// Another attempt is still in flight after the longest wait.
    InProgress,
}

/// How [`CommandLedger::record_accepted`] went, for the rebuild report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The ledger did not know the command.
    Added,
    /// The ledger had it pending or parked; it is now accepted.
    Resolved,
    /// The ledger already had it accepted.
    AlreadyAccepted,
}

/// Handle on the shared ledger bucket.
#[derive(Clone)]
pub struct CommandLedger {
    store: kv::Store,
    lease: Duration,
}

/// Longest time spent retrying a ledger write after Kafka's acknowledgement, to ride out a
/// NATS reconnect before answering `ledger-unavailable`.
const ACCEPT_WRITE_GRACE: Duration = Duration::from_secs(3);

impl CommandLedger {
    /// Opens the bucket, creating it or applying the retention to an existing one.
    /// `lease` is how long an attempt may stay pending before another instance takes over.
    pub async fn open(
        client: async_nats::Client,
        bucket: &str,
        retention: Duration,
        lease: Duration,
    ) -> Result<Self> {
        let store = jetstream::new(client)
            .create_or_update_key_value(kv::Config {
                bucket: bucket.to_owned(),
                description:
                    "Ackgate: command eventId -> pending attempt, accepted reply or parked state"
                        .to_owned(),
                history: 1,
                max_age: retention,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Bucket(bucket.to_owned(), e.to_string()))?;
        Ok(Self { store, lease })
    }

    /// Starts an attempt of `command` that writes under transactional id `writer` (if the
    /// producer is transactional), or tells why not. A retry of an accepted command gets its
    /// stored reply; a retry of a parked command, or of one whose instance died (its lease
    /// passed), takes the attempt over; a retry of one still in flight waits for it.
    pub async fn begin(
        &self,
        command: &CommandIdentity,
        writer: Option<&str>,
    ) -> Result<Begin, LedgerError> {
        let key = command.key();
        let deadline = Instant::now() + self.lease + Duration::from_secs(1);
        let mut pause = Duration::from_millis(10);
        loop {
            let pending = command.pending(self.lease, writer);
            match self.store.create(&key, pending.to_bytes()?).await {
                Ok(revision) => return Ok(self.started(key, revision, pending, None, false)),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(LedgerError(e.to_string())),
            }
            let Some((revision, existing)) = self.current(&key).await? else {
                continue; // deleted in between: create again
            };
            if existing.fingerprint != command.fingerprint {
                return Ok(Begin::KeyReused);
            }
            let (resumes_parked, earlier) = match &existing.state {
                LedgerState::Accepted { reply } => {
                    return Ok(Begin::Replay {
                        reply: reply.clone().into(),
                        correlation_id: existing.correlation_id,
                    });
                }
                LedgerState::Parked { unresolved, .. } => (true, unresolved.clone()),
                LedgerState::Pending {
                    lease_until,
                    writers,
                } if *lease_until <= OffsetDateTime::now_utc() => {
                    tracing::warn!(key, "taking over an attempt whose lease passed");
                    (false, writers.clone())
                }
                LedgerState::Pending { .. } => {
                    if Instant::now() >= deadline {
                        return Ok(Begin::InProgress);
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                    continue;
                }
            };
            let lease_until = OffsetDateTime::now_utc() + self.lease;
            let ours = writer.map(|id| Unresolved::attempt(id.to_owned()));
            let writers = match (earlier.clone(), ours) {
                (Some(earlier), Some(ours)) => Some(earlier.and(ours)),
                (earlier, ours) => ours.or(earlier),
            };
            let taken = existing.with_state(LedgerState::Pending {
                lease_until,
                writers,
            });
            match self.store.update(&key, taken.to_bytes()?, revision).await {
                Ok(revision) => {
                    return Ok(self.started(key, revision, taken, earlier, resumes_parked));
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(LedgerError(e.to_string())),
            }
        }
    }

    fn started(
        &self,
        key: String,
        revision: u64,
        entry: LedgerEntry,
        earlier: Option<Unresolved>,
        resumes: bool,
    ) -> Begin {
        metrics::command().ledger(metrics::LedgerState::Pending);
        Begin::Started(Box::new(Attempt {
            key,
            revision,
            entry,
            resumes_parked: resumes,
            earlier,
        }))
    }

    /// Records the accepted reply and returns the reply to send: `reply` itself, or, if
    /// another attempt of the same command was accepted first, that attempt's reply, so
    /// every client of one command sees the same bytes. Retries for a short while, since
    /// the event is already in Kafka.
    pub async fn accept(&self, attempt: &Attempt, reply: Bytes) -> Result<Bytes, LedgerError> {
        let text = String::from_utf8_lossy(&reply).into_owned();
        let accepted = attempt
            .entry
            .with_state(LedgerState::Accepted { reply: text })
            .to_bytes()?;
        let deadline = Instant::now() + ACCEPT_WRITE_GRACE;
        let mut revision = attempt.revision;
        loop {
            let error = match self
                .store
                .update(&attempt.key, accepted.clone(), revision)
                .await
            {
                Ok(_) => {
                    metrics::command().ledger(metrics::LedgerState::Accepted);
                    return Ok(reply);
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    match self.winner_or_revision(&attempt.key).await {
                        Ok(Ok(winner)) => return Ok(winner),
                        Ok(Err(current)) => {
                            revision = current;
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => LedgerError(e.to_string()),
            };
            if Instant::now() >= deadline {
                return Err(error);
            }
            tracing::warn!(error = %error, "ledger write failed after Kafka's ack; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The reply of an accepted entry (`Ok`), or the revision to write over (`Err`).
    async fn winner_or_revision(&self, key: &str) -> Result<Result<Bytes, u64>, LedgerError> {
        let slot = self.slot(key).await?;
        match slot.entry {
            Some(LedgerEntry {
                state: LedgerState::Accepted { reply },
                ..
            }) => Ok(Ok(reply.into())),
            _ => Ok(Err(slot.revision)),
        }
    }

    /// Marks the attempt parked, with the attempts still to settle, unless another attempt
    /// moved the entry on meanwhile.
    pub async fn park(&self, attempt: &Attempt, code: ErrorCode, unresolved: Option<Unresolved>) {
        let parked = attempt
            .entry
            .with_state(LedgerState::Parked { code, unresolved });
        let written = match parked.to_bytes() {
            Ok(bytes) => self
                .store
                .update(&attempt.key, bytes, attempt.revision)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(()) => metrics::command().ledger(metrics::LedgerState::Parked),
            Err(e) => {
                tracing::warn!(error = %e, "parked state not recorded; a retry takes over after the lease")
            }
        }
    }

    /// Whether the entry is still as `attempt` wrote it: `false` once another attempt took
    /// the command over (this instance was paused or slow past its lease). Unknown counts as
    /// ours, so a command is never left unparked for a read error.
    pub async fn still_ours(&self, attempt: &Attempt) -> bool {
        self.slot(&attempt.key)
            .await
            .map_or(true, |slot| slot.revision == attempt.revision)
    }

    /// Removes the attempt of a refused command, so a corrected retry starts afresh.
    pub async fn forget(&self, attempt: &Attempt) {
        let removed = self
            .store
            .delete_expect_revision(&attempt.key, Some(attempt.revision))
            .await;
        match removed {
            Ok(()) => metrics::command().ledger(metrics::LedgerState::Forgotten),
            Err(e) => {
                tracing::warn!(error = %e, "refused attempt not removed; a retry takes over after the lease")
            }
        }
    }

    /// The entry of `key`, if any (operator inspection).
    pub async fn get(&self, key: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        Ok(self.current(key).await?.map(|(_, entry)| entry))
    }

    /// Records a command found accepted in Kafka (ledger rebuild). An accepted entry is kept
    /// as it is, since its reply is the one clients saw.
    pub async fn record_accepted(&self, entry: &LedgerEntry) -> Result<Recorded, LedgerError> {
        let key = ledger_key(&entry.command_type, &entry.command_id);
        loop {
            let slot = self.slot(&key).await?;
            let outcome = match slot.entry {
                None => Recorded::Added,
                Some(LedgerEntry {
                    state: LedgerState::Accepted { .. },
                    ..
                }) => return Ok(Recorded::AlreadyAccepted),
                Some(_) => Recorded::Resolved,
            };
            match self
                .store
                .update(&key, entry.to_bytes()?, slot.revision)
                .await
            {
                Ok(_) => return Ok(outcome),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(LedgerError(e.to_string())),
            }
        }
    }

    /// The live entry of `key` and its revision; `None` if absent or deleted.
    async fn current(&self, key: &str) -> Result<Option<(u64, LedgerEntry)>, LedgerError> {
        let slot = self.slot(key).await?;
        Ok(slot.entry.map(|entry| (slot.revision, entry)))
    }

    /// What `key` holds now. An entry that does not parse is an error: writing over it could
    /// lose an accepted reply.
    async fn slot(&self, key: &str) -> Result<Slot, LedgerError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| LedgerError(e.to_string()))?;
        let Some(entry) = entry else {
            return Ok(Slot {
                revision: 0,
                entry: None,
            });
        };
        let live = match entry.operation {
            Operation::Put => Some(
                serde_json::from_slice(&entry.value)
                    .map_err(|e| LedgerError(format!("entry {key} is unreadable: {e}")))?,
            ),
            Operation::Delete | Operation::Purge => None,
        };
        Ok(Slot {
            revision: entry.revision,
            entry: live,
        })
    }
}

/// A key's latest revision (0 if it never existed: the create-if-absent revision) and its
/// live entry (`None` if absent or deleted).
struct Slot {
    revision: u64,
    entry: Option<LedgerEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_sha256_hex() {
        let print = fingerprint(b"abc");
        assert_eq!(
            print,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(fingerprint(b"abd"), print);
    }

    #[test]
    fn entries_round_trip_with_a_flat_state_tag() {
        let entry = LedgerEntry {
            command_type: "RegisterOfficer".to_owned(),
            command_id: "cmd-1".to_owned(),
            correlation_id: "corr-1".to_owned(),
            fingerprint: fingerprint(b"{}"),
            state: LedgerState::Parked {
                code: ErrorCode::KafkaUnavailable,
                unresolved: None,
            },
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json: serde_json::Value =
            serde_json::from_slice(&entry.to_bytes().expect("serializes")).expect("valid JSON");
        assert_eq!(json["state"], "parked");
        assert_eq!(json["code"], "kafka-unavailable");
        let back: LedgerEntry = serde_json::from_value(json).expect("parses");
        assert_eq!(back, entry);
    }

    #[test]
    fn keys_are_the_event_ids_and_valid_kv_keys() {
        let key = ledger_key("RegisterOfficer", "client:key.with-odd_chars");
        assert_eq!(
            key,
            ids::event_id("RegisterOfficer", "client:key.with-odd_chars").to_string()
        );
        assert!(key.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }
}

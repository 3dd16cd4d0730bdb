//! The badge registry: one JetStream key/value entry per claimed badge, created with
//! create-if-absent semantics, so two instances racing for one badge cannot both win.
//!
//! An entry holds the commandId that claimed the badge. A claim is never released by the
//! service: a command whose event Kafka did not take is parked for re-drive, and its badge
//! stays reserved for it (the event may even be stored, if the produce timed out).

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind},
};
use bytes::Bytes;

use crate::{Error, Result};

/// The outcome of claiming a badge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The badge is now held by this command.
    Won,
    /// The same command already holds the badge (a retry of it).
    AlreadyOurs,
    /// Another command holds the badge.
    Taken {
        /// The commandId holding it.
        by: String,
    },
}

/// The registry could not be read or written; the command must not be accepted.
#[derive(Debug, thiserror::Error)]
#[error("badge registry unavailable: {0}")]
pub struct RegistryError(String);

/// Handle on the shared badge bucket.
#[derive(Clone)]
pub struct BadgeRegistry {
    store: kv::Store,
}

impl BadgeRegistry {
    /// Opens the bucket, creating it (file storage, one value per key) on first use.
    pub async fn open(client: async_nats::Client, bucket: &str) -> Result<Self> {
        let context = jetstream::new(client);
        let store = match context.get_key_value(bucket).await {
            Ok(store) => store,
            Err(_) => context
                .create_key_value(kv::Config {
                    bucket: bucket.to_owned(),
                    description: "Ackgate: badge number -> commandId that registered it".to_owned(),
                    history: 1,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::Bucket(bucket.to_owned(), e.to_string()))?,
        };
        Ok(Self { store })
    }

    /// Claims `badge` for `command_id`, atomically across all instances.
    pub async fn claim(&self, badge: &str, command_id: &str) -> Result<Claim, RegistryError> {
        let value = Bytes::copy_from_slice(command_id.as_bytes());
        match self.store.create(badge, value).await {
            Ok(_) => Ok(Claim::Won),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                self.holder(badge, command_id).await
            }
            Err(e) => Err(RegistryError(e.to_string())),
        }
    }

    async fn holder(&self, badge: &str, command_id: &str) -> Result<Claim, RegistryError> {
        let holder = self
            .store
            .get(badge)
            .await
            .map_err(|e| RegistryError(e.to_string()))?;
        match holder {
            Some(by) if by.as_ref() == command_id.as_bytes() => Ok(Claim::AlreadyOurs),
            Some(by) => Ok(Claim::Taken {
                by: String::from_utf8_lossy(&by).into_owned(),
            }),
            // Removed between our create and our read (by an operator): free again.
            None => Box::pin(self.claim(badge, command_id)).await,
        }
    }
}

//! The timeline in this process's memory, for the embedded store: rebuilt from the stream
//! on every start, like the read models beside it.

use std::{
    collections::{HashMap, HashSet},
    sync::{PoisonError, RwLock},
};

use contracts::timeline::{TimelineQuery, TimelineSearch};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{CommandEntry, StoredStep, TimelineStore, command_entries};
use crate::Result;

/// Steps held in memory.
#[derive(Default)]
pub struct MemoryTimeline {
    inner: RwLock<Steps>,
}

#[derive(Default)]
struct Steps {
    ids: HashSet<Uuid>,
    by_command: HashMap<String, Vec<StoredStep>>,
    /// The command keys of each correlationId.
    by_correlation: HashMap<String, HashSet<String>>,
    commands: HashMap<String, CommandEntry>,
}

impl MemoryTimeline {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Steps> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Steps> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Steps {
    fn steps_of(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<StoredStep> {
        keys.into_iter()
            .filter_map(|key| self.by_command.get(key.as_ref()))
            .flatten()
            .cloned()
            .collect()
    }
}

impl TimelineStore for MemoryTimeline {
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    async fn record(&self, steps: Vec<StoredStep>) -> Result<()> {
        let mut stored = self.write();
        let new: Vec<StoredStep> = steps
            .into_iter()
            .filter(|s| stored.ids.insert(s.step.id))
            .collect();
        for entry in command_entries(&new) {
            match stored.commands.get_mut(&entry.key) {
                Some(known) => known.absorb(entry),
                None => {
                    stored.commands.insert(entry.key.clone(), entry);
                }
            }
        }
        for step in new {
            let key = step.command_key().to_owned();
            let correlation = stored
                .by_correlation
                .entry(step.correlation_id.clone())
                .or_default();
            correlation.insert(key.clone());
            stored.by_command.entry(key).or_default().push(step);
        }
        Ok(())
    }

    async fn command_steps(&self, query: &TimelineQuery) -> Result<Vec<StoredStep>> {
        let stored = self.read();
        Ok(match query {
            TimelineQuery::CommandId(id) => stored.steps_of([id]),
            TimelineQuery::CorrelationId(id) => match stored.by_correlation.get(id) {
                Some(keys) => stored.steps_of(keys),
                None => Vec::new(),
            },
        })
    }

    async fn search(&self, search: &TimelineSearch) -> Result<Vec<Vec<StoredStep>>> {
        let stored = self.read();
        let mut matching: Vec<&CommandEntry> = stored
            .commands
            .values()
            .filter(|entry| entry.matches(search))
            .collect();
        matching.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.key.cmp(&b.key)));
        let limit = search.page_size().unwrap_or(TimelineSearch::DEFAULT_LIMIT);
        Ok(matching
            .into_iter()
            .take(limit as usize)
            .map(|entry| stored.steps_of([&entry.key]))
            .collect())
    }

    async fn expire(&self, before: OffsetDateTime) -> Result<u64> {
        let mut stored = self.write();
        let stored = &mut *stored;
        let mut expired = 0;
        for steps in stored.by_command.values_mut() {
            let kept = steps.len();
            steps.retain(|s| s.step.at >= before);
            expired += (kept - steps.len()) as u64;
        }
        stored.by_command.retain(|_, steps| !steps.is_empty());
        stored
            .commands
            .retain(|key, _| stored.by_command.contains_key(key));
        for keys in stored.by_correlation.values_mut() {
            keys.retain(|key| stored.by_command.contains_key(key));
        }
        stored.by_correlation.retain(|_, keys| !keys.is_empty());
        let live: HashSet<Uuid> = stored
            .by_command
            .values()
            .flatten()
            .map(|s| s.step.id)
            .collect();
        stored.ids = live;
        Ok(expired)
    }
}

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

#[cfg(test)]
mod tests {
    use contracts::{
        ErrorCode,
        timeline::{CommandIds, Component, Step, StepKind},
    };
    use time::{Duration, macros::datetime};

    use super::*;

    fn step(minute: i64, correlation_id: &str, command_id: &str, kind: StepKind) -> StoredStep {
        let at = datetime!(2026-12-02 10:00 UTC) + Duration::minutes(minute);
        StoredStep {
            correlation_id: correlation_id.to_owned(),
            command: CommandIds {
                command_id: Some(command_id.to_owned()),
                command_type: Some("RegisterOfficer".to_owned()),
                aggregate_id: Some(format!("B-{command_id}")),
            },
            component: Component::Edge,
            instance: "host:1".to_owned(),
            step: Step::once(&format!("{correlation_id}:{minute}"), at, kind),
        }
    }

    fn answered(status: u16, code: Option<ErrorCode>) -> StepKind {
        StepKind::Answered {
            status,
            code,
            replayed: false,
        }
    }

    async fn store() -> MemoryTimeline {
        let store = MemoryTimeline::default();
        let steps = vec![
            step(0, "c-1", "1", answered(202, None)),
            step(
                5,
                "c-2",
                "2",
                answered(422, Some(ErrorCode::SchemaViolation)),
            ),
            step(10, "c-3", "1", answered(202, None)),
        ];
        store.record(steps.clone()).await.expect("records");
        store.record(steps).await.expect("records again");
        store
    }

    #[tokio::test]
    async fn a_command_is_found_by_any_of_its_requests_and_stored_once() {
        let store = store().await;
        let by_retry = store
            .command_steps(&TimelineQuery::CorrelationId("c-3".to_owned()))
            .await
            .expect("reads");
        assert_eq!(
            by_retry.len(),
            2,
            "both requests of command 1, each step once"
        );
    }

    #[tokio::test]
    async fn searches_filter_by_failure_aggregate_and_time_newest_first() {
        let store = store().await;
        let keys = |groups: Vec<Vec<StoredStep>>| -> Vec<String> {
            groups
                .iter()
                .map(|g| g[0].command_key().to_owned())
                .collect()
        };
        let all = store
            .search(&TimelineSearch::default())
            .await
            .expect("searches");
        assert_eq!(keys(all), ["1", "2"]);
        let failed = TimelineSearch {
            failed: true,
            ..TimelineSearch::default()
        };
        assert_eq!(keys(store.search(&failed).await.expect("searches")), ["2"]);
        let early = TimelineSearch {
            to: Some(datetime!(2026-12-02 10:04 UTC)),
            aggregate_id: Some("B-1".to_owned()),
            ..TimelineSearch::default()
        };
        assert_eq!(keys(store.search(&early).await.expect("searches")), ["1"]);
    }

    #[tokio::test]
    async fn steps_past_the_retention_are_forgotten() {
        let store = store().await;
        let expired = store
            .expire(datetime!(2026-12-02 10:06 UTC))
            .await
            .expect("expires");
        assert_eq!(expired, 2);
        let left = store
            .search(&TimelineSearch::default())
            .await
            .expect("searches");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].len(), 1, "only the later request of command 1");
    }
}

//! The command timeline read model: the steps every component published for each command
//! ([`contracts::timeline`]), stored by correlationId and found by commandId, aggregate id
//! and time. Fed from the timeline's JetStream stream by the [`recorder`], kept for the
//! configured retention, answered by the query responders; both stores assemble what they
//! return with the same [`assemble`] functions.

pub mod assemble;
pub mod memory;
pub mod postgres;
pub mod recorder;
pub mod report;

use contracts::timeline::{
    CommandIds, CommandTimeline, Component, Step, TimelineNotice, TimelineQuery, TimelineSearch,
    TimelineSearchResults,
};
use time::OffsetDateTime;

pub use memory::MemoryTimeline;
pub use postgres::PostgresTimeline;

use crate::Result;

/// One step with the ids of the request it was taken for.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStep {
    /// The request's correlationId.
    pub correlation_id: String,
    /// The command, as far as the component knew it.
    pub command: CommandIds,
    /// Who took the step.
    pub component: Component,
    /// Which instance.
    pub instance: String,
    /// The step.
    pub step: Step,
}

impl StoredStep {
    /// The steps of a notice, each with the notice's ids.
    pub fn of_notice(notice: TimelineNotice) -> Vec<Self> {
        let TimelineNotice {
            correlation_id,
            command,
            component,
            instance,
            steps,
        } = notice;
        steps
            .into_iter()
            .map(|step| Self {
                correlation_id: correlation_id.clone(),
                command: command.clone(),
                component,
                instance: instance.clone(),
                step,
            })
            .collect()
    }

    /// The command this step belongs to: its commandId, or (refused before one was read)
    /// its request's correlationId.
    pub fn command_key(&self) -> &str {
        self.command
            .command_id
            .as_deref()
            .unwrap_or(&self.correlation_id)
    }
}

/// What a search looks at for one command: its ids and the span of its steps, merged from
/// every step stored for it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandEntry {
    /// [`StoredStep::command_key`].
    pub key: String,
    /// The correlationId of its earliest step.
    pub correlation_id: String,
    /// Its type, once a step named it.
    pub command_type: Option<String>,
    /// Its aggregate, once a step named it.
    pub aggregate_id: Option<String>,
    /// Its earliest step.
    pub first_at: OffsetDateTime,
    /// Its latest step.
    pub last_at: OffsetDateTime,
    /// Whether any step failed ([`contracts::timeline::StepKind::failure`]).
    pub failed: bool,
}

impl CommandEntry {
    /// The entry of a command seen only in `step`.
    pub fn of(step: &StoredStep) -> Self {
        Self {
            key: step.command_key().to_owned(),
            correlation_id: step.correlation_id.clone(),
            command_type: step.command.command_type.clone(),
            aggregate_id: step.command.aggregate_id.clone(),
            first_at: step.step.at,
            last_at: step.step.at,
            failed: step.step.kind.failure().is_some(),
        }
    }

    /// Merges what `other` (of the same command) knows: the earliest correlationId, the
    /// first known type and aggregate, the widest span, any failure.
    pub fn absorb(&mut self, other: Self) {
        if other.first_at < self.first_at {
            self.first_at = other.first_at;
            self.correlation_id = other.correlation_id;
        }
        self.last_at = self.last_at.max(other.last_at);
        self.command_type = self.command_type.take().or(other.command_type);
        self.aggregate_id = self.aggregate_id.take().or(other.aggregate_id);
        self.failed |= other.failed;
    }

    /// Whether the command matches every filter of `search`.
    pub fn matches(&self, search: &TimelineSearch) -> bool {
        let is = |wanted: &Option<String>, have: Option<&str>| {
            wanted.as_deref().is_none_or(|wanted| have == Some(wanted))
        };
        is(&search.command_id, Some(&self.key))
            && is(&search.aggregate_id, self.aggregate_id.as_deref())
            && is(&search.command_type, self.command_type.as_deref())
            && search.from.is_none_or(|from| self.last_at >= from)
            && search.to.is_none_or(|to| self.first_at < to)
            && (!search.failed || self.failed)
    }
}

/// One entry per command of `steps`, merged.
pub fn command_entries(steps: &[StoredStep]) -> Vec<CommandEntry> {
    let mut entries: std::collections::HashMap<&str, CommandEntry> = Default::default();
    for step in steps {
        let entry = CommandEntry::of(step);
        match entries.get_mut(step.command_key()) {
            Some(known) => known.absorb(entry),
            None => {
                entries.insert(step.command_key(), entry);
            }
        }
    }
    entries.into_values().collect()
}

/// Where timeline steps are kept.
pub trait TimelineStore: Send + Sync + 'static {
    /// Whether the store can serve right now; cheap and non-blocking.
    fn ready(&self) -> Result<(), String>;

    /// Stores steps; a step stored before (same id) is left as it is.
    fn record(&self, steps: Vec<StoredStep>) -> impl Future<Output = Result<()>> + Send;

    /// Every step of the command a request's correlationId (or its commandId) names: the
    /// steps of every request that carried the same commandId.
    fn command_steps(
        &self,
        query: &TimelineQuery,
    ) -> impl Future<Output = Result<Vec<StoredStep>>> + Send;

    /// The steps of the newest commands matching `search` (validated), one group per
    /// command, newest first.
    fn search(
        &self,
        search: &TimelineSearch,
    ) -> impl Future<Output = Result<Vec<Vec<StoredStep>>>> + Send;

    /// Forgets steps taken before `before`; returns how many.
    fn expire(&self, before: OffsetDateTime) -> impl Future<Output = Result<u64>> + Send;
}

/// A command's timeline, by any of its requests' correlationIds or its commandId.
pub async fn timeline(
    store: &impl TimelineStore,
    query: &TimelineQuery,
) -> Result<Option<CommandTimeline>> {
    let steps = store.command_steps(query).await?;
    let asked = match query {
        TimelineQuery::CorrelationId(id) => id.clone(),
        TimelineQuery::CommandId(_) => match steps.iter().min_by_key(|s| s.step.at) {
            Some(first) => first.correlation_id.clone(),
            None => return Ok(None),
        },
    };
    Ok(assemble::timeline(&asked, steps))
}

/// The commands matching `search` (validated), newest first.
pub async fn search(
    store: &impl TimelineStore,
    search: &TimelineSearch,
) -> Result<TimelineSearchResults> {
    let groups = store.search(search).await?;
    Ok(TimelineSearchResults {
        items: groups.into_iter().filter_map(assemble::summary).collect(),
    })
}

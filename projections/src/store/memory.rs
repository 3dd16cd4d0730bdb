//! The embedded store: read models in memory, rebuilt from the beginning of the topic on
//! every start. One lock guards models and offsets, so a batch is applied atomically with
//! the offsets that follow it. Notices (accepted, parked) live beside the models.

mod models;
mod search;

use std::sync::{PoisonError, RwLock};

use contracts::{
    EventPosition,
    deadletter::{ParkedEvent, RedriveRequest},
    observation::{ObservationPage, ObservationQuery},
    officer::{
        OfficerDetail, OfficerListQuery, OfficerPage, OfficerSearchQuery, OfficerSearchResults,
    },
    status::{
        CommandAcceptedNotice, CommandParkedNotice, CommandStatusQuery, CommandStatusView,
        ProjectionStats,
    },
};
use models::Models;

use super::{
    ApplyPolicy, Offsets, Outcome, ReadModelStore, Redriven, UnpublishedDeadLetter, views,
};
use crate::{
    Result,
    event::{Decoder, SourceRecord},
};

/// Read models held in this process.
pub struct MemoryStore {
    models: RwLock<Models>,
    notices: RwLock<std::collections::HashMap<String, CommandStatusView>>,
}

impl MemoryStore {
    /// Empty read models, reading events with `decoder`.
    pub fn new(decoder: Decoder) -> Self {
        Self {
            models: RwLock::new(Models::new(decoder)),
            notices: RwLock::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Models> {
        self.models.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Models> {
        self.models.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, view: CommandStatusView) {
        let mut notices = self.notices.write().unwrap_or_else(PoisonError::into_inner);
        if views::notice_replaces(notices.get(&view.correlation_id)) {
            notices.insert(view.correlation_id.clone(), view);
        }
    }

    fn noted(&self, query: &CommandStatusQuery) -> Option<CommandStatusView> {
        let notices = self.notices.read().unwrap_or_else(PoisonError::into_inner);
        match query {
            CommandStatusQuery::CorrelationId(id) => notices.get(id).cloned(),
            CommandStatusQuery::CommandId(id) => {
                notices.values().find(|v| &v.command_id == id).cloned()
            }
        }
    }
}

impl ReadModelStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    async fn offsets(&self, topic: &str) -> Result<Offsets> {
        Ok(self.read().offsets(topic))
    }

    async fn apply_batch(
        &self,
        records: &[SourceRecord],
        _policy: ApplyPolicy,
    ) -> Result<Vec<Outcome>> {
        let mut models = self.write();
        models.check_gaps(records)?;
        Ok(records.iter().map(|r| models.apply_record(r)).collect())
    }

    async fn advance(&self, topic: &str, partition: i32, next: i64) -> Result<()> {
        self.write().advance(topic, partition, next);
        Ok(())
    }

    async fn note_accepted(&self, notice: CommandAcceptedNotice) -> Result<()> {
        self.note(views::accepted_status(notice));
        Ok(())
    }

    async fn note_parked(&self, notice: CommandParkedNotice) -> Result<()> {
        self.note(views::dead_lettered_status(notice));
        Ok(())
    }

    async fn command_status(
        &self,
        query: &CommandStatusQuery,
    ) -> Result<Option<CommandStatusView>> {
        let projected = self.read().command_status(query);
        Ok(projected.or_else(|| self.noted(query)))
    }

    async fn officer(&self, badge: &str) -> Result<Option<OfficerDetail>> {
        Ok(self.read().officer(badge))
    }

    async fn list_officers(&self, query: &OfficerListQuery) -> Result<OfficerPage> {
        Ok(self.read().list_officers(query))
    }

    async fn search_officers(&self, query: &OfficerSearchQuery) -> Result<OfficerSearchResults> {
        Ok(self.read().search_officers(query))
    }

    async fn observations(&self, query: &ObservationQuery) -> Result<ObservationPage> {
        Ok(self.read().observations(query))
    }

    async fn stats(&self) -> Result<ProjectionStats> {
        let mut stats = self.read().stats();
        stats.store = self.kind().to_owned();
        Ok(stats)
    }

    async fn dead_letters(&self, key: Option<&str>) -> Result<Vec<ParkedEvent>> {
        Ok(self.read().dead_letters(key))
    }

    async fn redrive(&self, request: &RedriveRequest, _policy: ApplyPolicy) -> Result<Redriven> {
        Ok(self.write().redrive(request))
    }

    async fn discard(
        &self,
        source: &EventPosition,
        reason: &str,
    ) -> Result<Option<UnpublishedDeadLetter>> {
        Ok(self.write().discard(source, reason))
    }

    async fn unpublished_dead_letters(&self) -> Result<Vec<UnpublishedDeadLetter>> {
        Ok(self.read().unpublished())
    }

    async fn mark_published(&self, sources: &[EventPosition]) -> Result<()> {
        self.write().mark_published(sources);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

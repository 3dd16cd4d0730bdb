//! The read-model store interface and its two implementations: [`MemoryStore`] (embedded,
//! rebuilt from the topic on every start) and [`PostgresStore`] (durable, shared by every
//! instance, rebuildable without query downtime).
//!
//! Both record the next offset of each partition together with the read-model change, in
//! one atomic step, and refuse records below it: a crash at any point neither loses nor
//! double-applies an event, and the consumer resumes from the store, not from the group.

pub mod memory;
pub mod postgres;
pub(crate) mod views;

use std::{collections::HashMap, time::Duration};

use contracts::{
    EventPosition,
    deadletter::{ParkedEvent, RedriveReport, RedriveRequest},
    observation::{ObservationPage, ObservationQuery},
    officer::{
        OfficerDetail, OfficerListQuery, OfficerPage, OfficerSearchQuery, OfficerSearchResults,
    },
    status::{
        CommandAcceptedNotice, CommandParkedNotice, CommandStatusQuery, CommandStatusView,
        ProjectionStats,
    },
};

pub use memory::MemoryStore;
pub use postgres::PostgresStore;

use crate::{Result, event::SourceRecord};

/// What applying one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The officer was registered.
    Registered,
    /// A registered officer changed.
    Changed,
    /// An observation was recorded.
    Observed,
    /// The status of a command without a read model of its own was recorded.
    Recorded,
    /// The badge was already registered by another command; the officer is unchanged.
    Superseded,
    /// This eventId was applied before (a re-produced duplicate); nothing changed.
    Duplicate,
    /// The record is below the partition's stored offset: applied before this batch.
    AlreadyApplied,
    /// The record could not be applied and was parked.
    Parked,
}

/// How hard to try before parking an event the read model refuses.
#[derive(Debug, Clone, Copy)]
pub struct ApplyPolicy {
    /// Attempts per event, at least 1.
    pub attempts: u32,
    /// Pause before the second attempt, doubled for each further one.
    pub backoff: Duration,
}

/// A parked event whose dead-letter record has not been published yet (the store is the
/// outbox: publishing happens after the commit, and is retried until it succeeds).
#[derive(Debug, Clone, PartialEq)]
pub struct UnpublishedDeadLetter {
    /// The parked event.
    pub parked: ParkedEvent,
    /// The original record value.
    pub payload: Vec<u8>,
    /// The original record headers.
    pub headers: Vec<(String, String)>,
}

/// What a re-drive did: the operator's report, and each event it applied with its outcome
/// (for the commands' timelines).
#[derive(Debug, Clone, Default)]
pub struct Redriven {
    /// Counts and released keys.
    pub report: RedriveReport,
    /// The events applied, as they were parked.
    pub applied: Vec<(ParkedEvent, Outcome)>,
}

/// The next offset to apply, per partition of one topic.
pub type Offsets = HashMap<i32, i64>;

/// A read-model store. Writers are the consumer (one per partition at a time) and the
/// re-drive; readers are the query responders.
pub trait ReadModelStore: Send + Sync + 'static {
    /// `memory` or `postgres`, for stats and logs.
    fn kind(&self) -> &'static str;

    /// Whether the store can serve right now (for `/ready`); cheap and non-blocking.
    fn ready(&self) -> Result<(), String>;

    /// The next offset to apply for each partition of `topic` the store has seen.
    fn offsets(&self, topic: &str) -> impl Future<Output = Result<Offsets>> + Send;

    /// Applies records (in order, any partitions of one topic) and moves the offsets past
    /// them, all or nothing. Records of a parked key, and records that cannot be applied
    /// after `policy`'s attempts, are parked instead.
    fn apply_batch(
        &self,
        records: &[SourceRecord],
        policy: ApplyPolicy,
    ) -> impl Future<Output = Result<Vec<Outcome>>> + Send;

    /// Moves a partition's next offset forward to `next` (never back): accepts a gap that
    /// [`crate::Error::Gap`] reported and re-reading could not fill.
    fn advance(
        &self,
        topic: &str,
        partition: i32,
        next: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records a command as accepted before its event is projected.
    fn note_accepted(
        &self,
        notice: CommandAcceptedNotice,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records a command parked in the command dead-letter queue.
    fn note_parked(&self, notice: CommandParkedNotice) -> impl Future<Output = Result<()>> + Send;

    /// A command's status.
    fn command_status(
        &self,
        query: &CommandStatusQuery,
    ) -> impl Future<Output = Result<Option<CommandStatusView>>> + Send;

    /// An officer and the history of its badge.
    fn officer(&self, badge: &str) -> impl Future<Output = Result<Option<OfficerDetail>>> + Send;

    /// One page of officers (the query is validated).
    fn list_officers(
        &self,
        query: &OfficerListQuery,
    ) -> impl Future<Output = Result<OfficerPage>> + Send;

    /// Officers whose names match every term (the query is validated).
    fn search_officers(
        &self,
        query: &OfficerSearchQuery,
    ) -> impl Future<Output = Result<OfficerSearchResults>> + Send;

    /// One page of an officer's observations, newest first (the query is validated).
    fn observations(
        &self,
        query: &ObservationQuery,
    ) -> impl Future<Output = Result<ObservationPage>> + Send;

    /// Counters and breakdowns; `partitions` holds the projected side only.
    fn stats(&self) -> impl Future<Output = Result<ProjectionStats>> + Send;

    /// Parked events in source order, of one key or all.
    fn dead_letters(
        &self,
        key: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ParkedEvent>>> + Send;

    /// Re-applies the parked events of the requested keys in source order, stopping a key
    /// at the first event that fails again.
    fn redrive(
        &self,
        request: &RedriveRequest,
        policy: ApplyPolicy,
    ) -> impl Future<Output = Result<Redriven>> + Send;

    /// Gives up the parked event at `source` for `reason`: it leaves the parked events (later
    /// events of its key stay parked until re-driven) and its command shows `discarded`.
    /// Returns it, with its record, to be published; `None` when nothing is parked there.
    fn discard(
        &self,
        source: &EventPosition,
        reason: &str,
    ) -> impl Future<Output = Result<Option<UnpublishedDeadLetter>>> + Send;

    /// Parked events not yet published to the dead-letter topic.
    fn unpublished_dead_letters(
        &self,
    ) -> impl Future<Output = Result<Vec<UnpublishedDeadLetter>>> + Send;

    /// Marks dead-letter records as published.
    fn mark_published(&self, sources: &[EventPosition]) -> impl Future<Output = Result<()>> + Send;
}

/// The first partition whose records in `records` start past its stored next offset
/// (`next` gives the stored offset, `None` for a partition never seen): records in between
/// were never applied. Checked before a batch is applied, so the store refuses it whole
/// ([`crate::Error::Gap`]) and the consumer re-reads from the store's offset.
pub fn first_gap(records: &[SourceRecord], next: impl Fn(i32) -> Option<i64>) -> Result<()> {
    let mut checked = std::collections::HashSet::new();
    for record in records {
        let at = &record.position;
        if !checked.insert(at.partition) {
            continue;
        }
        if let Some(expected) = next(at.partition).filter(|expected| *expected < at.offset) {
            return Err(crate::Error::Gap {
                topic: at.topic.clone(),
                partition: at.partition,
                expected,
                found: at.offset,
            });
        }
    }
    Ok(())
}

/// `true` when `offsets` shows `position` applied.
pub fn has_applied(offsets: &Offsets, position: &EventPosition) -> bool {
    offsets
        .get(&position.partition)
        .is_some_and(|next| *next > position.offset)
}

/// One key's re-drive, the same in every store: its parked events are tried in source order;
/// the first that fails again keeps its real error and becomes the blocker, and every later
/// one stays parked behind it. A store applies each event its own way and reports here.
#[derive(Debug, Default)]
pub(crate) struct KeyRedrive {
    blocker: Option<EventPosition>,
}

impl KeyRedrive {
    /// The parked event every later one of the key waits behind, once one failed again.
    pub(crate) fn blocker(&self) -> Option<&EventPosition> {
        self.blocker.as_ref()
    }

    /// Records how re-applying `parked` went; `true` when it stays parked (with `parked`
    /// updated to its new failure).
    pub(crate) fn attempted(
        &mut self,
        parked: &mut ParkedEvent,
        outcome: Result<Outcome, crate::event::Poison>,
        report: &mut Redriven,
    ) -> bool {
        let poison = match outcome {
            Ok(applied) => {
                report.report.applied += 1;
                report.applied.push((parked.clone(), applied));
                return false;
            }
            Err(poison) => poison,
        };
        self.blocker.get_or_insert_with(|| parked.source.clone());
        parked.attempts +=
            u32::from(poison.code != contracts::deadletter::PoisonCode::BlockedByEarlierEvent);
        parked.code = poison.code;
        parked.detail = poison.detail;
        parked.blocked_by = poison.blocked_by;
        report.report.still_parked += 1;
        true
    }

    /// Ends the key's re-drive: the key is released unless an event failed again.
    pub(crate) fn finish(self, key: &str, report: &mut Redriven) -> Option<EventPosition> {
        if self.blocker.is_none() {
            report.report.released_keys.push(key.to_owned());
        }
        self.blocker
    }
}

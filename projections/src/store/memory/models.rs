//! The in-memory read models and the rules that change them.

use std::collections::{BTreeMap, HashMap, HashSet};

use contracts::{
    EventPosition,
    deadletter::{ParkedEvent, PoisonCode, RedriveRequest},
    observation::{ObservationCursor, ObservationPage, ObservationQuery, ObservationView},
    officer::{
        HistoryOutcome, OfficerDetail, OfficerHistoryEntry, OfficerListQuery, OfficerPage,
        OfficerSearchQuery, OfficerSearchResults, OfficerView, encode_cursor,
    },
    status::{
        CommandState, CommandStatusQuery, CommandStatusView, PartitionProgress, ProjectionStats,
    },
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::search::WordIndex;
use crate::{
    event::{self, DecodedEvent, Decoder, EventKind, EventMeta, Poison, SourceRecord},
    store::{self, KeyRedrive, Offsets, Outcome, Redriven, UnpublishedDeadLetter, views},
};

/// Where a record sits: topic, partition, offset (ordered as the topic is).
type Position = (String, i32, i64);

fn position_key(position: &EventPosition) -> Position {
    (position.topic.clone(), position.partition, position.offset)
}

struct Parked {
    event: ParkedEvent,
    record: SourceRecord,
    published: bool,
}

pub(super) struct Models {
    decoder: Decoder,
    commands: HashMap<String, CommandStatusView>,
    correlation_of_command: HashMap<String, String>,
    officers: BTreeMap<String, OfficerView>,
    history: HashMap<String, Vec<OfficerHistoryEntry>>,
    /// By badge, then newest last (iterate backwards for newest first).
    observations: BTreeMap<(String, ObservationCursor), ObservationView>,
    words: WordIndex,
    applied_events: HashSet<Uuid>,
    offsets: HashMap<(String, i32), i64>,
    parked: BTreeMap<Position, Parked>,
    /// The first parked event of each (topic, key): what later events of the key wait behind.
    first_parked: HashMap<(String, String), EventPosition>,
    duplicate_records: u64,
    superseded: u64,
    unreadable: u64,
    last_event_at: Option<OffsetDateTime>,
}

impl Models {
    pub(super) fn new(decoder: Decoder) -> Self {
        Self {
            decoder,
            commands: HashMap::new(),
            correlation_of_command: HashMap::new(),
            officers: BTreeMap::new(),
            history: HashMap::new(),
            observations: BTreeMap::new(),
            words: WordIndex::default(),
            applied_events: HashSet::new(),
            offsets: HashMap::new(),
            parked: BTreeMap::new(),
            first_parked: HashMap::new(),
            duplicate_records: 0,
            superseded: 0,
            unreadable: 0,
            last_event_at: None,
        }
    }

    pub(super) fn offsets(&self, topic: &str) -> Offsets {
        self.offsets
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, partition), next)| (*partition, *next))
            .collect()
    }

    /// Refuses a batch that starts past a partition's next offset (see [`store::first_gap`]).
    pub(super) fn check_gaps(&self, records: &[SourceRecord]) -> crate::Result<()> {
        let Some(topic) = records.first().map(|r| r.position.topic.clone()) else {
            return Ok(());
        };
        store::first_gap(records, |partition| {
            self.offsets.get(&(topic.clone(), partition)).copied()
        })
    }

    /// Moves a partition's next offset forward to `next`.
    pub(super) fn advance(&mut self, topic: &str, partition: i32, next: i64) {
        let entry = self
            .offsets
            .entry((topic.to_owned(), partition))
            .or_insert(next);
        *entry = (*entry).max(next);
    }

    /// Applies or parks one record, and moves its partition's offset past it.
    pub(super) fn apply_record(&mut self, record: &SourceRecord) -> Outcome {
        let at = &record.position;
        let partition = (at.topic.clone(), at.partition);
        if self
            .offsets
            .get(&partition)
            .is_some_and(|next| *next > at.offset)
        {
            return Outcome::AlreadyApplied;
        }
        self.offsets.insert(partition, at.offset + 1);
        let blocked_by = self.first_parked_of(&at.topic, &record.key);
        let applied = self
            .decoder
            .decide(record, blocked_by.as_ref())
            .and_then(|event| self.apply_event(&event, at));
        applied.unwrap_or_else(|poison| {
            self.park(record, poison);
            Outcome::Parked
        })
    }

    /// Applies a decoded event once (by eventId), or says why the read model refuses it.
    fn apply_event(&mut self, event: &DecodedEvent, at: &EventPosition) -> Result<Outcome, Poison> {
        let meta = &event.meta;
        if self.applied_events.contains(&meta.event_id) {
            self.duplicate_records += 1;
            return Ok(Outcome::Duplicate);
        }
        let outcome = match &event.kind {
            EventKind::Registration(registration) => self.register(meta, registration, at),
            EventKind::OfficerChange(change) => {
                let officer = self
                    .officers
                    .get_mut(&meta.aggregate_id)
                    .ok_or_else(|| Poison::refused(views::missing_officer(meta)))?;
                views::change_officer(officer, meta, change);
                self.record_officer_event(meta, at, HistoryOutcome::Changed);
                Outcome::Changed
            }
            EventKind::Observation(observation) => {
                let view = views::observation_of(meta, observation, at);
                let key = (meta.aggregate_id.clone(), ObservationCursor::of(&view));
                self.observations.insert(key, view);
                self.record_status(meta, at, CommandState::Projected);
                Outcome::Observed
            }
            EventKind::Recorded => {
                self.record_status(meta, at, CommandState::Projected);
                Outcome::Recorded
            }
        };
        self.applied_events.insert(meta.event_id);
        self.last_event_at = self.last_event_at.max(Some(meta.occurred_at));
        Ok(outcome)
    }

    fn register(
        &mut self,
        meta: &EventMeta,
        registration: &contracts::officer::RegisterOfficer,
        at: &EventPosition,
    ) -> Outcome {
        let badge = &meta.aggregate_id;
        let holder = self.officers.get(badge).map(|o| o.command_id.as_str());
        let outcome = views::registration_outcome(holder, meta);
        self.record_officer_event(meta, at, outcome);
        if outcome == HistoryOutcome::Superseded {
            self.superseded += 1;
            return Outcome::Superseded;
        }
        let officer = views::officer_of(meta, registration, at);
        self.words.insert(
            badge,
            &[&officer.officer.first_name, &officer.officer.last_name],
        );
        self.officers.insert(badge.clone(), officer);
        Outcome::Registered
    }

    /// The status and history entry of an officer event.
    fn record_officer_event(
        &mut self,
        meta: &EventMeta,
        at: &EventPosition,
        outcome: HistoryOutcome,
    ) {
        self.record_status(meta, at, views::state_of(outcome));
        self.history
            .entry(meta.aggregate_id.clone())
            .or_default()
            .push(views::history_entry(meta, at, outcome));
    }

    fn record_status(&mut self, meta: &EventMeta, at: &EventPosition, state: CommandState) {
        let status = views::projected_status(meta, at, state, OffsetDateTime::now_utc());
        self.put_status(status);
    }

    fn put_status(&mut self, status: CommandStatusView) {
        self.correlation_of_command
            .insert(status.command_id.clone(), status.correlation_id.clone());
        self.commands.insert(status.correlation_id.clone(), status);
    }

    fn first_parked_of(&self, topic: &str, key: &str) -> Option<EventPosition> {
        self.first_parked
            .get(&(topic.to_owned(), key.to_owned()))
            .cloned()
    }

    fn park(&mut self, record: &SourceRecord, poison: Poison) {
        if poison.code != PoisonCode::BlockedByEarlierEvent {
            self.unreadable += 1;
        }
        self.first_parked
            .entry((record.position.topic.clone(), record.key.clone()))
            .or_insert_with(|| record.position.clone());
        let event = event::parked(record, poison, 1);
        if let Some(status) = views::parked_status(record, &event) {
            self.put_status(status);
        }
        let parked = Parked {
            event,
            record: record.clone(),
            published: false,
        };
        self.parked.insert(position_key(&record.position), parked);
    }

    pub(super) fn command_status(&self, query: &CommandStatusQuery) -> Option<CommandStatusView> {
        let correlation_id = match query {
            CommandStatusQuery::CorrelationId(id) => id,
            CommandStatusQuery::CommandId(id) => self.correlation_of_command.get(id)?,
        };
        self.commands.get(correlation_id).cloned()
    }

    pub(super) fn officer(&self, badge: &str) -> Option<OfficerDetail> {
        let officer = self.officers.get(badge)?.clone();
        let history = self.history.get(badge).cloned().unwrap_or_default();
        Some(OfficerDetail { officer, history })
    }

    pub(super) fn list_officers(&self, query: &OfficerListQuery) -> OfficerPage {
        let limit = query.page_limit().unwrap_or_default() as usize;
        let after = query.after_badge().ok().flatten();
        let from = after
            .as_ref()
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut items: Vec<OfficerView> = self
            .officers
            .range::<String, _>((from, std::ops::Bound::Unbounded))
            .map(|(_, officer)| officer)
            .filter(|o| matches_filters(o, query))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = more
            .then(|| items.last().map(|o| encode_cursor(&o.officer.badge_number)))
            .flatten();
        OfficerPage { items, next_cursor }
    }

    pub(super) fn observations(&self, query: &ObservationQuery) -> ObservationPage {
        let limit = query.page_limit().unwrap_or_default() as usize;
        let badge = query.badge_number.clone();
        let lowest = ObservationCursor {
            observed_at_nanos: i128::MIN,
            event_id: uuid::Uuid::nil(),
        };
        let highest = ObservationCursor {
            observed_at_nanos: i128::MAX,
            event_id: uuid::Uuid::from_u128(u128::MAX),
        };
        let end = match query.after().ok().flatten() {
            Some(after) => std::ops::Bound::Excluded((badge.clone(), after)),
            None => std::ops::Bound::Included((badge.clone(), highest)),
        };
        let mut items: Vec<ObservationView> = self
            .observations
            .range((std::ops::Bound::Included((badge.clone(), lowest)), end))
            .rev()
            .take(limit + 1)
            .map(|(_, view)| view.clone())
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = more
            .then(|| items.last().map(|v| ObservationCursor::of(v).encode()))
            .flatten();
        ObservationPage { items, next_cursor }
    }

    pub(super) fn search_officers(&self, query: &OfficerSearchQuery) -> OfficerSearchResults {
        let limit = usize::try_from(
            query
                .limit
                .unwrap_or(contracts::officer::DEFAULT_PAGE_LIMIT),
        )
        .unwrap_or(usize::MAX);
        let items = self
            .words
            .search(&query.terms(), limit)
            .iter()
            .filter_map(|badge| self.officers.get(badge).cloned())
            .collect();
        OfficerSearchResults { items }
    }

    pub(super) fn stats(&self) -> ProjectionStats {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let mut stats = ProjectionStats {
            applied_events: count(self.applied_events.len()),
            duplicate_records: self.duplicate_records,
            superseded: self.superseded,
            unreadable: self.unreadable,
            commands: count(self.commands.len()),
            officers: count(self.officers.len()),
            parked_events: count(self.parked.len()),
            last_event_at: self.last_event_at,
            ..ProjectionStats::default()
        };
        for officer in self.officers.values() {
            *stats
                .officers_by_rank
                .entry(officer.officer.rank)
                .or_default() += 1;
            let day = officer.registered_at.date().to_string();
            *stats.registrations_by_day.entry(day).or_default() += 1;
        }
        let mut partitions: Vec<PartitionProgress> = self
            .offsets
            .iter()
            .map(|((topic, partition), next)| PartitionProgress {
                topic: topic.clone(),
                partition: *partition,
                published: 0,
                projected: *next,
                lag: 0,
            })
            .collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        stats.partitions = partitions;
        stats
    }

    pub(super) fn dead_letters(&self, key: Option<&str>) -> Vec<ParkedEvent> {
        self.parked
            .values()
            .filter(|p| key.is_none_or(|k| p.event.key == k))
            .map(|p| p.event.clone())
            .collect()
    }

    pub(super) fn redrive(&mut self, request: &RedriveRequest) -> Redriven {
        let mut keys: Vec<(String, String)> = self
            .parked
            .values()
            .filter(|p| request.all || request.keys.contains(&p.event.key))
            .map(|p| (p.event.source.topic.clone(), p.event.key.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        let mut report = Redriven::default();
        for (topic, key) in keys {
            self.redrive_key(&topic, &key, &mut report);
        }
        report
    }

    /// Applies the key's parked events in order until one fails again; that one stays
    /// parked with its real error, and the rest wait behind it.
    fn redrive_key(&mut self, topic: &str, key: &str, report: &mut Redriven) {
        let positions: Vec<Position> = self
            .parked
            .iter()
            .filter(|(_, p)| p.event.key == key && p.event.source.topic == topic)
            .map(|(at, _)| at.clone())
            .collect();
        let mut redrive = KeyRedrive::default();
        for at in positions {
            let Some(mut parked) = self.parked.remove(&at) else {
                continue;
            };
            let position = parked.record.position.clone();
            let outcome = self
                .decoder
                .decide(&parked.record, redrive.blocker())
                .and_then(|event| self.apply_event(&event, &position));
            if redrive.attempted(&mut parked.event, outcome, report) {
                self.parked.insert(at, parked);
            }
        }
        let first = (topic.to_owned(), key.to_owned());
        match redrive.finish(key, report) {
            Some(position) => {
                self.first_parked.insert(first, position);
            }
            None => {
                self.first_parked.remove(&first);
            }
        }
    }

    pub(super) fn discard(
        &mut self,
        source: &EventPosition,
        reason: &str,
    ) -> Option<UnpublishedDeadLetter> {
        let parked = self.parked.remove(&position_key(source))?;
        let first = (source.topic.clone(), parked.event.key.clone());
        if self.first_parked.get(&first) == Some(source) {
            // Later events of the key now wait behind the next parked one, until re-driven.
            let next = self
                .parked
                .values()
                .find(|p| p.event.key == first.1 && p.event.source.topic == first.0)
                .map(|p| p.event.source.clone());
            match next {
                Some(next) => self.first_parked.insert(first, next),
                None => self.first_parked.remove(&first),
            };
        }
        let status = parked
            .event
            .correlation_id
            .as_ref()
            .and_then(|id| self.commands.get(id).cloned());
        if let Some(status) = status {
            self.put_status(views::discarded_status(status, reason));
        }
        Some(UnpublishedDeadLetter {
            parked: parked.event,
            payload: parked.record.payload,
            headers: parked.record.headers,
        })
    }

    pub(super) fn unpublished(&self) -> Vec<UnpublishedDeadLetter> {
        self.parked
            .values()
            .filter(|p| !p.published)
            .map(|p| UnpublishedDeadLetter {
                parked: p.event.clone(),
                payload: p.record.payload.clone(),
                headers: p.record.headers.clone(),
            })
            .collect()
    }

    pub(super) fn mark_published(&mut self, sources: &[EventPosition]) {
        for source in sources {
            if let Some(parked) = self.parked.get_mut(&position_key(source)) {
                parked.published = true;
            }
        }
    }
}

fn matches_filters(officer: &OfficerView, query: &OfficerListQuery) -> bool {
    let o = &officer.officer;
    query.rank.is_none_or(|r| o.rank == r)
        && query.hired_from.is_none_or(|d| o.hire_date >= d)
        && query.hired_to.is_none_or(|d| o.hire_date <= d)
}

#[cfg(test)]
impl Models {
    /// Stands in for a fix: the parked record at `offset` of partition 0 now reads as `payload`.
    pub(super) fn replace_payload(&mut self, offset: i64, payload: Vec<u8>) {
        for parked in self.parked.values_mut() {
            if parked.record.position.offset == offset && parked.record.position.partition == 0 {
                parked.record.payload = payload.clone();
            }
        }
    }
}

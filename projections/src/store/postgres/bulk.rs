//! The fast path of a batch: its registrations, observations and statuses applied with a
//! handful of set-based statements (two lookups, then one multi-row insert per table,
//! pipelined), instead of statements per event. The rules are the same as for one event
//! ([`views`]): an eventId applied before is a duplicate; the first registration of a badge
//! wins, later ones are superseded. Changes to officers are not batched (see
//! [`super::apply`]). A refusal by the read model fails the statement, and so the
//! transaction; the caller then applies the batch again event by event.

use std::collections::{HashMap, HashSet};

use contracts::{
    EventPosition,
    observation::{ObservationCursor, RecordObservation},
    officer::{HistoryOutcome, RegisterOfficer},
    status::CommandState,
};
use time::OffsetDateTime;
use tokio_postgres::{
    Transaction,
    types::{ToSql, Type},
};
use uuid::Uuid;

use super::apply::refused_or_failed;
use crate::{
    Result,
    event::{DecodedEvent, EventKind, EventMeta},
    store::{Outcome, views},
};

/// Rows to insert, one vector per column.
#[derive(Default)]
struct Rows {
    event_ids: Vec<Uuid>,
    command_keys: HashMap<String, usize>,
    commands: (Vec<String>, Vec<String>, Vec<serde_json::Value>),
    history: (Vec<String>, Vec<serde_json::Value>),
    officers: OfficerRows,
    observations: ObservationRows,
}

#[derive(Default)]
struct OfficerRows {
    badges: Vec<String>,
    ranks: Vec<&'static str>,
    hired: Vec<time::Date>,
    registered: Vec<OffsetDateTime>,
    first_names: Vec<String>,
    last_names: Vec<String>,
    command_ids: Vec<String>,
    views: Vec<serde_json::Value>,
}

#[derive(Default)]
struct ObservationRows {
    badges: Vec<String>,
    observed_ns: Vec<i64>,
    event_ids: Vec<Uuid>,
    views: Vec<serde_json::Value>,
}

/// Applies `events` (in order; none of them an officer change) and returns what each did.
pub(super) async fn apply_events(
    tx: &Transaction<'_>,
    events: &[(DecodedEvent, EventPosition)],
) -> Result<Vec<Outcome>> {
    let (mut seen, mut holders) = lookups(tx, events).await.map_err(refused_or_failed)?;
    let mut rows = Rows::default();
    let now = OffsetDateTime::now_utc();
    let mut outcomes = Vec::with_capacity(events.len());
    for (event, at) in events {
        let meta = &event.meta;
        if !seen.insert(meta.event_id) {
            outcomes.push(Outcome::Duplicate);
            continue;
        }
        rows.event_ids.push(meta.event_id);
        let outcome = match &event.kind {
            EventKind::Registration(registration) => {
                let holder = holders
                    .entry(meta.aggregate_id.clone())
                    .or_insert_with(|| meta.command_id.clone());
                let outcome = views::registration_outcome(Some(holder), meta);
                rows.add_registration(meta, registration, at, outcome, now)?;
                match outcome {
                    HistoryOutcome::Superseded => Outcome::Superseded,
                    _ => Outcome::Registered,
                }
            }
            EventKind::Observation(observation) => {
                rows.observations.add(meta, observation, at)?;
                rows.add_status(meta, at, CommandState::Projected, now)?;
                Outcome::Observed
            }
            EventKind::Recorded | EventKind::OfficerChange(_) => {
                rows.add_status(meta, at, CommandState::Projected, now)?;
                Outcome::Recorded
            }
        };
        outcomes.push(outcome);
    }
    rows.insert(tx).await.map_err(refused_or_failed)?;
    Ok(outcomes)
}

/// The batch's eventIds applied before, and the holders of its badges.
async fn lookups(
    tx: &Transaction<'_>,
    events: &[(DecodedEvent, EventPosition)],
) -> Result<(HashSet<Uuid>, HashMap<String, String>), tokio_postgres::Error> {
    let ids: Vec<Uuid> = events.iter().map(|(e, _)| e.meta.event_id).collect();
    let badges: Vec<&str> = events
        .iter()
        .filter(|(e, _)| matches!(e.kind, EventKind::Registration(_)))
        .map(|(e, _)| e.meta.aggregate_id.as_str())
        .collect();
    let id_params: [(&(dyn ToSql + Sync), Type); 1] = [(&ids, Type::UUID_ARRAY)];
    let badge_params: [(&(dyn ToSql + Sync), Type); 1] = [(&badges, Type::TEXT_ARRAY)];
    let (applied, holders) = tokio::try_join!(
        tx.query_typed(
            "SELECT event_id FROM applied_events WHERE event_id = ANY($1)",
            &id_params
        ),
        tx.query_typed(
            "SELECT badge_number, command_id FROM officers WHERE badge_number = ANY($1)",
            &badge_params,
        ),
    )?;
    let seen = applied.iter().map(|r| r.get(0)).collect();
    let holders = holders.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok((seen, holders))
}

impl Rows {
    fn add_registration(
        &mut self,
        meta: &EventMeta,
        registration: &RegisterOfficer,
        at: &EventPosition,
        outcome: HistoryOutcome,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.add_status(meta, at, views::state_of(outcome), now)?;
        self.history.0.push(meta.aggregate_id.clone());
        let entry = views::history_entry(meta, at, outcome);
        self.history.1.push(views::json(&entry)?);
        if outcome == HistoryOutcome::Registered {
            self.officers.add(meta, registration, at)?;
        }
        Ok(())
    }

    /// One row per correlationId (a reused one keeps the latest command, as one by one).
    fn add_status(
        &mut self,
        meta: &EventMeta,
        at: &EventPosition,
        state: CommandState,
        now: OffsetDateTime,
    ) -> Result<()> {
        let view = views::json(&views::projected_status(meta, at, state, now))?;
        let (correlations, command_ids, views) = &mut self.commands;
        match self.command_keys.get(&meta.correlation_id) {
            Some(&i) => {
                command_ids[i].clone_from(&meta.command_id);
                views[i] = view;
            }
            None => {
                self.command_keys
                    .insert(meta.correlation_id.clone(), correlations.len());
                correlations.push(meta.correlation_id.clone());
                command_ids.push(meta.command_id.clone());
                views.push(view);
            }
        }
        Ok(())
    }

    async fn insert(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        let (correlations, command_ids, views) = &self.commands;
        let applied: [(&(dyn ToSql + Sync), Type); 1] = [(&self.event_ids, Type::UUID_ARRAY)];
        let commands: [(&(dyn ToSql + Sync), Type); 3] = [
            (correlations, Type::TEXT_ARRAY),
            (command_ids, Type::TEXT_ARRAY),
            (views, Type::JSONB_ARRAY),
        ];
        let history: [(&(dyn ToSql + Sync), Type); 2] = [
            (&self.history.0, Type::TEXT_ARRAY),
            (&self.history.1, Type::JSONB_ARRAY),
        ];
        tokio::try_join!(
            tx.query_typed(
                "INSERT INTO applied_events (event_id) SELECT unnest($1::uuid[])",
                &applied
            ),
            tx.query_typed(
                "INSERT INTO commands (correlation_id, command_id, view)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
                 ON CONFLICT (correlation_id)
                 DO UPDATE SET command_id = EXCLUDED.command_id, view = EXCLUDED.view",
                &commands,
            ),
            tx.query_typed(
                "INSERT INTO officer_history (badge_number, entry)
                 SELECT b, e FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS h (b, e, n)
                 ORDER BY n",
                &history,
            ),
            self.officers.insert(tx),
            self.observations.insert(tx),
        )?;
        Ok(())
    }
}

impl OfficerRows {
    fn add(
        &mut self,
        meta: &EventMeta,
        registration: &RegisterOfficer,
        at: &EventPosition,
    ) -> Result<()> {
        let officer = views::officer_of(meta, registration, at);
        let o = &officer.officer;
        self.badges.push(o.badge_number.clone());
        self.ranks.push(o.rank.as_str());
        self.hired.push(o.hire_date);
        self.registered.push(officer.registered_at);
        self.first_names.push(o.first_name.clone());
        self.last_names.push(o.last_name.clone());
        self.command_ids.push(meta.command_id.clone());
        self.views.push(views::json(&officer)?);
        Ok(())
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let params: [(&(dyn ToSql + Sync), Type); 8] = [
            (&self.badges, Type::TEXT_ARRAY),
            (&self.ranks, Type::TEXT_ARRAY),
            (&self.hired, Type::DATE_ARRAY),
            (&self.registered, Type::TIMESTAMPTZ_ARRAY),
            (&self.first_names, Type::TEXT_ARRAY),
            (&self.last_names, Type::TEXT_ARRAY),
            (&self.command_ids, Type::TEXT_ARRAY),
            (&self.views, Type::JSONB_ARRAY),
        ];
        tx.query_typed(
            "INSERT INTO officers (badge_number, rank, hire_date, registered_at, names,
                                   command_id, view)
             SELECT b, r, d, t, to_tsvector('simple', f || ' ' || l), c, v
             FROM unnest($1::text[], $2::text[], $3::date[], $4::timestamptz[], $5::text[],
                         $6::text[], $7::text[], $8::jsonb[]) AS o (b, r, d, t, f, l, c, v)",
            &params,
        )
        .await
    }
}

impl ObservationRows {
    fn add(
        &mut self,
        meta: &EventMeta,
        observation: &RecordObservation,
        at: &EventPosition,
    ) -> Result<()> {
        let view = views::observation_of(meta, observation, at);
        self.badges.push(meta.aggregate_id.clone());
        self.observed_ns
            .push(observed_ns(&ObservationCursor::of(&view)));
        self.event_ids.push(meta.event_id);
        self.views.push(views::json(&view)?);
        Ok(())
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let params: [(&(dyn ToSql + Sync), Type); 4] = [
            (&self.badges, Type::TEXT_ARRAY),
            (&self.observed_ns, Type::INT8_ARRAY),
            (&self.event_ids, Type::UUID_ARRAY),
            (&self.views, Type::JSONB_ARRAY),
        ];
        tx.query_typed(
            "INSERT INTO observations (badge_number, observed_ns, event_id, view)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::jsonb[])",
            &params,
        )
        .await
    }
}

/// `observedAt` as stored: nanoseconds since the epoch, which fits a `bigint` until 2262
/// (the schema bounds dates well inside that).
pub(super) fn observed_ns(cursor: &ObservationCursor) -> i64 {
    i64::try_from(cursor.observed_at_nanos).unwrap_or(if cursor.observed_at_nanos < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

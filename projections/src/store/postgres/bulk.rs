//! The fast path of a batch: every decoded event of the batch applied with a handful of
//! set-based statements (two lookups, then one multi-row insert per table, pipelined),
//! instead of statements per event. The rules are the same as for one event: an eventId
//! applied before is a duplicate; the first registration of a badge wins, later ones are
//! superseded. A refusal by the read model fails the statement, and so the transaction;
//! the caller then applies the batch again event by event.

use std::collections::{HashMap, HashSet};

use contracts::{
    EventPosition,
    officer::{HistoryOutcome, RegisterOfficerRequested},
};
use time::OffsetDateTime;
use tokio_postgres::{
    Transaction,
    types::{ToSql, Type},
};
use uuid::Uuid;

use crate::store::{Outcome, views};

/// Rows to insert, one vector per column.
#[derive(Default)]
struct Rows {
    event_ids: Vec<Uuid>,
    command_keys: HashMap<String, usize>,
    commands: (Vec<String>, Vec<String>, Vec<serde_json::Value>),
    history: (Vec<String>, Vec<serde_json::Value>),
    officers: OfficerRows,
}

#[derive(Default)]
struct OfficerRows {
    badges: Vec<String>,
    ranks: Vec<&'static str>,
    hired: Vec<time::Date>,
    registered: Vec<OffsetDateTime>,
    first_names: Vec<String>,
    last_names: Vec<String>,
    views: Vec<serde_json::Value>,
}

/// Applies `events` (in order) and returns what each did.
pub(super) async fn apply_events(
    tx: &Transaction<'_>,
    events: &[(RegisterOfficerRequested, EventPosition)],
) -> Result<Vec<Outcome>, tokio_postgres::Error> {
    let (mut seen, mut holders) = lookups(tx, events).await?;
    let mut rows = Rows::default();
    let now = OffsetDateTime::now_utc();
    let outcomes = events
        .iter()
        .map(|(event, at)| {
            if !seen.insert(event.event_id) {
                return Outcome::Duplicate;
            }
            let holder = holders
                .entry(event.aggregate_id.clone())
                .or_insert_with(|| event.command_id.clone());
            let outcome = if *holder == event.command_id {
                HistoryOutcome::Registered
            } else {
                HistoryOutcome::Superseded
            };
            rows.add(event, at, outcome, now);
            match outcome {
                HistoryOutcome::Registered => Outcome::Registered,
                HistoryOutcome::Superseded => Outcome::Superseded,
            }
        })
        .collect();
    rows.insert(tx).await?;
    Ok(outcomes)
}

/// The batch's eventIds applied before, and the holders of its badges.
async fn lookups(
    tx: &Transaction<'_>,
    events: &[(RegisterOfficerRequested, EventPosition)],
) -> Result<(HashSet<Uuid>, HashMap<String, String>), tokio_postgres::Error> {
    let ids: Vec<Uuid> = events.iter().map(|(e, _)| e.event_id).collect();
    let badges: Vec<&str> = events
        .iter()
        .map(|(e, _)| e.aggregate_id.as_str())
        .collect();
    let id_params: [(&(dyn ToSql + Sync), Type); 1] = [(&ids, Type::UUID_ARRAY)];
    let badge_params: [(&(dyn ToSql + Sync), Type); 1] = [(&badges, Type::TEXT_ARRAY)];
    let (applied, holders) = tokio::try_join!(
        tx.query_typed(
            "SELECT event_id FROM applied_events WHERE event_id = ANY($1)",
            &id_params
        ),
        tx.query_typed(
            "SELECT badge_number, view->>'commandId' FROM officers WHERE badge_number = ANY($1)",
            &badge_params,
        ),
    )?;
    let seen = applied.iter().map(|r| r.get(0)).collect();
    let holders = holders.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok((seen, holders))
}

impl Rows {
    fn add(
        &mut self,
        event: &RegisterOfficerRequested,
        at: &EventPosition,
        outcome: HistoryOutcome,
        now: OffsetDateTime,
    ) {
        self.event_ids.push(event.event_id);
        let status = views::projected_status(event, at, outcome, now);
        self.add_command(
            &event.correlation_id,
            &event.command_id,
            views::json(&status),
        );
        self.history.0.push(event.aggregate_id.clone());
        self.history
            .1
            .push(views::json(&views::history_entry(event, at, outcome)));
        if outcome == HistoryOutcome::Registered {
            self.officers.add(event, at);
        }
    }

    /// One row per correlationId (a reused one keeps the latest command, as one by one).
    fn add_command(&mut self, correlation_id: &str, command_id: &str, view: serde_json::Value) {
        let (correlations, command_ids, views) = &mut self.commands;
        match self.command_keys.get(correlation_id) {
            Some(&i) => {
                command_ids[i] = command_id.to_owned();
                views[i] = view;
            }
            None => {
                self.command_keys
                    .insert(correlation_id.to_owned(), correlations.len());
                correlations.push(correlation_id.to_owned());
                command_ids.push(command_id.to_owned());
                views.push(view);
            }
        }
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
        )?;
        Ok(())
    }
}

impl OfficerRows {
    fn add(&mut self, event: &RegisterOfficerRequested, at: &EventPosition) {
        let officer = views::officer_of(event, at);
        let o = &officer.officer;
        self.badges.push(o.badge_number.clone());
        self.ranks.push(o.rank.as_str());
        self.hired.push(o.hire_date);
        self.registered.push(officer.registered_at);
        self.first_names.push(o.first_name.clone());
        self.last_names.push(o.last_name.clone());
        self.views.push(views::json(&officer));
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let params: [(&(dyn ToSql + Sync), Type); 7] = [
            (&self.badges, Type::TEXT_ARRAY),
            (&self.ranks, Type::TEXT_ARRAY),
            (&self.hired, Type::DATE_ARRAY),
            (&self.registered, Type::TIMESTAMPTZ_ARRAY),
            (&self.first_names, Type::TEXT_ARRAY),
            (&self.last_names, Type::TEXT_ARRAY),
            (&self.views, Type::JSONB_ARRAY),
        ];
        tx.query_typed(
            "INSERT INTO officers (badge_number, rank, hire_date, registered_at, names, view)
             SELECT b, r, d, t, to_tsvector('simple', f || ' ' || l), v
             FROM unnest($1::text[], $2::text[], $3::date[], $4::timestamptz[], $5::text[],
                         $6::text[], $7::jsonb[]) AS o (b, r, d, t, f, l, v)",
            &params,
        )
        .await
    }
}

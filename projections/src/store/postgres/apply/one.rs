//! One event applied on its own, inside the caller's savepoint: a registration (the first
//! of a badge wins), a change to an officer (read, changed with the rule both stores share,
//! written back), an observation, or a status alone.

use contracts::{
    EventPosition,
    observation::{ObservationCursor, RecordObservation},
    officer::{HistoryOutcome, OfficerChange, OfficerView, RegisterOfficer},
    status::{CommandState, CommandStatusView},
};
use time::OffsetDateTime;
use tokio_postgres::{
    Transaction,
    types::{ToSql, Type},
};

use super::NotApplied;
use crate::{
    event::{DecodedEvent, EventKind, EventMeta},
    store::{Outcome, postgres::bulk, views},
};

/// Applies one event, once (by eventId).
pub(super) async fn apply_event(
    tx: &Transaction<'_>,
    event: &DecodedEvent,
    at: &EventPosition,
) -> Result<Outcome, NotApplied> {
    let meta = &event.meta;
    let dedupe = [(&meta.event_id as &(dyn ToSql + Sync), Type::UUID)];
    let fresh = tx
        .query_typed(
            "INSERT INTO applied_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1",
            &dedupe,
        )
        .await?;
    if fresh.is_empty() {
        return Ok(Outcome::Duplicate);
    }
    match &event.kind {
        EventKind::Registration(registration) => register(tx, meta, registration, at).await,
        EventKind::OfficerChange(change) => change_officer(tx, meta, change, at).await,
        EventKind::Observation(observation) => {
            tokio::try_join!(
                insert_observation(tx, meta, observation, at),
                upsert_status(tx, meta, at, CommandState::Projected),
            )?;
            Ok(Outcome::Observed)
        }
        EventKind::Recorded => {
            upsert_status(tx, meta, at, CommandState::Projected).await?;
            Ok(Outcome::Recorded)
        }
    }
}

async fn register(
    tx: &Transaction<'_>,
    meta: &EventMeta,
    registration: &RegisterOfficer,
    at: &EventPosition,
) -> Result<Outcome, NotApplied> {
    let badge = [(&meta.aggregate_id as &(dyn ToSql + Sync), Type::TEXT)];
    let holder = tx
        .query_typed(
            "SELECT command_id FROM officers WHERE badge_number = $1",
            &badge,
        )
        .await?;
    let holder: Option<String> = holder.first().map(|row| row.get(0));
    let outcome = views::registration_outcome(holder.as_deref(), meta);
    let (status, history) = (
        upsert_status(tx, meta, at, views::state_of(outcome)),
        insert_history(tx, meta, at, outcome),
    );
    if outcome == HistoryOutcome::Superseded {
        tokio::try_join!(status, history)?;
        return Ok(Outcome::Superseded);
    }
    let officer = views::officer_of(meta, registration, at);
    tokio::try_join!(status, history, insert_officer(tx, &officer))?;
    Ok(Outcome::Registered)
}

/// Applies a change to the officer as the read model holds it, with the rule both stores
/// share ([`views::change_officer`]).
async fn change_officer(
    tx: &Transaction<'_>,
    meta: &EventMeta,
    change: &OfficerChange,
    at: &EventPosition,
) -> Result<Outcome, NotApplied> {
    let badge = [(&meta.aggregate_id as &(dyn ToSql + Sync), Type::TEXT)];
    let row = tx
        .query_typed(
            "SELECT view FROM officers WHERE badge_number = $1 FOR UPDATE",
            &badge,
        )
        .await?;
    let Some(row) = row.first() else {
        return Err(NotApplied::Refused(views::missing_officer(meta)));
    };
    let mut officer: OfficerView = serde_json::from_value(row.get(0))
        .map_err(|e| NotApplied::Refused(format!("stored officer is unreadable: {e}")))?;
    views::change_officer(&mut officer, meta, change);
    let view = views::json(&officer)?;
    let rank = officer.officer.rank.as_str();
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&meta.aggregate_id, Type::TEXT),
        (&rank, Type::TEXT),
        (&view, Type::JSONB),
    ];
    let update = async {
        let sql = "UPDATE officers SET rank = $2, view = $3 WHERE badge_number = $1";
        Ok::<_, NotApplied>(tx.query_typed(sql, &params).await?)
    };
    tokio::try_join!(
        update,
        upsert_status(tx, meta, at, CommandState::Projected),
        insert_history(tx, meta, at, HistoryOutcome::Changed),
    )?;
    Ok(Outcome::Changed)
}

async fn upsert_status(
    tx: &Transaction<'_>,
    meta: &EventMeta,
    at: &EventPosition,
    state: CommandState,
) -> Result<Vec<tokio_postgres::Row>, NotApplied> {
    let now = OffsetDateTime::now_utc();
    let status = views::projected_status(meta, at, state, now);
    Ok(put_status(tx, &status).await?)
}

/// Stores a command's status, replacing the one it had.
pub(in crate::store::postgres) async fn put_status(
    tx: &Transaction<'_>,
    status: &CommandStatusView,
) -> crate::Result<Vec<tokio_postgres::Row>> {
    let view = views::json(status)?;
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&status.correlation_id, Type::TEXT),
        (&status.command_id, Type::TEXT),
        (&view, Type::JSONB),
    ];
    Ok(tx
        .query_typed(
            "INSERT INTO commands (correlation_id, command_id, view) VALUES ($1, $2, $3)
             ON CONFLICT (correlation_id) DO UPDATE SET command_id = $2, view = $3",
            &params,
        )
        .await?)
}

async fn insert_history(
    tx: &Transaction<'_>,
    meta: &EventMeta,
    at: &EventPosition,
    outcome: HistoryOutcome,
) -> Result<Vec<tokio_postgres::Row>, NotApplied> {
    let entry = views::json(&views::history_entry(meta, at, outcome))?;
    let params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&meta.aggregate_id, Type::TEXT), (&entry, Type::JSONB)];
    Ok(tx
        .query_typed(
            "INSERT INTO officer_history (badge_number, entry) VALUES ($1, $2)",
            &params,
        )
        .await?)
}

async fn insert_officer(
    tx: &Transaction<'_>,
    officer: &OfficerView,
) -> Result<Vec<tokio_postgres::Row>, NotApplied> {
    let o = &officer.officer;
    let view = views::json(officer)?;
    let rank = o.rank.as_str();
    let params: [(&(dyn ToSql + Sync), Type); 8] = [
        (&o.badge_number, Type::TEXT),
        (&rank, Type::TEXT),
        (&o.hire_date, Type::DATE),
        (&officer.registered_at, Type::TIMESTAMPTZ),
        (&o.first_name, Type::TEXT),
        (&o.last_name, Type::TEXT),
        (&officer.command_id, Type::TEXT),
        (&view, Type::JSONB),
    ];
    Ok(tx
        .query_typed(
            "INSERT INTO officers (badge_number, rank, hire_date, registered_at, names,
                                   command_id, view)
             VALUES ($1, $2, $3, $4, to_tsvector('simple', $5 || ' ' || $6), $7, $8)",
            &params,
        )
        .await?)
}

async fn insert_observation(
    tx: &Transaction<'_>,
    meta: &EventMeta,
    observation: &RecordObservation,
    at: &EventPosition,
) -> Result<Vec<tokio_postgres::Row>, NotApplied> {
    let view = views::observation_of(meta, observation, at);
    let observed = bulk::observed_ns(&ObservationCursor::of(&view));
    let json = views::json(&view)?;
    let params: [(&(dyn ToSql + Sync), Type); 4] = [
        (&meta.aggregate_id, Type::TEXT),
        (&observed, Type::INT8),
        (&meta.event_id, Type::UUID),
        (&json, Type::JSONB),
    ];
    Ok(tx
        .query_typed(
            "INSERT INTO observations (badge_number, observed_ns, event_id, view)
             VALUES ($1, $2, $3, $4)",
            &params,
        )
        .await?)
}

//! Queries against one generation's schema, and the notices and published dead letters
//! that outlive generations.

use contracts::{
    EventPosition,
    deadletter::{ParkedEvent, RedriveRequest},
    observation::{ObservationCursor, ObservationPage, ObservationQuery, ObservationView},
    officer::{
        OfficerDetail, OfficerListQuery, OfficerPage, OfficerSearchQuery, OfficerSearchResults,
        OfficerView, encode_cursor,
    },
    status::{
        CommandState, CommandStatusQuery, CommandStatusView, PartitionProgress, ProjectionStats,
    },
};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio_postgres::{Client, GenericClient, Row, error::SqlState};

use super::{bulk::observed_ns, schema::CONTROL};
use crate::{
    Error, Result,
    store::{Offsets, UnpublishedDeadLetter, views},
};

/// The error of a query that raced a rebuild dropping the generation it read.
pub(super) fn is_dropped_generation(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME
    )
}

fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Store(format!("unreadable stored view: {e}")))
}

fn views_of<T: DeserializeOwned>(rows: &[Row]) -> Result<Vec<T>> {
    rows.iter().map(|r| from_json(r.get(0))).collect()
}

pub(super) async fn offsets(
    client: &impl GenericClient,
    schema: &str,
    topic: &str,
) -> Result<Offsets> {
    let rows = client
        .query(
            &format!(
                "SELECT partition, next_offset FROM {schema}.partition_offsets WHERE topic = $1"
            ),
            &[&topic],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Stores a status learnt from a notice, unless one that must not be replaced is there
/// (see [`views::notice_replaces`]: only a `dead-lettered` one may be).
pub(super) async fn note(client: &Client, view: &CommandStatusView) -> Result<()> {
    let json = views::json(view)?;
    let replaceable = view.status == CommandState::DeadLettered;
    client
        .execute(
            &format!(
                "INSERT INTO {CONTROL}.command_notices (correlation_id, command_id, view, replaceable)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (correlation_id)
                 DO UPDATE SET command_id = $2, view = $3, replaceable = $4
                 WHERE command_notices.replaceable"
            ),
            &[&view.correlation_id, &view.command_id, &json, &replaceable],
        )
        .await?;
    Ok(())
}

fn status_filter(query: &CommandStatusQuery) -> (&'static str, &str) {
    match query {
        CommandStatusQuery::CorrelationId(id) => ("correlation_id", id),
        CommandStatusQuery::CommandId(id) => ("command_id", id),
    }
}

pub(super) async fn command_status(
    client: &Client,
    schema: &str,
    query: &CommandStatusQuery,
) -> Result<Option<CommandStatusView>> {
    let (column, id) = status_filter(query);
    let row = client
        .query_opt(
            &format!("SELECT view FROM {schema}.commands WHERE {column} = $1 LIMIT 1"),
            &[&id],
        )
        .await?;
    row.map(|r| from_json(r.get(0))).transpose()
}

/// A status known only from a notice (accepted, not yet projected; or dead-lettered).
pub(super) async fn noted(
    client: &Client,
    query: &CommandStatusQuery,
) -> Result<Option<CommandStatusView>> {
    let (column, id) = status_filter(query);
    let row = client
        .query_opt(
            &format!("SELECT view FROM {CONTROL}.command_notices WHERE {column} = $1 LIMIT 1"),
            &[&id],
        )
        .await?;
    row.map(|r| from_json(r.get(0))).transpose()
}

pub(super) async fn officer(
    client: &Client,
    schema: &str,
    badge: &str,
) -> Result<Option<OfficerDetail>> {
    let Some(row) = client
        .query_opt(
            &format!("SELECT view FROM {schema}.officers WHERE badge_number = $1"),
            &[&badge],
        )
        .await?
    else {
        return Ok(None);
    };
    let officer: OfficerView = from_json(row.get(0))?;
    let history = client
        .query(
            &format!(
                "SELECT entry FROM {schema}.officer_history WHERE badge_number = $1 ORDER BY seq"
            ),
            &[&badge],
        )
        .await?;
    Ok(Some(OfficerDetail {
        officer,
        history: views_of(&history)?,
    }))
}

pub(super) async fn list_officers(
    client: &Client,
    schema: &str,
    query: &OfficerListQuery,
) -> Result<OfficerPage> {
    let limit = i64::from(query.page_limit().map_err(Error::Store)?);
    let after = query.after_badge().map_err(Error::Store)?;
    let rank = query.rank.map(|r| r.as_str());
    let rows = client
        .query(
            &format!(
                "SELECT view FROM {schema}.officers
                 WHERE ($1::text IS NULL OR badge_number > $1)
                   AND ($2::text IS NULL OR rank = $2)
                   AND ($3::date IS NULL OR hire_date >= $3)
                   AND ($4::date IS NULL OR hire_date <= $4)
                 ORDER BY badge_number LIMIT $5"
            ),
            &[
                &after,
                &rank,
                &query.hired_from,
                &query.hired_to,
                &(limit + 1),
            ],
        )
        .await?;
    let mut items: Vec<OfficerView> = views_of(&rows)?;
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or_default());
    let next_cursor = more
        .then(|| items.last().map(|o| encode_cursor(&o.officer.badge_number)))
        .flatten();
    Ok(OfficerPage { items, next_cursor })
}

pub(super) async fn observations(
    client: &Client,
    schema: &str,
    query: &ObservationQuery,
) -> Result<ObservationPage> {
    let limit = i64::from(query.page_limit().map_err(Error::Store)?);
    let after = query.after().map_err(Error::Store)?;
    let (after_ns, after_id) = match after {
        Some(cursor) => (Some(observed_ns(&cursor)), Some(cursor.event_id)),
        None => (None, None),
    };
    let rows = client
        .query(
            &format!(
                "SELECT view FROM {schema}.observations
                 WHERE badge_number = $1
                   AND ($2::bigint IS NULL OR (observed_ns, event_id) < ($2, $3::uuid))
                 ORDER BY observed_ns DESC, event_id DESC LIMIT $4"
            ),
            &[&query.badge_number, &after_ns, &after_id, &(limit + 1)],
        )
        .await?;
    let mut items: Vec<ObservationView> = views_of(&rows)?;
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or_default());
    let next_cursor = more
        .then(|| items.last().map(|v| ObservationCursor::of(v).encode()))
        .flatten();
    Ok(ObservationPage { items, next_cursor })
}

pub(super) async fn search_officers(
    client: &Client,
    schema: &str,
    query: &OfficerSearchQuery,
) -> Result<OfficerSearchResults> {
    let limit = i64::from(
        query
            .limit
            .unwrap_or(contracts::officer::DEFAULT_PAGE_LIMIT),
    );
    // Terms are alphanumeric runs, so they are safe as tsquery lexemes; each matches as a prefix.
    let tsquery = query
        .terms()
        .iter()
        .map(|t| format!("{t}:*"))
        .collect::<Vec<_>>()
        .join(" & ");
    let rows = client
        .query(
            &format!(
                "SELECT view FROM {schema}.officers, to_tsquery('simple', $1) AS q
                 WHERE names @@ q ORDER BY ts_rank(names, q) DESC, badge_number LIMIT $2"
            ),
            &[&tsquery, &limit],
        )
        .await?;
    Ok(OfficerSearchResults {
        items: views_of(&rows)?,
    })
}

pub(super) async fn stats(client: &Client, schema: &str) -> Result<ProjectionStats> {
    let counts = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM {schema}.applied_events),
                        (SELECT count(*) FROM {schema}.commands),
                        (SELECT count(*) FROM {schema}.officers),
                        (SELECT count(*) FROM {schema}.parked_events)"
            ),
            &[],
        )
        .await?;
    let counters: std::collections::HashMap<String, i64> = client
        .query(&format!("SELECT name, value FROM {schema}.counters"), &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let counter = |name: &str| {
        u64::try_from(counters.get(name).copied().unwrap_or_default()).unwrap_or_default()
    };
    let count = |i: usize| u64::try_from(counts.get::<_, i64>(i)).unwrap_or_default();
    let mut stats = ProjectionStats {
        applied_events: count(0),
        commands: count(1),
        officers: count(2),
        parked_events: count(3),
        last_event_at: counters.get("last_event_at_us").and_then(|micros| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(*micros) * 1000).ok()
        }),
        duplicate_records: counter("duplicate_records"),
        superseded: counter("superseded"),
        unreadable: counter("unreadable"),
        ..ProjectionStats::default()
    };
    breakdowns(client, schema, &mut stats).await?;
    Ok(stats)
}

async fn breakdowns(client: &Client, schema: &str, stats: &mut ProjectionStats) -> Result<()> {
    let ranks = client
        .query(
            &format!("SELECT rank, count(*) FROM {schema}.officers GROUP BY rank"),
            &[],
        )
        .await?;
    for row in ranks {
        if let Some(rank) = contracts::officer::Rank::parse(row.get(0)) {
            stats.officers_by_rank.insert(
                rank,
                u64::try_from(row.get::<_, i64>(1)).unwrap_or_default(),
            );
        }
    }
    let days = client
        .query(
            &format!(
                "SELECT to_char(registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*)
                 FROM {schema}.officers GROUP BY 1"
            ),
            &[],
        )
        .await?;
    for row in days {
        stats.registrations_by_day.insert(
            row.get(0),
            u64::try_from(row.get::<_, i64>(1)).unwrap_or_default(),
        );
    }
    let partitions = client
        .query(
            &format!(
                "SELECT topic, partition, next_offset FROM {schema}.partition_offsets ORDER BY 1, 2"
            ),
            &[],
        )
        .await?;
    stats.partitions = partitions
        .iter()
        .map(|r| PartitionProgress {
            topic: r.get(0),
            partition: r.get(1),
            published: 0,
            projected: r.get(2),
            lag: 0,
        })
        .collect();
    Ok(())
}

pub(super) async fn dead_letters(
    client: &Client,
    schema: &str,
    key: Option<&str>,
) -> Result<Vec<ParkedEvent>> {
    let rows = client
        .query(
            &format!(
                "SELECT event FROM {schema}.parked_events WHERE $1::text IS NULL OR key = $1
                 ORDER BY topic, partition, \"offset\""
            ),
            &[&key],
        )
        .await?;
    views_of(&rows)
}

/// The (topic, key) pairs a re-drive request covers.
pub(super) async fn parked_keys(
    client: &Client,
    schema: &str,
    request: &RedriveRequest,
) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            &format!(
                "SELECT DISTINCT topic, key FROM {schema}.parked_events
                 WHERE $1 OR key = ANY($2) ORDER BY 1, 2"
            ),
            &[&request.all, &request.keys],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(super) async fn unpublished(
    client: &Client,
    schema: &str,
) -> Result<Vec<UnpublishedDeadLetter>> {
    let rows = client
        .query(
            &format!(
                "SELECT p.event, p.payload, p.headers FROM {schema}.parked_events AS p
                 WHERE NOT EXISTS (SELECT 1 FROM {CONTROL}.published_dead_letters AS d
                    WHERE d.topic = p.topic AND d.partition = p.partition AND d.\"offset\" = p.\"offset\")
                 ORDER BY p.topic, p.partition, p.\"offset\""
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UnpublishedDeadLetter {
                parked: from_json(r.get(0))?,
                payload: r.get(1),
                headers: from_json(r.get(2))?,
            })
        })
        .collect()
}

pub(super) async fn mark_published(client: &Client, sources: &[EventPosition]) -> Result<()> {
    let topics: Vec<&str> = sources.iter().map(|s| s.topic.as_str()).collect();
    let partitions: Vec<i32> = sources.iter().map(|s| s.partition).collect();
    let offsets: Vec<i64> = sources.iter().map(|s| s.offset).collect();
    client
        .execute(
            &format!(
                "INSERT INTO {CONTROL}.published_dead_letters (topic, partition, \"offset\")
                 SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]) ON CONFLICT DO NOTHING"
            ),
            &[&topics, &partitions, &offsets],
        )
        .await?;
    Ok(())
}

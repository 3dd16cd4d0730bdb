//! The timeline on PostgreSQL, in the control schema (it outlives read-model rebuilds):
//! one row per step, and one row per command that a search reads, merged as steps arrive.
//! Steps are stored as their contract JSON and read back whole; SQL filters only on typed
//! columns.

use contracts::timeline::{CommandIds, Component, Step, TimelineQuery, TimelineSearch};
use time::OffsetDateTime;
use tokio_postgres::{Client, Row};
use uuid::Uuid;

use super::{StoredStep, TimelineStore, command_entries};
use crate::{
    Error, Result,
    store::postgres::{connect, schema},
};

/// The columns a step is read back from.
const COLUMNS: &str =
    "correlation_id, command_id, command_type, aggregate_id, component, instance, step";

/// The timeline tables, on a connection of their own.
pub struct PostgresTimeline {
    url: String,
    client: tokio::sync::Mutex<Client>,
}

impl PostgresTimeline {
    /// Connects and runs the control schema's migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let mut client = connect(url).await?;
        schema::migrate(&mut client).await?;
        Ok(Self {
            url: url.to_owned(),
            client: tokio::sync::Mutex::new(client),
        })
    }

    /// The connection, reconnected if PostgreSQL dropped it.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            *client = connect(&self.url).await?;
            tracing::info!("reconnected to PostgreSQL (timeline)");
        }
        Ok(client)
    }

    async fn steps_where(&self, condition: &str, key: &str) -> Result<Vec<StoredStep>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {}.timeline_steps WHERE {condition}",
            schema::CONTROL
        );
        let rows = self.client().await?.query(&sql, &[&key]).await?;
        rows.iter().map(stored_step).collect()
    }
}

impl TimelineStore for PostgresTimeline {
    fn ready(&self) -> Result<(), String> {
        match self.client.try_lock() {
            Ok(client) if client.is_closed() => Err("PostgreSQL disconnected (timeline)".into()),
            _ => Ok(()),
        }
    }

    async fn record(&self, steps: Vec<StoredStep>) -> Result<()> {
        let entries = command_entries(&steps);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_steps(&tx, &steps).await?;
        let control = schema::CONTROL;
        let sql = format!(
            "INSERT INTO {control}.timeline_commands AS c
                (command_key, correlation_id, command_type, aggregate_id, first_at, last_at, failed)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                $5::timestamptz[], $6::timestamptz[], $7::bool[])
             ON CONFLICT (command_key) DO UPDATE SET
                correlation_id = CASE WHEN excluded.first_at < c.first_at
                    THEN excluded.correlation_id ELSE c.correlation_id END,
                first_at = least(c.first_at, excluded.first_at),
                last_at = greatest(c.last_at, excluded.last_at),
                command_type = coalesce(c.command_type, excluded.command_type),
                aggregate_id = coalesce(c.aggregate_id, excluded.aggregate_id),
                failed = c.failed OR excluded.failed"
        );
        let column = |part: fn(&super::CommandEntry) -> Option<String>| -> Vec<Option<String>> {
            entries.iter().map(part).collect()
        };
        let keys = column(|e| Some(e.key.clone()));
        let correlations = column(|e| Some(e.correlation_id.clone()));
        let types = column(|e| e.command_type.clone());
        let aggregates = column(|e| e.aggregate_id.clone());
        let firsts: Vec<OffsetDateTime> = entries.iter().map(|e| e.first_at).collect();
        let lasts: Vec<OffsetDateTime> = entries.iter().map(|e| e.last_at).collect();
        let failed: Vec<bool> = entries.iter().map(|e| e.failed).collect();
        tx.execute(
            &sql,
            &[
                &keys,
                &correlations,
                &types,
                &aggregates,
                &firsts,
                &lasts,
                &failed,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn command_steps(&self, query: &TimelineQuery) -> Result<Vec<StoredStep>> {
        match query {
            TimelineQuery::CommandId(id) => self.steps_where("command_key = $1", id).await,
            TimelineQuery::CorrelationId(id) => {
                let condition = format!(
                    "command_key IN (SELECT command_key FROM {}.timeline_steps
                        WHERE correlation_id = $1)",
                    schema::CONTROL
                );
                self.steps_where(&condition, id).await
            }
        }
    }

    async fn search(&self, search: &TimelineSearch) -> Result<Vec<Vec<StoredStep>>> {
        let control = schema::CONTROL;
        let sql = format!(
            "SELECT command_key FROM {control}.timeline_commands
             WHERE ($1::text IS NULL OR command_key = $1)
               AND ($2::text IS NULL OR aggregate_id = $2)
               AND ($3::text IS NULL OR command_type = $3)
               AND ($4::timestamptz IS NULL OR last_at >= $4)
               AND ($5::timestamptz IS NULL OR first_at < $5)
               AND (NOT $6 OR failed)
             ORDER BY last_at DESC, command_key
             LIMIT $7"
        );
        let limit = i64::from(search.page_size().unwrap_or(TimelineSearch::DEFAULT_LIMIT));
        let client = self.client().await?;
        let rows = client
            .query(
                &sql,
                &[
                    &search.command_id,
                    &search.aggregate_id,
                    &search.command_type,
                    &search.from,
                    &search.to,
                    &search.failed,
                    &limit,
                ],
            )
            .await?;
        let keys: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        let sql = format!(
            "SELECT {COLUMNS}, command_key FROM {control}.timeline_steps
             WHERE command_key = ANY($1)"
        );
        let rows = client.query(&sql, &[&keys]).await?;
        let mut groups: Vec<Vec<StoredStep>> = vec![Vec::new(); keys.len()];
        for row in &rows {
            let key: String = row.get("command_key");
            if let Some(at) = keys.iter().position(|k| *k == key) {
                groups[at].push(stored_step(row)?);
            }
        }
        Ok(groups)
    }

    async fn expire(&self, before: OffsetDateTime) -> Result<u64> {
        let control = schema::CONTROL;
        let client = self.client().await?;
        let steps = client
            .execute(
                &format!("DELETE FROM {control}.timeline_steps WHERE at < $1"),
                &[&before],
            )
            .await?;
        client
            .execute(
                &format!("DELETE FROM {control}.timeline_commands WHERE last_at < $1"),
                &[&before],
            )
            .await?;
        Ok(steps)
    }
}

async fn insert_steps(tx: &tokio_postgres::Transaction<'_>, steps: &[StoredStep]) -> Result<()> {
    let mut ids: Vec<Uuid> = Vec::with_capacity(steps.len());
    let mut text: [Vec<Option<String>>; 7] = Default::default();
    let mut ats = Vec::with_capacity(steps.len());
    let mut bodies = Vec::with_capacity(steps.len());
    for stored in steps {
        ids.push(stored.step.id);
        let values = [
            Some(stored.command_key().to_owned()),
            Some(stored.correlation_id.clone()),
            stored.command.command_id.clone(),
            stored.command.command_type.clone(),
            stored.command.aggregate_id.clone(),
            Some(stored.component.as_str().to_owned()),
            Some(stored.instance.clone()),
        ];
        for (column, value) in text.iter_mut().zip(values) {
            column.push(value);
        }
        ats.push(stored.step.at);
        bodies.push(serde_json::to_value(&stored.step).map_err(|e| Error::Store(e.to_string()))?);
    }
    let [
        keys,
        correlations,
        command_ids,
        types,
        aggregates,
        components,
        instances,
    ] = &text;
    let sql = format!(
        "INSERT INTO {}.timeline_steps (step_id, command_key, {COLUMNS}, at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::timestamptz[])
         ON CONFLICT (step_id) DO NOTHING",
        schema::CONTROL
    );
    tx.execute(
        &sql,
        &[
            &ids,
            keys,
            correlations,
            command_ids,
            types,
            aggregates,
            components,
            instances,
            &bodies,
            &ats,
        ],
    )
    .await?;
    Ok(())
}

fn stored_step(row: &Row) -> Result<StoredStep> {
    let unreadable = |e: serde_json::Error| Error::Store(format!("unreadable timeline step: {e}"));
    let component: String = row.get("component");
    let component: Component =
        serde_json::from_value(serde_json::Value::String(component)).map_err(unreadable)?;
    let step: Step = serde_json::from_value(row.get("step")).map_err(unreadable)?;
    Ok(StoredStep {
        correlation_id: row.get("correlation_id"),
        command: CommandIds {
            command_id: row.get("command_id"),
            command_type: row.get("command_type"),
            aggregate_id: row.get("aggregate_id"),
        },
        component,
        instance: row.get("instance"),
        step,
    })
}

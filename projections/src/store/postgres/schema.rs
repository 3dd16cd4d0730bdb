//! The PostgreSQL layout. A control schema, `ackgate_projections`, holds versioned
//! migrations, the generations of read models, which one is active, and what outlives a
//! rebuild (command notices, published dead letters). Each generation of read models is a
//! schema of its own, `ackgate_rm_<n>`: a rebuild fills a new one while the active one keeps
//! serving, then switches the `active` row and drops the old schema.

use tokio_postgres::{Client, GenericClient};

use crate::{Error, Result};

/// The control schema.
pub(crate) const CONTROL: &str = "ackgate_projections";

/// Serialises migrations between instances starting together.
const MIGRATION_LOCK: i64 = 0x6163_6b67_6174_6531;

/// Control-schema migrations, in order; each runs once, in a transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE ackgate_projections.generations (
        generation bigint PRIMARY KEY,
        layout int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE TABLE ackgate_projections.active (
        id int PRIMARY KEY CHECK (id = 1),
        generation bigint NOT NULL REFERENCES ackgate_projections.generations
     );
     CREATE TABLE ackgate_projections.command_notices (
        correlation_id text PRIMARY KEY,
        command_id text NOT NULL,
        view jsonb NOT NULL
     );
     CREATE INDEX command_notices_command_id ON ackgate_projections.command_notices (command_id);
     CREATE TABLE ackgate_projections.published_dead_letters (
        topic text NOT NULL,
        partition int NOT NULL,
        \"offset\" bigint NOT NULL,
        PRIMARY KEY (topic, partition, \"offset\")
     );",
    ),
    (
        2,
        // Whether a later notice may replace a stored one, as a column: queries no longer
        // read contract field names out of the JSON.
        "ALTER TABLE ackgate_projections.command_notices
            ADD COLUMN replaceable boolean NOT NULL DEFAULT false;
         UPDATE ackgate_projections.command_notices
            SET replaceable = (view->>'status' = 'dead-lettered');",
    ),
    (
        3,
        // The command timeline: outside the generations, since it is fed from its own
        // stream and not from the events topics a rebuild replays.
        "CREATE TABLE ackgate_projections.timeline_steps (
            step_id uuid PRIMARY KEY,
            command_key text NOT NULL,
            correlation_id text NOT NULL,
            command_id text,
            command_type text,
            aggregate_id text,
            component text NOT NULL,
            instance text NOT NULL,
            at timestamptz NOT NULL,
            step jsonb NOT NULL
         );
         CREATE INDEX timeline_steps_command ON ackgate_projections.timeline_steps (command_key);
         CREATE INDEX timeline_steps_correlation
            ON ackgate_projections.timeline_steps (correlation_id);
         CREATE INDEX timeline_steps_at ON ackgate_projections.timeline_steps (at);
         CREATE TABLE ackgate_projections.timeline_commands (
            command_key text PRIMARY KEY,
            correlation_id text NOT NULL,
            command_type text,
            aggregate_id text,
            first_at timestamptz NOT NULL,
            last_at timestamptz NOT NULL,
            failed boolean NOT NULL
         );
         CREATE INDEX timeline_commands_last_at
            ON ackgate_projections.timeline_commands (last_at DESC);
         CREATE INDEX timeline_commands_aggregate
            ON ackgate_projections.timeline_commands (aggregate_id, last_at DESC);",
    ),
];

/// Version of the read-model tables a generation is created with. A change of layout ships
/// as a new version, deployed by a rebuild rather than by altering live tables; an additive
/// change may also ship an upgrade of existing generations ([`UPGRADES`]).
const LAYOUT: i32 = 2;

/// Upgrades of an existing generation to the next layout: `(from, statements)`, run inside
/// the generation's schema. Layout 2 adds the officer's registering commandId as a column
/// and the observations table.
const UPGRADES: &[(i32, &str)] = &[(
    1,
    "ALTER TABLE officers ADD COLUMN command_id text;
     UPDATE officers SET command_id = view->>'commandId';
     ALTER TABLE officers ALTER COLUMN command_id SET NOT NULL;
     CREATE TABLE observations (
        badge_number text NOT NULL, observed_ns bigint NOT NULL, event_id uuid NOT NULL,
        view jsonb NOT NULL, PRIMARY KEY (badge_number, observed_ns, event_id));",
)];

/// The tables of one generation, created inside its schema.
const LAYOUT_DDL: &str = "
    CREATE TABLE partition_offsets (
        topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL,
        PRIMARY KEY (topic, partition));
    CREATE TABLE applied_events (event_id uuid PRIMARY KEY);
    CREATE TABLE commands (
        correlation_id text PRIMARY KEY, command_id text NOT NULL, view jsonb NOT NULL);
    CREATE INDEX commands_command_id ON commands (command_id);
    CREATE TABLE officers (
        badge_number text PRIMARY KEY, rank text NOT NULL, hire_date date NOT NULL,
        registered_at timestamptz NOT NULL, names tsvector NOT NULL, command_id text NOT NULL,
        view jsonb NOT NULL);
    CREATE INDEX officers_rank ON officers (rank, badge_number);
    CREATE INDEX officers_hire_date ON officers (hire_date);
    CREATE INDEX officers_names ON officers USING gin (names);
    CREATE TABLE officer_history (
        badge_number text NOT NULL, seq bigserial, entry jsonb NOT NULL,
        PRIMARY KEY (badge_number, seq));
    CREATE TABLE parked_events (
        topic text NOT NULL, partition int NOT NULL, \"offset\" bigint NOT NULL,
        key text NOT NULL, event jsonb NOT NULL, payload bytea NOT NULL, headers jsonb NOT NULL,
        PRIMARY KEY (topic, partition, \"offset\"));
    CREATE INDEX parked_events_key ON parked_events (topic, key, partition, \"offset\");
    CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL);
    CREATE TABLE observations (
        badge_number text NOT NULL, observed_ns bigint NOT NULL, event_id uuid NOT NULL,
        view jsonb NOT NULL, PRIMARY KEY (badge_number, observed_ns, event_id));
";

/// The schema name of a generation.
pub(crate) fn schema_of(generation: i64) -> String {
    format!("ackgate_rm_{generation}")
}

/// Applies pending migrations and makes sure a generation is active. Safe to run from
/// several instances at once.
pub(crate) async fn migrate(client: &mut Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let migrated = run_migrations(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    migrated?;
    unlocked?;
    Ok(())
}

async fn run_migrations(client: &mut Client) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {CONTROL};
             CREATE TABLE IF NOT EXISTS {CONTROL}.migrations (
                version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
        ))
        .await?;
    for (version, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        let done = tx
            .query_opt(
                &format!("SELECT 1 FROM {CONTROL}.migrations WHERE version = $1"),
                &[version],
            )
            .await?;
        if done.is_none() {
            tracing::info!(version, "applying migration");
            tx.batch_execute(sql).await?;
            tx.execute(
                &format!("INSERT INTO {CONTROL}.migrations (version) VALUES ($1)"),
                &[version],
            )
            .await?;
        }
        tx.commit().await?;
    }
    upgrade_generations(client).await?;
    if active_generation(&*client).await?.is_none() {
        let tx = client.transaction().await?;
        let generation = create_generation(&tx).await?;
        tx.execute(
            &format!("INSERT INTO {CONTROL}.active (id, generation) VALUES (1, $1)"),
            &[&generation],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(generation, "created the first read-model generation");
    }
    Ok(())
}

/// Brings every generation of an older layout up to [`LAYOUT`], one upgrade at a time.
async fn upgrade_generations(client: &mut Client) -> Result<()> {
    let rows = client
        .query(
            &format!("SELECT generation, layout FROM {CONTROL}.generations WHERE layout < $1"),
            &[&LAYOUT],
        )
        .await?;
    for row in rows {
        let (generation, mut layout): (i64, i32) = (row.get(0), row.get(1));
        while let Some((_, statements)) = UPGRADES.iter().find(|(from, _)| *from == layout) {
            let tx = client.transaction().await?;
            let schema = schema_of(generation);
            tracing::info!(
                generation,
                from = layout,
                "upgrading a read-model generation"
            );
            tx.batch_execute(&format!("SET LOCAL search_path TO {schema}; {statements}"))
                .await?;
            layout += 1;
            tx.execute(
                &format!("UPDATE {CONTROL}.generations SET layout = $2 WHERE generation = $1"),
                &[&generation, &layout],
            )
            .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// The active generation, if any.
pub(crate) async fn active_generation(client: &impl GenericClient) -> Result<Option<i64>> {
    let row = client
        .query_opt(
            &format!("SELECT generation FROM {CONTROL}.active WHERE id = 1"),
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Creates the next generation's schema and tables, empty, and returns its number.
pub(crate) async fn create_generation(client: &impl GenericClient) -> Result<i64> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {CONTROL}.generations (generation, layout)
                 SELECT coalesce(max(generation), 0) + 1, $1 FROM {CONTROL}.generations
                 RETURNING generation"
            ),
            &[&LAYOUT],
        )
        .await?;
    let generation: i64 = row.get(0);
    let schema = schema_of(generation);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}; {LAYOUT_DDL}"
        ))
        .await?;
    Ok(generation)
}

/// Drops a generation that is not active (after a switch, or an abandoned rebuild).
pub(crate) async fn drop_generation(client: &Client, generation: i64) -> Result<()> {
    if active_generation(client).await? == Some(generation) {
        return Err(Error::Store(format!(
            "generation {generation} is active and cannot be dropped"
        )));
    }
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE;
             DELETE FROM {CONTROL}.generations WHERE generation = {generation};",
            schema_of(generation)
        ))
        .await?;
    Ok(())
}

//! The durable store: read models in PostgreSQL, shared by every projection instance.
//!
//! One connection writes (a transaction per batch: the active generation is read `FOR
//! SHARE`, the batch's offset rows are locked, events applied, offsets moved, all
//! committed together); another, pipelined, answers queries. Either reconnects when
//! PostgreSQL comes back.

mod apply;
mod bulk;
mod read;
pub(crate) mod schema;

use std::sync::Arc;

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
use tokio::sync::{Mutex, RwLock};
use tokio_postgres::{Client, NoTls, Transaction};

use apply::Mode;

use super::{ApplyPolicy, Offsets, Outcome, ReadModelStore, UnpublishedDeadLetter, views};
use crate::{
    Result,
    event::{Decoder, SourceRecord},
    rebuild::TopicOffsets,
    store::Redriven,
};
use schema::CONTROL;

/// Which generation a store writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The active one, whichever it is at each transaction (live projections).
    Active,
    /// A generation being built (a rebuild's shadow copy).
    Shadow(i64),
}

/// Read models in PostgreSQL.
pub struct PostgresStore {
    url: String,
    decoder: Decoder,
    target: Target,
    writer: Mutex<Client>,
    reader: RwLock<Arc<Client>>,
}

/// Opens a connection whose I/O runs on its own task.
pub(crate) async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

impl PostgresStore {
    /// Connects, runs migrations, and serves the active generation, reading events with
    /// `decoder`.
    pub async fn open(url: &str, decoder: Decoder) -> Result<Self> {
        let mut writer = connect(url).await?;
        schema::migrate(&mut writer).await?;
        Self::with_writer(url, decoder, writer, Target::Active).await
    }

    /// Creates a new, empty generation and a store that writes only to it: the shadow copy
    /// a rebuild fills while the active generation keeps serving.
    pub async fn open_shadow(url: &str, decoder: Decoder) -> Result<(Self, i64)> {
        let mut writer = connect(url).await?;
        schema::migrate(&mut writer).await?;
        let tx = writer.transaction().await?;
        let generation = schema::create_generation(&tx).await?;
        tx.commit().await?;
        let store = Self::with_writer(url, decoder, writer, Target::Shadow(generation)).await?;
        Ok((store, generation))
    }

    async fn with_writer(
        url: &str,
        decoder: Decoder,
        writer: Client,
        target: Target,
    ) -> Result<Self> {
        let reader = connect(url).await?;
        Ok(Self {
            url: url.to_owned(),
            decoder,
            target,
            writer: Mutex::new(writer),
            reader: RwLock::new(Arc::new(reader)),
        })
    }

    /// The writer connection, reconnected if PostgreSQL dropped it.
    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, Client>> {
        let mut writer = self.writer.lock().await;
        if writer.is_closed() {
            *writer = connect(&self.url).await?;
            tracing::info!("reconnected to PostgreSQL (writer)");
        }
        Ok(writer)
    }

    /// The reader connection, reconnected if PostgreSQL dropped it.
    async fn reader(&self) -> Result<Arc<Client>> {
        let current = Arc::clone(&*self.reader.read().await);
        if !current.is_closed() {
            return Ok(current);
        }
        let mut reader = self.reader.write().await;
        if reader.is_closed() {
            *reader = Arc::new(connect(&self.url).await?);
            tracing::info!("reconnected to PostgreSQL (reader)");
        }
        Ok(Arc::clone(&reader))
    }

    /// Begins a transaction on the generation this store writes to. For the active
    /// generation, its row is read `FOR SHARE`, so a rebuild's switch waits for the
    /// transaction and the transaction after the switch writes to the new generation.
    async fn begin<'c>(&self, writer: &'c mut Client) -> Result<Transaction<'c>> {
        let tx = writer.transaction().await?;
        let generation = match self.target {
            Target::Shadow(generation) => generation,
            Target::Active => {
                let row = tx
                    .query_one(
                        &format!("SELECT generation FROM {CONTROL}.active WHERE id = 1 FOR SHARE"),
                        &[],
                    )
                    .await?;
                row.get(0)
            }
        };
        tx.batch_execute(&format!(
            "SET LOCAL search_path TO {}",
            schema::schema_of(generation)
        ))
        .await?;
        Ok(tx)
    }

    /// The generation queries read: the shadow for a rebuild, else the active one.
    async fn read_schema(&self, client: &Client) -> Result<String> {
        let generation = match self.target {
            Target::Shadow(generation) => generation,
            Target::Active => schema::active_generation(client)
                .await?
                .ok_or_else(|| crate::Error::Store("no active read-model generation".to_owned()))?,
        };
        Ok(schema::schema_of(generation))
    }
}

/// Runs a query against the generation to read, once more if a rebuild dropped that
/// generation between choosing it and reading it.
macro_rules! read_generation {
    ($store:expr, |$client:ident, $schema:ident| $query:expr) => {{
        let $client = $store.reader().await?;
        let $schema = $store.read_schema(&$client).await?;
        match $query.await {
            Err(crate::Error::Postgres(e)) if read::is_dropped_generation(&e) => {
                let $schema = $store.read_schema(&$client).await?;
                $query.await
            }
            outcome => outcome,
        }
    }};
}

/// Longest the switch holds live writers while the copy catches up; past it the switch is
/// rolled back (and the rebuild abandoned) rather than stalling the projections.
const SWITCH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// What a switch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    /// The generation that served until the switch (now dropped).
    pub previous: i64,
    /// The generation serving now.
    pub active: i64,
    /// Records applied while holding the switch lock, to catch up with the old generation.
    pub caught_up: usize,
}

impl PostgresStore {
    /// Makes this shadow generation the active one, atomically, then drops the old one.
    ///
    /// Live writers read the `active` row `FOR SHARE`; this takes it `FOR UPDATE`, so they
    /// pause for the switch. While they wait, the shadow is brought up to the old
    /// generation's offsets with records from `more`, so every partition of the new
    /// generation is at least as far as the old one: a live writer that resumes on it only
    /// skips what it already holds, and nothing is lost.
    /// `more` gives the copy's next records and its reader's positions (past transaction
    /// markers, which no record carries).
    pub async fn switch(
        &self,
        topics: &[String],
        policy: ApplyPolicy,
        mut more: impl AsyncFnMut() -> Result<(Vec<SourceRecord>, TopicOffsets)>,
    ) -> Result<Switched> {
        let Target::Shadow(shadow) = self.target else {
            return Err(crate::Error::Store(
                "only a shadow generation can be switched to".to_owned(),
            ));
        };
        let mut writer = self.writer().await?;
        let mut tx = writer.transaction().await?;
        let row = tx
            .query_one(
                &format!("SELECT generation FROM {CONTROL}.active WHERE id = 1 FOR UPDATE"),
                &[],
            )
            .await?;
        let previous: i64 = row.get(0);
        let mut targets = TopicOffsets::new();
        for topic in topics {
            let of_topic = read::offsets(&tx, &schema::schema_of(previous), topic).await?;
            targets.insert(topic.clone(), of_topic);
        }
        tx.batch_execute(&format!(
            "SET LOCAL search_path TO {}",
            schema::schema_of(shadow)
        ))
        .await?;
        let mut caught_up = 0;
        let deadline = tokio::time::Instant::now() + SWITCH_PATIENCE;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(crate::Error::Store(format!(
                    "the copy did not catch up within {SWITCH_PATIENCE:?} while live writers \
                     waited; nothing was switched"
                )));
            }
            let behind = self.behind(&tx, shadow, &targets).await?;
            if behind.is_empty() {
                break;
            }
            let (records, read_to) = more().await?;
            caught_up += records.len();
            for run in records.chunk_by(|a, b| a.position.topic == b.position.topic) {
                let decoder = &self.decoder;
                apply::apply_skipping_markers(&mut tx, decoder, run, policy, Mode::Careful).await?;
            }
            for (topic, partition, next) in behind {
                let read = read_to.get(&topic).and_then(|p| p.get(&partition));
                if read.is_some_and(|at| *at >= next) && records.is_empty() {
                    apply::advance_in(&tx, &topic, partition, next).await?;
                }
            }
        }
        tx.execute(
            &format!("UPDATE {CONTROL}.active SET generation = $1 WHERE id = 1"),
            &[&shadow],
        )
        .await?;
        tx.commit().await?;
        drop(writer);
        schema::drop_generation(&*self.reader().await?, previous).await?;
        Ok(Switched {
            previous,
            active: shadow,
            caught_up,
        })
    }

    /// The partitions where the copy is behind `targets`: `(topic, partition, target)`.
    async fn behind(
        &self,
        tx: &Transaction<'_>,
        shadow: i64,
        targets: &TopicOffsets,
    ) -> Result<Vec<(String, i32, i64)>> {
        let mut behind = Vec::new();
        for (topic, target) in targets {
            let current = read::offsets(tx, &schema::schema_of(shadow), topic).await?;
            behind.extend(
                target
                    .iter()
                    .filter(|(partition, next)| {
                        current.get(partition).copied().unwrap_or_default() < **next
                    })
                    .map(|(partition, next)| (topic.clone(), *partition, *next)),
            );
        }
        Ok(behind)
    }

    /// Sets where each partition of a shadow generation starts, for a rebuild that does not
    /// replay from the beginning: the records before are treated as passed.
    pub async fn start_at(&self, topic: &str, starts: &Offsets) -> Result<()> {
        let (partitions, offsets): (Vec<i32>, Vec<i64>) =
            starts.iter().map(|(p, o)| (*p, *o)).unzip();
        let mut writer = self.writer().await?;
        let tx = self.begin(&mut writer).await?;
        tx.execute(
            "INSERT INTO partition_offsets (topic, partition, next_offset)
             SELECT $1, * FROM unnest($2::int[], $3::bigint[])
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
            &[&topic, &partitions, &offsets],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drops this shadow generation (an abandoned rebuild).
    pub async fn abandon(&self) -> Result<()> {
        match self.target {
            Target::Shadow(generation) => {
                schema::drop_generation(&*self.reader().await?, generation).await
            }
            Target::Active => Ok(()),
        }
    }
}

impl ReadModelStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn ready(&self) -> Result<(), String> {
        let closed = self
            .reader
            .try_read()
            .is_ok_and(|reader| reader.is_closed());
        if closed {
            Err("PostgreSQL disconnected".to_owned())
        } else {
            Ok(())
        }
    }

    async fn offsets(&self, topic: &str) -> Result<Offsets> {
        read_generation!(self, |client, schema| read::offsets(
            &*client, &schema, topic
        ))
    }

    async fn apply_batch(
        &self,
        records: &[SourceRecord],
        policy: ApplyPolicy,
    ) -> Result<Vec<Outcome>> {
        let mut writer = self.writer().await?;
        let mut tx = self.begin(&mut writer).await?;
        let decoder = &self.decoder;
        match apply::apply_batch(&mut tx, decoder, records, policy, Mode::Optimistic).await {
            Ok(outcomes) => {
                tx.commit().await?;
                return Ok(outcomes);
            }
            Err(crate::Error::Refused(reason)) => {
                tracing::info!(
                    reason,
                    "an event was refused; applying the batch again, event by event"
                );
                tx.rollback().await?;
            }
            Err(e) => return Err(e),
        }
        let mut tx = self.begin(&mut writer).await?;
        let outcomes = apply::apply_batch(&mut tx, decoder, records, policy, Mode::Careful).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn advance(&self, topic: &str, partition: i32, next: i64) -> Result<()> {
        let mut writer = self.writer().await?;
        let tx = self.begin(&mut writer).await?;
        apply::advance_in(&tx, topic, partition, next).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn note_accepted(&self, notice: CommandAcceptedNotice) -> Result<()> {
        let client = self.reader().await?;
        read::note(&client, &views::accepted_status(notice)).await
    }

    async fn note_parked(&self, notice: CommandParkedNotice) -> Result<()> {
        let client = self.reader().await?;
        read::note(&client, &views::dead_lettered_status(notice)).await
    }

    async fn command_status(
        &self,
        query: &CommandStatusQuery,
    ) -> Result<Option<CommandStatusView>> {
        let projected = read_generation!(self, |client, schema| read::command_status(
            &client, &schema, query
        ))?;
        match projected {
            Some(view) => Ok(Some(view)),
            None => read::noted(&*self.reader().await?, query).await,
        }
    }

    async fn officer(&self, badge: &str) -> Result<Option<OfficerDetail>> {
        read_generation!(self, |client, schema| read::officer(
            &client, &schema, badge
        ))
    }

    async fn list_officers(&self, query: &OfficerListQuery) -> Result<OfficerPage> {
        read_generation!(self, |client, schema| read::list_officers(
            &client, &schema, query
        ))
    }

    async fn search_officers(&self, query: &OfficerSearchQuery) -> Result<OfficerSearchResults> {
        read_generation!(self, |client, schema| read::search_officers(
            &client, &schema, query
        ))
    }

    async fn observations(&self, query: &ObservationQuery) -> Result<ObservationPage> {
        read_generation!(self, |client, schema| read::observations(
            &client, &schema, query
        ))
    }

    async fn stats(&self) -> Result<ProjectionStats> {
        let mut stats = read_generation!(self, |client, schema| read::stats(&client, &schema))?;
        stats.store = self.kind().to_owned();
        Ok(stats)
    }

    async fn dead_letters(&self, key: Option<&str>) -> Result<Vec<ParkedEvent>> {
        read_generation!(self, |client, schema| read::dead_letters(
            &client, &schema, key
        ))
    }

    async fn redrive(&self, request: &RedriveRequest, policy: ApplyPolicy) -> Result<Redriven> {
        let keys = read_generation!(self, |client, schema| read::parked_keys(
            &client, &schema, request
        ))?;
        let mut report = Redriven::default();
        for (topic, key) in keys {
            let mut writer = self.writer().await?;
            let mut tx = self.begin(&mut writer).await?;
            apply::redrive_key(&mut tx, &self.decoder, &topic, &key, policy, &mut report).await?;
            tx.commit().await?;
        }
        Ok(report)
    }

    async fn discard(
        &self,
        source: &EventPosition,
        reason: &str,
    ) -> Result<Option<UnpublishedDeadLetter>> {
        let mut writer = self.writer().await?;
        let tx = self.begin(&mut writer).await?;
        let discarded = apply::discard(&tx, source, reason).await?;
        tx.commit().await?;
        Ok(discarded)
    }

    async fn unpublished_dead_letters(&self) -> Result<Vec<UnpublishedDeadLetter>> {
        read_generation!(self, |client, schema| read::unpublished(&client, &schema))
    }

    async fn mark_published(&self, sources: &[EventPosition]) -> Result<()> {
        let client = self.reader().await?;
        read::mark_published(&client, sources).await
    }
}

//! Rebuilding the PostgreSQL read models without query downtime: replay every events topic
//! into a new generation while the active one keeps serving (and the live projections keep
//! applying to it), switch atomically once the copy has caught up, drop the old one.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use serde::Serialize;

use crate::{
    Error, Result,
    consumer::source_record,
    event::{Decoder, SourceRecord},
    store::{ApplyPolicy, Offsets, PostgresStore, ReadModelStore, postgres::Switched},
    watermarks::Watermarks,
};

/// Where the replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first record of every partition.
    Beginning,
    /// This offset of every partition (or its first record, if later).
    Offset(i64),
    /// The first record at or after this time (milliseconds since the epoch), as the broker
    /// finds it with ListOffsets by timestamp.
    Timestamp(i64),
}

/// One line of progress.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `replaying`, then `switched`.
    pub phase: &'static str,
    /// The generation being built.
    pub generation: i64,
    /// Records read so far.
    pub records: u64,
    /// Records per second since the start.
    pub events_per_second: f64,
    /// Records still to read to reach the topic's end, as of the last check.
    pub remaining_lag: i64,
    /// After the switch: the generation replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<i64>,
}

/// How a rebuild runs.
#[derive(Debug, Clone, Copy)]
pub struct RebuildOptions {
    /// Where the replay starts.
    pub start: StartAt,
    /// Retries for events the read model refuses.
    pub policy: ApplyPolicy,
    /// Records per transaction.
    pub batch_max: usize,
    /// How often progress is reported.
    pub progress_every: Duration,
}

/// The next offset of each partition, per topic.
pub type TopicOffsets = HashMap<String, Offsets>;

/// Replays `topics` (the catalog's events topics, in the deployment's namespace) into a new
/// generation, reading them with `decoder`, and switches to it. `report` receives progress
/// lines.
pub async fn rebuild(
    bootstrap: &str,
    database_url: &str,
    decoder: Decoder,
    topics: &[String],
    options: RebuildOptions,
    mut report: impl FnMut(&Progress),
) -> Result<Switched> {
    let (shadow, generation) = PostgresStore::open_shadow(database_url, decoder).await?;
    tracing::info!(generation, ?topics, "rebuilding into a new generation");
    let watermarks = Watermarks::new(bootstrap)?;
    let outcome = async {
        let (replay, starts) =
            Replay::start(bootstrap, topics, &watermarks, options, generation).await?;
        for (topic, starts) in &starts {
            shadow.start_at(topic, starts).await?;
        }
        replay.run(&shadow, &watermarks, &mut report).await
    }
    .await;
    match outcome {
        Ok(switched) => Ok(switched),
        Err(e) => {
            tracing::error!(error = %e, generation, "rebuild failed; dropping its generation");
            let _ = shadow.abandon().await;
            Err(e)
        }
    }
}

struct Replay {
    consumer: StreamConsumer,
    topics: Vec<String>,
    options: RebuildOptions,
    generation: i64,
    started: Instant,
    records: u64,
}

impl Replay {
    async fn start(
        bootstrap: &str,
        topics: &[String],
        watermarks: &Watermarks,
        options: RebuildOptions,
        generation: i64,
    ) -> Result<(Self, TopicOffsets)> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("ackgate-rebuild-{generation}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let mut starts = TopicOffsets::new();
        let mut assignment = TopicPartitionList::new();
        for topic in topics {
            let ranges = watermarks.ranges(topic).await?;
            let found =
                match options.start {
                    StartAt::Timestamp(at) => Some(consumer.offsets_for_times(
                        timestamps(topic, &ranges, at)?,
                        Duration::from_secs(10),
                    )?),
                    _ => None,
                };
            let of_topic = starts.entry(topic.clone()).or_default();
            for (partition, low, high) in ranges {
                let start = match options.start {
                    StartAt::Beginning => low,
                    StartAt::Offset(offset) => offset.clamp(low, high),
                    StartAt::Timestamp(_) => match found
                        .as_ref()
                        .and_then(|f| f.find_partition(topic, partition))
                        .map(|e| e.offset())
                    {
                        Some(Offset::Offset(offset)) => offset.clamp(low, high),
                        _ => high,
                    },
                };
                of_topic.insert(partition, start);
                assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
            }
        }
        consumer.assign(&assignment)?;
        let replay = Self {
            consumer,
            topics: topics.to_vec(),
            options,
            generation,
            started: Instant::now(),
            records: 0,
        };
        Ok((replay, starts))
    }

    /// Replays until the shadow has reached every topic's end, then switches.
    async fn run(
        mut self,
        shadow: &PostgresStore,
        watermarks: &Watermarks,
        report: &mut impl FnMut(&Progress),
    ) -> Result<Switched> {
        let mut last_report = Instant::now();
        loop {
            let batch = self.next_batch().await?;
            if batch.is_empty() {
                self.move_past_markers(shadow).await?;
            } else {
                self.apply(shadow, &batch).await?;
            }
            let check = batch.is_empty() || last_report.elapsed() >= self.options.progress_every;
            if !check {
                continue;
            }
            let mut lag = 0;
            for topic in &self.topics {
                lag += remaining(
                    &watermarks.high(topic).await?,
                    &shadow.offsets(topic).await?,
                );
            }
            report(&self.progress("replaying", lag, None));
            last_report = Instant::now();
            if lag == 0 {
                break;
            }
        }
        let policy = self.options.policy;
        let topics = self.topics.clone();
        let switched = shadow
            .switch(&topics, policy, async || {
                let records = self.next_batch().await?;
                Ok((records, self.positions()))
            })
            .await?;
        report(&self.progress("switched", 0, Some(switched.previous)));
        Ok(switched)
    }

    /// Applies `batch` to the copy, one topic's run of records at a time. The copy is read
    /// in sequence from its own offsets, so a gap can only be records the reader skipped
    /// (transaction markers, aborted records): the copy's offset moves past it.
    async fn apply(&self, shadow: &PostgresStore, batch: &[SourceRecord]) -> Result<()> {
        for run in batch.chunk_by(|a, b| a.position.topic == b.position.topic) {
            loop {
                match shadow.apply_batch(run, self.options.policy).await {
                    Err(Error::Gap {
                        topic,
                        partition,
                        found,
                        ..
                    }) => shadow.advance(&topic, partition, found).await?,
                    outcome => {
                        outcome?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// With nothing left to read, moves the copy's offsets to the reader's positions, which
    /// are past the markers that end a transactional topic.
    async fn move_past_markers(&self, shadow: &PostgresStore) -> Result<()> {
        for (topic, positions) in self.positions() {
            let applied = shadow.offsets(&topic).await?;
            for (partition, at) in positions {
                if applied.get(&partition).is_none_or(|next| *next < at) {
                    shadow.advance(&topic, partition, at).await?;
                }
            }
        }
        Ok(())
    }

    /// The reader's position on each partition of each topic.
    fn positions(&self) -> TopicOffsets {
        let Ok(positions) = self.consumer.position() else {
            return TopicOffsets::new();
        };
        let mut by_topic = TopicOffsets::new();
        for element in positions.elements() {
            if let Offset::Offset(at) = element.offset() {
                by_topic
                    .entry(element.topic().to_owned())
                    .or_default()
                    .insert(element.partition(), at);
            }
        }
        by_topic
    }

    /// Up to `batch_max` records, waiting at most 200 ms for the first.
    async fn next_batch(&mut self) -> Result<Vec<SourceRecord>> {
        let mut batch = Vec::new();
        let wait = Duration::from_millis(200);
        while batch.len() < self.options.batch_max {
            let patience = if batch.is_empty() {
                wait
            } else {
                Duration::ZERO
            };
            match tokio::time::timeout(patience, self.consumer.recv()).await {
                Ok(Ok(record)) => batch.push(source_record(&record)),
                Ok(Err(e)) => return Err(Error::Kafka(e)),
                Err(_) => break,
            }
        }
        self.records += batch.len() as u64;
        Ok(batch)
    }

    fn progress(&self, phase: &'static str, remaining_lag: i64, previous: Option<i64>) -> Progress {
        let seconds = self.started.elapsed().as_secs_f64().max(f64::EPSILON);
        Progress {
            phase,
            generation: self.generation,
            records: self.records,
            events_per_second: (self.records as f64 / seconds).round(),
            remaining_lag,
            previous,
        }
    }
}

fn timestamps(topic: &str, ranges: &[(i32, i64, i64)], at: i64) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for (partition, _, _) in ranges {
        list.add_partition_offset(topic, *partition, Offset::Offset(at))?;
    }
    Ok(list)
}

/// Records between the shadow's offsets and Kafka's high watermarks.
fn remaining(high: &[(i32, i64)], applied: &Offsets) -> i64 {
    high.iter()
        .map(|(partition, end)| (end - applied.get(partition).copied().unwrap_or_default()).max(0))
        .sum()
}

//! Operator commands of `projections`: rebuild the PostgreSQL read models without query
//! downtime, and list or re-drive parked (dead-lettered) events. Output is one JSON object
//! per line on stdout (logs go to stderr), so it pipes into `jq`.
//!
//! Dead-letter commands go over NATS to the running projections (any instance, either
//! store), so they act on the same store the service reads; the rebuild talks to Kafka and
//! PostgreSQL directly.

use std::{io::Write, time::Duration};

use contracts::{
    EventPosition, Names,
    deadletter::{
        DeadLetterList, DeadLetterListQuery, DiscardReport, DiscardRequest, RedriveReport,
        RedriveRequest,
    },
};
use runtime::nats;
use serde::{Serialize, de::DeserializeOwned};
use time::OffsetDateTime;

use crate::{
    Error, Result, Settings,
    config::StoreKind,
    rebuild::{self, RebuildOptions, StartAt},
    store::ApplyPolicy,
    timeline::{PostgresTimeline, recorder},
};

/// An operator command.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Operation {
    /// Rebuild the PostgreSQL read models from the topic into a new generation, then switch
    /// to it atomically and drop the old one. Queries keep being answered throughout.
    Rebuild(RebuildArgs),
    /// The command timelines.
    #[command(subcommand)]
    Timeline(TimelineCommand),
    /// Events the projections parked because they could not apply them.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
}

/// Timeline commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TimelineCommand {
    /// Store again every step the timeline's stream still keeps (its retention), e.g. after
    /// the PostgreSQL timeline tables were lost. Steps already stored stay as they are;
    /// safe while the projections run.
    Rebuild {
        /// Only steps published at or after this RFC 3339 time.
        #[arg(long, value_parser = rfc3339)]
        from_timestamp: Option<OffsetDateTime>,
    },
}

/// Where a rebuild starts, and how often it reports.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// Start every partition at this offset instead of the beginning.
    #[arg(long, conflicts_with = "from_timestamp")]
    pub from_offset: Option<i64>,
    /// Start at the first record at or after this RFC 3339 time (the broker's ListOffsets
    /// by timestamp decides where that is).
    #[arg(long, value_parser = rfc3339)]
    pub from_timestamp: Option<OffsetDateTime>,
    /// How often to print progress (milliseconds).
    #[arg(long, default_value = "1000", value_parser = runtime::millis)]
    pub progress_every_ms: Duration,
}

/// Dead-letter commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DeadLetterCommand {
    /// List parked events in source order.
    List {
        /// Only this key's (aggregate id's) events.
        #[arg(long)]
        key: Option<String>,
    },
    /// Give up one parked event (it will never apply), for a reason recorded on the
    /// dead-letter topic and in its command's timeline; later events of its key stay parked
    /// until re-driven (`--redrive` does it at once).
    Discard {
        /// The event's source position, `topic:partition:offset` (as `list` shows it).
        #[arg(value_parser = position)]
        source: EventPosition,
        /// Why it is given up.
        #[arg(long)]
        reason: String,
        /// Then re-drive the rest of its key.
        #[arg(long)]
        redrive: bool,
    },
    /// Re-apply parked events after a fix, each key's in source order; a key stays blocked
    /// from the first event that fails again.
    Redrive {
        /// Keys (aggregate ids) to re-drive.
        #[arg(required_unless_present = "all")]
        keys: Vec<String>,
        /// Re-drive every parked key.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
}

fn position(token: &str) -> Result<EventPosition, String> {
    EventPosition::parse_token(token)
}

fn rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())
}

/// Runs `operation` against the projections, topic and admin subjects of the settings'
/// namespace, writing JSON lines to `out`.
pub async fn run(settings: &Settings, operation: Operation, out: &mut impl Write) -> Result<()> {
    let names = settings.common.names();
    match operation {
        Operation::Rebuild(RebuildArgs {
            from_offset,
            from_timestamp,
            progress_every_ms,
        }) => {
            let start = match (from_offset, from_timestamp) {
                (Some(offset), _) => StartAt::Offset(offset),
                (None, Some(at)) => StartAt::Timestamp(
                    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or_default(),
                ),
                (None, None) => StartAt::Beginning,
            };
            rebuild_postgres(settings, &names, start, progress_every_ms, out).await
        }
        Operation::Timeline(TimelineCommand::Rebuild { from_timestamp }) => {
            rebuild_timeline(settings, &names, from_timestamp, out).await
        }
        Operation::DeadLetters(DeadLetterCommand::List { key }) => {
            let subject = &names.admin_dead_letters_list;
            let list: DeadLetterList =
                admin(settings, subject, &DeadLetterListQuery { key }).await?;
            list.parked.iter().try_for_each(|p| emit(out, p))
        }
        Operation::DeadLetters(DeadLetterCommand::Redrive { keys, all }) => {
            let subject = &names.admin_dead_letters_redrive;
            let report: RedriveReport =
                admin(settings, subject, &RedriveRequest { keys, all }).await?;
            emit(out, &report)
        }
        Operation::DeadLetters(DeadLetterCommand::Discard {
            source,
            reason,
            redrive,
        }) => {
            let subject = &names.admin_dead_letters_discard;
            let request = DiscardRequest {
                source,
                reason,
                redrive,
            };
            request.validate().map_err(Error::Store)?;
            let report: DiscardReport = admin(settings, subject, &request).await?;
            emit(out, &report)
        }
    }
}

async fn rebuild_postgres(
    settings: &Settings,
    names: &Names,
    start: StartAt,
    progress_every: Duration,
    out: &mut impl Write,
) -> Result<()> {
    if settings.store != StoreKind::Postgres {
        return Err(Error::Store(
            "rebuild works on the PostgreSQL store (--store postgres); the in-memory store is rebuilt on every start".to_owned(),
        ));
    }
    let options = RebuildOptions {
        start,
        policy: ApplyPolicy {
            attempts: settings.apply_attempts.max(1),
            backoff: settings.apply_backoff,
        },
        batch_max: settings.batch_max.max(1),
        progress_every,
    };
    let mut failed = None;
    let catalog = std::sync::Arc::new(settings.common.catalog()?);
    let topics = crate::startup::event_topics(&catalog, names);
    rebuild::rebuild(
        &settings.kafka.kafka_bootstrap,
        &settings.database_url,
        crate::event::Decoder::new(catalog),
        &topics,
        options,
        |progress| {
            if let Err(e) = emit(out, progress) {
                failed.get_or_insert(e);
            }
        },
    )
    .await?;
    failed.map_or(Ok(()), Err)
}

/// Replays the timeline's stream into the PostgreSQL timeline, printing progress.
async fn rebuild_timeline(
    settings: &Settings,
    names: &Names,
    from: Option<OffsetDateTime>,
    out: &mut impl Write,
) -> Result<()> {
    let store = PostgresTimeline::open(&settings.database_url).await?;
    let client = nats::connect(&settings.common.nats_url, "ackgate-timeline-rebuild").await?;
    let mut failed = None;
    let done = recorder::replay(&client, names, &store, from, |progress| {
        if let Err(e) = emit(out, &progress) {
            failed.get_or_insert(e);
        }
    })
    .await?;
    failed.map_or(Ok(()), Err)?;
    emit(
        out,
        &serde_json::json!({ "done": true, "stored": done.stored }),
    )
}

/// Sends an admin request to the running projections and decodes the reply.
async fn admin<T: DeserializeOwned>(
    settings: &Settings,
    subject: &str,
    body: &impl Serialize,
) -> Result<T> {
    let client = nats::connect(&settings.common.nats_url, "ackgate-projections-ops").await?;
    nats::ask(&client, subject, body, Duration::from_secs(60))
        .await
        .map_err(|e| Error::NatsService(e.to_string()))
}

fn emit(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(value).map_err(|e| Error::Store(e.to_string()))?;
    writeln!(out, "{line}")?;
    Ok(())
}

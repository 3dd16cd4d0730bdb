//! `ackgate`: what support staff and operators run against a deployment, over the same
//! NATS subjects, buckets and topics as its services (the same `ACKGATE_*` settings).
//!
//! - `trace`, `timelines`: a command's timeline, and the search over timelines;
//! - `lag`: how far the projections are behind Kafka;
//! - `dlq`, `ledger`: the business-logic services' command dead-letter queue and
//!   idempotency ledger;
//! - `parked`, `rebuild`: the projections' parked events (list, re-drive, discard) and the
//!   rebuild of the PostgreSQL read models.
//!
//! Tables for people, `--json` for scripts; the dead-letter, ledger and rebuild commands
//! print one JSON object per line (pipe into `jq`).

mod error;
mod lag;
mod search;
mod trace;

use std::{io::Write, time::Duration};

use clap::Parser;
use runtime::{CommonArgs, KafkaArgs, millis, nats};

pub use error::{Error, Result};

/// The command line.
#[derive(Debug, Clone, Parser)]
#[command(name = "ackgate", version, about = "Ackgate support and operator tool")]
pub struct Cli {
    /// NATS, namespace, catalog.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Kafka connection (for `ledger rebuild` and `rebuild`).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The projections' PostgreSQL (for `rebuild`).
    #[arg(
        long,
        global = true,
        env = "ACKGATE_DATABASE_URL",
        default_value = projections::config::DEFAULT_DATABASE_URL
    )]
    pub database_url: String,
    /// Longest wait for a running service's answer (milliseconds).
    #[arg(long = "timeout-ms", global = true, env = "ACKGATE_CLI_TIMEOUT_MS", default_value = "10000", value_parser = millis)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// An `ackgate` command.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print a command's timeline (every step of every request that carried it), by a
    /// correlationId or a commandId.
    Trace {
        /// A correlationId, or a commandId (Idempotency-Key).
        id: String,
        /// Print the timeline as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Find commands by commandId, aggregate, type, time or failure, newest first.
    Timelines(search::SearchArgs),
    /// How far the projections are behind Kafka, per partition.
    Lag {
        /// Print the projections' stats as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The command dead-letter queue: commands Kafka did not take.
    #[command(subcommand)]
    Dlq(bl_services::ops::DlqCommand),
    /// The idempotency ledger.
    #[command(subcommand)]
    Ledger(bl_services::ops::LedgerCommand),
    /// Events the projections parked: list, re-drive, discard.
    #[command(subcommand)]
    Parked(projections::ops::DeadLetterCommand),
    /// Rebuild the PostgreSQL read models from Kafka into a new generation, then switch to
    /// it atomically; queries keep being answered throughout.
    Rebuild(projections::ops::RebuildArgs),
    /// The command timelines' store.
    #[command(subcommand)]
    Timeline(projections::ops::TimelineCommand),
}

/// Runs `cli`'s command, writing its results to `out`.
pub async fn run(cli: Cli, out: &mut impl Write) -> Result<()> {
    let names = cli.common.names();
    match cli.command.clone() {
        Command::Trace { id, json } => {
            let client = connect(&cli).await?;
            let timeline = trace::find(&client, &names, &id, cli.timeout).await?;
            trace::print(&timeline, json, out)
        }
        Command::Timelines(args) => {
            let client = connect(&cli).await?;
            search::run(&client, &names, args, cli.timeout, out).await
        }
        Command::Lag { json } => {
            let client = connect(&cli).await?;
            lag::run(&client, &names, json, cli.timeout, out).await
        }
        Command::Dlq(command) => bl_ops(&cli, bl_services::ops::Operation::Dlq(command), out).await,
        Command::Ledger(command) => {
            bl_ops(&cli, bl_services::ops::Operation::Ledger(command), out).await
        }
        Command::Parked(command) => {
            let operation = projections::ops::Operation::DeadLetters(command);
            projections_ops(&cli, operation, out).await
        }
        Command::Rebuild(args) => {
            projections_ops(&cli, projections::ops::Operation::Rebuild(args), out).await
        }
        Command::Timeline(command) => {
            projections_ops(&cli, projections::ops::Operation::Timeline(command), out).await
        }
    }
}

/// Writes `value` as pretty JSON, for `--json`.
fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Usage(format!("the answer does not serialize: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(())
}

async fn connect(cli: &Cli) -> Result<async_nats::Client> {
    Ok(nats::connect(&cli.common.nats_url, "ackgate-cli").await?)
}

/// Runs a business-logic operator command with the services' own settings (from the same
/// environment), on this command line's NATS, namespace and Kafka.
async fn bl_ops(
    cli: &Cli,
    operation: bl_services::ops::Operation,
    out: &mut impl Write,
) -> Result<()> {
    let mut settings = bl_services::Settings::try_parse_from(["bl-service"])
        .map_err(|e| Error::Usage(format!("business-logic settings: {e}")))?;
    settings.common = cli.common.clone();
    settings.kafka = cli.kafka.clone();
    Ok(bl_services::ops::run(&settings, operation, out).await?)
}

/// Runs a projections operator command with the projections' own settings (from the same
/// environment), on this command line's NATS, namespace, Kafka and PostgreSQL.
async fn projections_ops(
    cli: &Cli,
    operation: projections::ops::Operation,
    out: &mut impl Write,
) -> Result<()> {
    let mut settings = projections::Settings::try_parse_from(["projections"])
        .map_err(|e| Error::Usage(format!("projections settings: {e}")))?;
    settings.common = cli.common.clone();
    settings.kafka = cli.kafka.clone();
    settings.database_url = cli.database_url.clone();
    settings.store = projections::StoreKind::Postgres;
    Ok(projections::ops::run(&settings, operation, out).await?)
}

//! `ackgate timelines`: find commands, newest first.

use std::{io::Write, time::Duration};

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use contracts::{
    Names,
    timeline::{TimelineSearch, TimelineSearchResults},
};
use runtime::nats;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{Error, Result, trace::kebab};

/// The search's filters.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// Only this command (its Idempotency-Key).
    #[arg(long)]
    command_id: Option<String>,
    /// Only commands on this aggregate (an officer's badge number, say).
    #[arg(long)]
    aggregate_id: Option<String>,
    /// Only commands of this type (`RegisterOfficer`).
    #[arg(long)]
    command_type: Option<String>,
    /// Only commands with a step at or after this RFC 3339 time.
    #[arg(long, value_parser = rfc3339)]
    from: Option<OffsetDateTime>,
    /// Only commands with a step before this RFC 3339 time.
    #[arg(long, value_parser = rfc3339)]
    to: Option<OffsetDateTime>,
    /// Only commands with a failed step (refused, failed, dead-lettered, parked).
    #[arg(long)]
    failed: bool,
    /// At most this many (1-100).
    #[arg(long, default_value_t = TimelineSearch::DEFAULT_LIMIT)]
    limit: u32,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())
}

/// Searches and prints.
pub(crate) async fn run(
    client: &async_nats::Client,
    names: &Names,
    args: SearchArgs,
    timeout: Duration,
    out: &mut impl Write,
) -> Result<()> {
    let search = TimelineSearch {
        command_id: args.command_id,
        aggregate_id: args.aggregate_id,
        command_type: args.command_type,
        from: args.from,
        to: args.to,
        failed: args.failed,
        limit: Some(args.limit),
    };
    search.validate().map_err(Error::Usage)?;
    let subject = &names.query_timeline_search;
    let found: TimelineSearchResults = nats::ask(client, subject, &search, timeout).await?;
    if args.json {
        return crate::print_json(out, &found);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header([
        "started (UTC)",
        "correlationId",
        "command",
        "aggregate",
        "outcome",
        "failure",
        "requests",
    ]);
    for item in &found.items {
        let known = |value: &Option<String>| value.clone().unwrap_or_default();
        table.add_row([
            item.started_at.format(&Rfc3339).unwrap_or_default(),
            item.correlation_id.clone(),
            known(&item.command.command_type),
            known(&item.command.aggregate_id),
            kebab(&item.outcome),
            known(&item.failure),
            item.attempts.to_string(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(out, "{} command(s)", found.items.len())?;
    Ok(())
}

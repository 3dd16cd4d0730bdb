//! `ackgate lag`: how far the projections are behind Kafka, per partition, and how many
//! timeline notices wait to be stored.

use std::{io::Write, time::Duration};

use async_nats::jetstream;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use contracts::{Names, status::ProjectionStats};
use runtime::nats;

use crate::Result;

/// Asks a projections instance for its stats and prints their lag.
pub(crate) async fn run(
    client: &async_nats::Client,
    names: &Names,
    json: bool,
    timeout: Duration,
    out: &mut impl Write,
) -> Result<()> {
    let subject = &names.query_projection_stats;
    let stats: ProjectionStats =
        nats::ask(client, subject, &serde_json::json!({}), timeout).await?;
    if json {
        return crate::print_json(out, &stats);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header([
        "topic",
        "partition",
        "published",
        "projected",
        "lag",
    ]);
    for p in &stats.partitions {
        table.add_row([
            p.topic.clone(),
            p.partition.to_string(),
            p.published.to_string(),
            p.projected.to_string(),
            p.lag.to_string(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "{} record(s) behind ({:.1} s); {} event(s) parked; store: {}",
        stats.lag_records, stats.lag_seconds, stats.parked_events, stats.store
    )?;
    if let Some(pending) = timeline_pending(client, names).await {
        writeln!(out, "timeline: {pending} notice(s) waiting to be stored")?;
    }
    Ok(())
}

/// Notices the shared timeline consumer has not stored yet (PostgreSQL-backed projections
/// only; `None` when there is no such consumer).
async fn timeline_pending(client: &async_nats::Client, names: &Names) -> Option<u64> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(&names.timeline_stream).await.ok()?;
    let info = stream.consumer_info(&names.timeline_consumer).await.ok()?;
    Some(info.num_pending + info.num_ack_pending as u64)
}

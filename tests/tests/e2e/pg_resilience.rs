//! PostgreSQL read models under stress: a projection SIGKILLed mid-batch, two instances
//! through a rebalance, and a zero-downtime rebuild under queries, whose result is the same
//! read models every time.

use std::{
    process::Command,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use e2e_tests::{brokers::Process, events::EventWriter, eventually};
use reqwest::StatusCode;
use tokio_postgres::Client;

use crate::pg_read_models::{active_schema, count, database, postgres_stack, wait_for_applied};

/// Writes `n` registrations, badges `<prefix>-0000`..; returns when Kafka has them all.
async fn write_registrations(writer: &EventWriter, prefix: &str, n: usize) {
    let writes = (0..n).map(|i| {
        let badge = format!("{prefix}-{i:04}");
        async move {
            writer
                .register(&format!("cmd-{badge}"), &badge)
                .await
                .expect("writes")
        }
    });
    futures::future::join_all(writes).await;
}

/// Every event applied once: one history row per event, no duplicates, offsets at the end.
async fn assert_applied_exactly_once(db: &Client, stack: &e2e_tests::TestStack, events: i64) {
    let schema = active_schema(db).await;
    assert_eq!(count(db, "applied_events").await, events);
    assert_eq!(
        count(db, "officer_history").await,
        events,
        "each event's effect exactly once"
    );
    assert_eq!(count(db, "officers").await, events);
    let row = db
        .query_one(
            &format!(
                "SELECT coalesce(sum(next_offset), 0)::bigint FROM {schema}.partition_offsets"
            ),
            &[],
        )
        .await
        .expect("offsets");
    assert_eq!(
        row.get::<_, i64>(0),
        stack.topic_end_offsets().await,
        "offsets at the topic's end"
    );
    let duplicates = db
        .query_opt(
            &format!("SELECT value FROM {schema}.counters WHERE name = 'duplicate_records'"),
            &[],
        )
        .await
        .expect("counters");
    assert_eq!(duplicates.map_or(0, |r| r.get::<_, i64>(0)), 0);
}

fn projections_process(stack: &e2e_tests::TestStack, log: &std::path::Path) -> Process {
    let settings = stack.projections_settings();
    let namespace = settings.common.namespace.to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ackgate-fault"));
    command.args(["service", "projections"]).envs([
        ("ACKGATE_NATS_URL", settings.common.nats_url.as_str()),
        ("ACKGATE_NAMESPACE", namespace.as_str()),
        (
            "ACKGATE_KAFKA_BOOTSTRAP",
            settings.kafka.kafka_bootstrap.as_str(),
        ),
        ("ACKGATE_STORE", "postgres"),
        ("ACKGATE_DATABASE_URL", settings.database_url.as_str()),
        ("ACKGATE_PROJECTIONS_HTTP_ADDR", "127.0.0.1:0"),
        ("ACKGATE_PROJECTIONS_GROUP", "e2e-crash"),
        ("ACKGATE_BATCH_MAX", "200"),
        ("RUST_LOG", "info,rdkafka=warn"),
    ]);
    Process::spawn(&mut command, log.to_owned()).expect("projections start")
}

#[tokio::test]
async fn a_projection_killed_mid_batch_neither_loses_nor_doubles_an_event() {
    const EVENTS: i64 = 6000;
    let mut stack = postgres_stack(Duration::from_secs(2)).await;
    stack.stop_projections().await;
    let db = database(&stack).await;
    let writer = stack.event_writer().expect("producer");
    write_registrations(&writer, "K", usize::try_from(EVENTS).expect("fits")).await;
    let logs = tempfile::tempdir().expect("log dir");
    let log = logs.path().join("projections.log");
    for kill in 1..=3 {
        let mut process = projections_process(&stack, &log);
        let floor = count(&db, "applied_events").await;
        // Kill while it is applying: after it moved past where it started, before the end.
        eventually(
            Duration::from_secs(60),
            "the projection to make progress",
            || async {
                let applied = count(&db, "applied_events").await;
                (applied > floor + 300 || applied == EVENTS).then_some(())
            },
        )
        .await;
        let applied = count(&db, "applied_events").await;
        process.kill();
        assert!(
            applied < EVENTS,
            "kill {kill} came after the end ({applied}); the test needs more events"
        );
    }
    let _survivor = projections_process(&stack, &log);
    wait_for_applied(&db, EVENTS).await;
    assert_applied_exactly_once(&db, &stack, EVENTS).await;
    let server_log = stack.postgres.as_ref().expect("a postgres stack").log();
    assert!(
        server_log.contains("unexpected EOF on client connection with an open transaction"),
        "at least one kill landed inside a batch transaction"
    );
}

#[tokio::test]
async fn two_instances_share_partitions_through_a_rebalance_and_lose_nothing() {
    let mut stack = postgres_stack(Duration::from_secs(2)).await;
    let db = database(&stack).await;
    let writer = stack.event_writer().expect("producer");
    write_registrations(&writer, "R1", 1000).await;
    stack.start_projections().await.expect("second instance");
    write_registrations(&writer, "R2", 1000).await;
    wait_for_applied(&db, 2000).await;

    // Any instance answers any query: both serve from the same database.
    for i in 0..40 {
        let response = stack.get(&format!("/v1/officers/R1-{i:04}")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let served = stack
        .requests_per_instance(&stack.names.projections_service)
        .await;
    assert_eq!(served.len(), 2);
    assert!(
        served.iter().all(|n| *n > 0),
        "both instances answered: {served:?}"
    );

    let writing = write_registrations(&writer, "R3", 1000);
    let stopping = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stack.stop_projections_instance(0).await;
    };
    tokio::join!(writing, stopping);
    wait_for_applied(&db, 3000).await;
    assert_applied_exactly_once(&db, &stack, 3000).await;
}

/// Queries through the edge until `stop`, counting answers and failures.
async fn query_load(
    stack: &e2e_tests::TestStack,
    stop: &AtomicBool,
    answered: &AtomicU64,
    failed: &AtomicU64,
) {
    let paths = [
        "/v1/officers/Q-0007",
        "/v1/officers?limit=50&rank=sergeant",
        "/v1/officers/search?q=ana",
        "/v1/stats",
        "/v1/commands?commandId=cmd-Q-0003",
    ];
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let response = stack.get(paths[i % paths.len()]).await;
        if response.status() == StatusCode::OK {
            answered.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "failed query {}: {}",
                paths[i % paths.len()],
                response.text().await.unwrap_or_default()
            );
        }
        i += 1;
    }
}

/// Every table of a generation, as text, leaving out wall-clock times and serial numbers.
async fn dump(db: &Client) -> Vec<String> {
    let schema = active_schema(db).await;
    let queries = [
        format!(
            "SELECT badge_number || rank || hire_date || names::text || view::text FROM {schema}.officers ORDER BY 1"
        ),
        format!(
            "SELECT badge_number || entry::text FROM {schema}.officer_history ORDER BY badge_number, seq"
        ),
        format!(
            "SELECT correlation_id || command_id || (view - 'projectedAt')::text FROM {schema}.commands ORDER BY 1"
        ),
        format!("SELECT event_id::text FROM {schema}.applied_events ORDER BY 1"),
        format!(
            "SELECT topic || partition || ':' || next_offset FROM {schema}.partition_offsets ORDER BY 1"
        ),
        format!("SELECT name || value FROM {schema}.counters ORDER BY 1"),
        format!(
            "SELECT badge_number || observed_ns || event_id::text || view::text FROM {schema}.observations ORDER BY 1"
        ),
        format!("SELECT key || (event - 'parkedAt')::text FROM {schema}.parked_events ORDER BY 1"),
    ];
    let mut lines = Vec::new();
    for query in queries {
        for row in db.query(&query, &[]).await.expect("dumps") {
            lines.push(row.get::<_, String>(0));
        }
    }
    lines
}

async fn rebuild(stack: &e2e_tests::TestStack) -> Vec<serde_json::Value> {
    let operation = projections::ops::Operation::Rebuild(projections::ops::RebuildArgs {
        from_offset: None,
        from_timestamp: None,
        progress_every_ms: Duration::from_millis(200),
    });
    stack.projections_ops(operation).await.expect("rebuilds")
}

#[tokio::test]
async fn a_rebuild_under_queries_fails_none_and_always_yields_the_same_read_models() {
    let stack = postgres_stack(Duration::from_secs(2)).await;
    let db = database(&stack).await;
    let writer = stack.event_writer().expect("producer");
    write_registrations(&writer, "Q", 3000).await;
    writer.write("Q-0001", b"poison").await.expect("writes");
    // A second registration of a badge (superseded) and a re-produced duplicate.
    writer.register("cmd-late", "Q-0002").await.expect("writes");
    writer
        .register("cmd-Q-0005", "Q-0005")
        .await
        .expect("writes");
    wait_for_applied(&db, 3001).await;
    let (_, outcomes) = stack.officer_history("Q-0002").await;
    assert_eq!(outcomes, ["registered", "superseded"]);
    let before = active_schema(&db).await;

    let stop = AtomicBool::new(false);
    let (answered, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let load =
        futures::future::join_all((0..4).map(|_| query_load(&stack, &stop, &answered, &failed)));
    let work = async {
        let (progress, ()) = tokio::join!(rebuild(&stack), write_registrations(&writer, "W", 500));
        stop.store(true, Ordering::Relaxed);
        progress
    };
    let (_, progress) = tokio::join!(load, work);
    eprintln!(
        "rebuild under load: {} queries answered, {} failed; progress {progress:?}",
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no query failed during the rebuild"
    );
    assert!(
        answered.load(Ordering::Relaxed) > 20,
        "queries ran throughout"
    );
    let last = progress.last().expect("progress lines");
    assert_eq!(last["phase"], "switched");
    assert!(
        progress
            .iter()
            .any(|p| p["phase"] == "replaying" && p["eventsPerSecond"].as_f64() > Some(0.0))
    );
    let after = active_schema(&db).await;
    assert_ne!(before, after, "switched to a new generation");
    let old_exists = db
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&before],
        )
        .await
        .expect("catalog");
    assert_eq!(
        old_exists.get::<_, i64>(0),
        0,
        "the old generation was dropped"
    );
    wait_for_applied(&db, 3501).await;
    assert_eq!(count(&db, "officer_history").await, 3501);
    assert_eq!(count(&db, "officers").await, 3500);
    assert_eq!(
        count(&db, "parked_events").await,
        1,
        "the poison event is parked again, once"
    );

    let first = dump(&db).await;
    let progress = rebuild(&stack).await;
    assert_eq!(progress.last().expect("progress")["phase"], "switched");
    assert_eq!(
        dump(&db).await,
        first,
        "a rebuild of the same topic yields identical read models"
    );
}

#[tokio::test]
async fn a_rebuild_from_an_offset_or_a_time_holds_only_the_later_events() {
    let stack = postgres_stack(Duration::from_secs(2)).await;
    let db = database(&stack).await;
    let writer = stack.event_writer().expect("producer");
    write_registrations(&writer, "E", 30).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_registrations(&writer, "L", 30).await;
    wait_for_applied(&db, 60).await;
    let per_partition = db
        .query(
            &format!(
                "SELECT next_offset FROM {}.partition_offsets",
                active_schema(&db).await
            ),
            &[],
        )
        .await
        .expect("offsets");
    let skipped: i64 = per_partition
        .iter()
        .map(|r| r.get::<_, i64>(0).min(5))
        .sum();

    let from_offset = projections::ops::Operation::Rebuild(projections::ops::RebuildArgs {
        from_offset: Some(5),
        from_timestamp: None,
        progress_every_ms: Duration::from_millis(200),
    });
    stack.projections_ops(from_offset).await.expect("rebuilds");
    assert_eq!(
        count(&db, "applied_events").await,
        60 - skipped,
        "each partition from offset 5 on"
    );

    let from_time = projections::ops::Operation::Rebuild(projections::ops::RebuildArgs {
        from_offset: None,
        from_timestamp: Some(since),
        progress_every_ms: Duration::from_millis(200),
    });
    stack.projections_ops(from_time).await.expect("rebuilds");
    assert_eq!(
        count(&db, "applied_events").await,
        30,
        "only the events written after the time"
    );
    assert_eq!(
        stack.get("/v1/officers/E-0001").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stack.get("/v1/officers/L-0001").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_store_that_lost_its_last_commits_is_refilled_from_kafka() {
    let stack = postgres_stack(Duration::from_secs(2)).await;
    let db = database(&stack).await;
    let writer = stack.event_writer().expect("producer");
    write_registrations(&writer, "G", 300).await;
    wait_for_applied(&db, 300).await;
    // What a restore from backup or a failover to a lagging replica does: the last commits
    // of a partition are gone, offsets included, while the projection runs on.
    let schema = active_schema(&db).await;
    let lost = db
        .query_one(
            &format!(
                "WITH gone AS (
                    SELECT entry->>'eventId' AS id, badge_number FROM {schema}.officer_history
                    WHERE (entry->'event'->>'partition')::int = 0
                    ORDER BY (entry->'event'->>'offset')::bigint DESC LIMIT 10),
                 e AS (DELETE FROM {schema}.applied_events WHERE event_id::text IN (SELECT id FROM gone)),
                 h AS (DELETE FROM {schema}.officer_history WHERE badge_number IN (SELECT badge_number FROM gone)),
                 o AS (DELETE FROM {schema}.officers WHERE badge_number IN (SELECT badge_number FROM gone)),
                 c AS (DELETE FROM {schema}.commands WHERE view->>'aggregateId' IN (SELECT badge_number FROM gone)),
                 p AS (UPDATE {schema}.partition_offsets SET next_offset = next_offset - 10 WHERE partition = 0)
                 SELECT count(*) FROM gone"
            ),
            &[],
        )
        .await
        .expect("loses the last commits");
    assert_eq!(lost.get::<_, i64>(0), 10);
    assert_eq!(count(&db, "officers").await, 290);

    write_registrations(&writer, "H", 300).await;
    wait_for_applied(&db, 600).await;
    assert_applied_exactly_once(&db, &stack, 600).await;
}

#[tokio::test]
async fn a_topic_holding_both_versions_and_every_lifecycle_event_rebuilds_to_the_live_read_models()
{
    use e2e_tests::stack::{event_position, observation, officer};
    use serde_json::json;
    let stack = postgres_stack(Duration::from_secs(2)).await;
    let db = database(&stack).await;
    let mut v2 = officer("E-1002");
    v2["phone"] = json!("+1 314 555 0142");
    v2["precinct"] = json!("Central");
    let v2 = serde_json::to_vec(&v2).expect("json");
    let sent = [
        stack.register(&officer("E-1001"), &[]).await,
        stack
            .post_raw("/v1/officers", v2, "application/json; version=2", &[])
            .await,
        stack
            .send(
                "/v1/officers/rank-changes",
                &json!({ "badgeNumber": "E-1001", "rank": "captain" }),
                &[],
            )
            .await,
        stack
            .send(
                "/v1/officers/suspensions",
                &json!({ "badgeNumber": "E-1002", "reason": "Review." }),
                &[],
            )
            .await,
        stack
            .send(
                "/v1/officers/contact-changes",
                &json!({ "badgeNumber": "E-1002", "email": "e2@example.org" }),
                &[],
            )
            .await,
        stack
            .send(
                "/v1/officers/retirements",
                &json!({ "badgeNumber": "E-1001", "retiredOn": "2026-06-30" }),
                &[],
            )
            .await,
        stack
            .send(
                "/v1/observations",
                &observation("E-1002", "2026-11-30T08:00:00Z"),
                &[],
            )
            .await,
    ];
    let mut positions = Vec::new();
    for response in &sent {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        positions.push(event_position(response));
    }
    for position in &positions {
        let answered = stack.get_at("/v1/stats", position).await;
        assert_eq!(answered.status(), StatusCode::OK);
    }
    // Offsets are bookkeeping, not read models: the live consumer has rows for partitions it
    // found empty and has stepped past the last commit marker, which the copy reaches only
    // when it next reads the partition.
    let read_models = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.contains(".ackgate.") || l.contains('{'))
            .collect()
    };
    let live = read_models(dump(&db).await);
    let retired: serde_json::Value = stack
        .get("/v1/officers/E-1001")
        .await
        .json()
        .await
        .expect("officer");
    assert_eq!(
        (retired["status"].as_str(), retired["version"].as_i64()),
        (Some("retired"), Some(3))
    );
    let v2_officer: serde_json::Value = stack
        .get("/v1/officers/E-1002")
        .await
        .json()
        .await
        .expect("officer");
    assert_eq!(v2_officer["precinct"], "Central");
    assert_eq!(v2_officer["status"], "suspended");

    let progress = rebuild(&stack).await;
    assert_eq!(progress.last().expect("progress")["phase"], "switched");
    assert_eq!(
        read_models(dump(&db).await),
        live,
        "a rebuild gives what live application gave"
    );
}

//! The PostgreSQL store against real brokers and a real PostgreSQL: read-your-writes held
//! back by a lock, poison events parked per key and re-driven after a fix, and what the
//! read models hold, table by table.

use std::time::{Duration, Instant};

use contracts::headers::{http, message};
use e2e_tests::{StackOptions, TestStack, eventually, kafka, postgres, stack::event_position};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_postgres::Client;

/// The stack with read models in its own PostgreSQL.
pub(crate) async fn postgres_stack(read_wait_max: Duration) -> TestStack {
    TestStack::start(StackOptions {
        postgres: true,
        read_wait_max,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts")
}

/// A connection to the stack's read-model database.
pub(crate) async fn database(stack: &TestStack) -> Client {
    let url = stack.database_url.as_deref().expect("a postgres stack");
    postgres::connect(url).await.expect("connects")
}

/// The schema of the active generation.
pub(crate) async fn active_schema(db: &Client) -> String {
    let row = db
        .query_one("SELECT generation FROM ackgate_projections.active", &[])
        .await
        .expect("an active generation");
    format!("ackgate_rm_{}", row.get::<_, i64>(0))
}

/// `SELECT count(*)` of a table of the active generation.
pub(crate) async fn count(db: &Client, table: &str) -> i64 {
    let schema = active_schema(db).await;
    let row = db
        .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
        .await
        .expect("counts");
    row.get(0)
}

/// Waits until the active generation holds `n` applied events.
pub(crate) async fn wait_for_applied(db: &Client, n: i64) {
    eventually(
        Duration::from_secs(60),
        &format!("{n} applied events"),
        || async { (count(db, "applied_events").await == n).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_read_your_writes_query_waits_for_its_position_and_says_not_yet_after_the_bound() {
    let stack = postgres_stack(Duration::from_millis(1500)).await;
    let mut db = database(&stack).await;
    let hold = db.transaction().await.expect("begins");
    // The projections' writer reads this row FOR SHARE: while we hold it, nothing is applied.
    hold.execute("SELECT 1 FROM ackgate_projections.active FOR UPDATE", &[])
        .await
        .expect("locks");
    let accepted = stack
        .register(&e2e_tests::stack::officer("B-201"), &[])
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let position = event_position(&accepted);

    let started = Instant::now();
    let query = stack
        .http
        .get(format!(
            "{}/v1/officers/B-201?minPosition={position}",
            stack.edge_url()
        ))
        .send();
    let release = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        hold.rollback().await.expect("releases");
    };
    let (answer, ()) = tokio::join!(query, release);
    let answer = answer.expect("edge answers");
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "answered once applied, not 404"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "the query waited for the event"
    );

    let hold = db.transaction().await.expect("begins");
    hold.execute("SELECT 1 FROM ackgate_projections.active FOR UPDATE", &[])
        .await
        .expect("locks");
    let accepted = stack
        .register(&e2e_tests::stack::officer("B-202"), &[])
        .await;
    let position = event_position(&accepted);
    let not_yet = stack
        .http
        .get(format!("{}/v1/officers/B-202", stack.edge_url()))
        .header(http::MIN_POSITION, &position)
        .header("x-correlation-id", "corr-not-yet")
        .send()
        .await
        .expect("edge answers");
    assert_eq!(not_yet.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(not_yet.headers()["retry-after"], "1");
    let problem: Value = not_yet.json().await.expect("problem");
    assert_eq!(problem["code"], "not-yet-projected");
    assert_eq!(problem["correlationId"], "corr-not-yet");
    hold.rollback().await.expect("releases");
    let later = stack.get_at("/v1/officers/B-202", &position).await;
    assert_eq!(later.status(), StatusCode::OK);
}

/// Parked events as the operator command lists them: (key, offset-ordered codes).
async fn parked_codes(stack: &TestStack, key: &str) -> Vec<String> {
    let operation =
        projections::ops::Operation::DeadLetters(projections::ops::DeadLetterCommand::List {
            key: Some(key.to_owned()),
        });
    let lines = stack.projections_ops(operation).await.expect("lists");
    lines
        .iter()
        .map(|p| p["code"].as_str().expect("code").to_owned())
        .collect()
}

#[tokio::test]
async fn poison_events_are_parked_per_key_published_and_redriven_after_a_fix() {
    let stack = postgres_stack(Duration::from_secs(2)).await;
    let db = database(&stack).await;
    let writer = stack.event_writer().expect("producer");
    let schema = active_schema(&db).await;
    // A read-model bug, for P-5 only: its inserts are refused until the "fix" drops it.
    db.batch_execute(&format!(
        "ALTER TABLE {schema}.officers ADD CONSTRAINT bug CHECK (badge_number <> 'P-5')"
    ))
    .await
    .expect("adds the bug");

    let mut unknown = e2e_tests::events::registration_value("c2", "P-2");
    unknown["eventType"] = json!("OfficerPromoted");
    let mut future = e2e_tests::events::registration_value("c3", "P-3");
    future["schemaVersion"] = json!(9);
    let mut foreign = e2e_tests::events::registration_value("c4", "P-4");
    foreign["aggregateId"] = json!("P-40");
    let bytes = |v: &Value| serde_json::to_vec(v).expect("json");
    writer.write("P-1", b"{truncated").await.expect("writes");
    writer.register("c1", "P-1").await.expect("writes");
    writer.write("P-2", &bytes(&unknown)).await.expect("writes");
    writer.write("P-3", &bytes(&future)).await.expect("writes");
    writer.write("P-4", &bytes(&foreign)).await.expect("writes");
    writer.register("c5a", "P-5").await.expect("writes");
    writer.register("c5b", "P-5").await.expect("writes");
    writer.register("c6", "OK-6").await.expect("writes");

    let ok = eventually(
        Duration::from_secs(20),
        "the good event after the poison",
        || async {
            let response = stack.get("/v1/officers/OK-6").await;
            (response.status() == StatusCode::OK).then_some(())
        },
    );
    ok.await;
    eventually(Duration::from_secs(20), "seven parked events", || async {
        (count(&db, "parked_events").await == 7).then_some(())
    })
    .await;
    assert_eq!(
        parked_codes(&stack, "P-1").await,
        ["unparseable", "blocked-by-earlier-event"]
    );
    assert_eq!(parked_codes(&stack, "P-2").await, ["unknown-event-type"]);
    assert_eq!(
        parked_codes(&stack, "P-3").await,
        ["unsupported-schema-version"]
    );
    assert_eq!(parked_codes(&stack, "P-4").await, ["invalid-payload"]);
    assert_eq!(
        parked_codes(&stack, "P-5").await,
        ["handler-failed", "blocked-by-earlier-event"]
    );
    assert_eq!(
        stack.get("/v1/officers/P-1").await.status(),
        StatusCode::NOT_FOUND,
        "a blocked key applies nothing"
    );
    dead_letter_topic_names_every_source(&stack).await;

    db.batch_execute(&format!(
        "ALTER TABLE {schema}.officers DROP CONSTRAINT bug"
    ))
    .await
    .expect("the fix");
    let redrive =
        projections::ops::Operation::DeadLetters(projections::ops::DeadLetterCommand::Redrive {
            keys: vec!["P-5".to_owned(), "P-1".to_owned()],
            all: false,
        });
    let report = stack.projections_ops(redrive).await.expect("redrives");
    assert_eq!(report[0]["applied"], 2);
    assert_eq!(
        report[0]["stillParked"], 2,
        "P-1 is still unparseable, its next event still behind it"
    );
    assert_eq!(report[0]["releasedKeys"], json!(["P-5"]));
    let (p5, outcomes) = stack.officer_history("P-5").await;
    assert_eq!(p5["commandId"], "c5a", "the earlier event applied first");
    assert_eq!(outcomes, ["registered", "superseded"]);
    writer.register("c5c", "P-5").await.expect("writes");
    eventually(Duration::from_secs(20), "P-5 flowing again", || async {
        let p5: Value = stack.get("/v1/officers/P-5").await.json().await.ok()?;
        (p5["history"].as_array()?.len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        parked_codes(&stack, "P-1").await,
        ["unparseable", "blocked-by-earlier-event"]
    );
}

/// Every parked event reached the dead-letter topic with its source position and code.
async fn dead_letter_topic_names_every_source(stack: &TestStack) {
    let bootstrap = stack.kafka.bootstrap();
    let letters = eventually(Duration::from_secs(20), "seven dead letters", || {
        let (bootstrap, dlq_topic) = (
            bootstrap.clone(),
            contracts::topics::dead_letter_topic(&stack.names.officer_events),
        );
        async move {
            let records =
                tokio::task::spawn_blocking(move || kafka::read_all(&bootstrap, &dlq_topic))
                    .await
                    .ok()?
                    .ok()?;
            (records.len() >= 7).then_some(records)
        }
    })
    .await;
    let mut sources: Vec<(String, String)> = letters
        .iter()
        .map(|r| (r.key.clone(), r.headers[message::ERROR_CODE].clone()))
        .collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 7, "{sources:?}");
    for letter in &letters {
        assert_eq!(
            letter.headers[message::SOURCE_TOPIC],
            stack.names.officer_events
        );
        assert!(
            letter.headers[message::SOURCE_OFFSET]
                .parse::<i64>()
                .is_ok()
        );
        assert!(letter.headers.contains_key(message::SOURCE_PARTITION));
    }
}

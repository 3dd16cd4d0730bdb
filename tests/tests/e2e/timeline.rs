//! The command timeline: every step of a command, from every component and every request
//! that carried it, found by correlationId, commandId, aggregate, time and failure.

use contracts::headers::http;
use e2e_tests::{
    StackOptions, TestStack,
    cli::ackgate,
    postgres,
    stack::officer,
    timeline::{attempt_steps, step, step_names, timeline_until},
};
use reqwest::StatusCode;
use serde_json::Value;

async fn stack() -> TestStack {
    TestStack::start(StackOptions::default())
        .await
        .expect("stack starts")
}

#[tokio::test]
async fn an_accepted_command_and_its_replayed_retry_share_one_timeline() {
    let stack = stack().await;
    let first = [
        (http::IDEMPOTENCY_KEY, "tl-key-1"),
        (http::CORRELATION_ID, "tl-corr-1"),
    ];
    let retry = [
        (http::IDEMPOTENCY_KEY, "tl-key-1"),
        (http::CORRELATION_ID, "tl-corr-2"),
    ];
    let accepted = stack.register(&officer("B-7001"), &first).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let reply: Value = accepted.json().await.expect("json");
    stack.wait_until_projected("tl-corr-1").await;
    let replayed = stack.register(&officer("B-7001"), &retry).await;
    assert_eq!(replayed.headers()[http::IDEMPOTENT_REPLAYED], "true");

    let timeline = timeline_until(&stack, "tl-corr-2", "both attempts, projected", |t| {
        t["outcome"] == "projected" && attempt_steps(t, 2).len() == 5
    })
    .await;

    assert_eq!(timeline["correlationId"], "tl-corr-2");
    assert_eq!(timeline["commandId"], "tl-key-1");
    assert_eq!(timeline["commandType"], "RegisterOfficer");
    assert_eq!(timeline["aggregateId"], "B-7001");
    assert_eq!(timeline["attempts"], 2);
    // The projections may apply the event before the edge has answered: they run apart.
    let first_attempt = attempt_steps(&timeline, 1);
    let (request_path, projected): (Vec<_>, Vec<_>) = first_attempt
        .iter()
        .partition(|s| !s.starts_with("projections:"));
    assert_eq!(
        request_path,
        [
            "edge:received",
            "bl-service:requested",
            "bl-service:ledger",
            "bl-service:decided",
            "bl-service:appended",
            "bl-service:answered",
            "edge:answered",
        ],
        "{timeline:#}"
    );
    assert_eq!(projected, ["projections:applied"]);
    let appended_at = first_attempt
        .iter()
        .position(|s| s == "bl-service:appended");
    let applied_at = first_attempt
        .iter()
        .position(|s| s == "projections:applied");
    assert!(appended_at < applied_at, "{first_attempt:?}");
    assert_eq!(
        attempt_steps(&timeline, 2),
        [
            "edge:received",
            "bl-service:requested",
            "bl-service:ledger",
            "bl-service:answered",
            "edge:answered",
        ]
    );
    let steps = timeline["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["correlationId"], "tl-corr-1");
    assert_eq!(steps[0]["route"], "/v1/officers");
    assert_eq!(steps[0]["clientCommandId"], true);
    assert!(steps[0].get("sincePreviousMs").is_none());
    assert!(steps[1]["sincePreviousMs"].as_f64().is_some());
    assert!(
        steps
            .iter()
            .all(|s| s["instance"].as_str().is_some_and(|i| !i.is_empty()))
    );
    assert_eq!(step(&timeline, "ledger").expect("ledger")["outcome"], "new");
    assert_eq!(step(&timeline, "decided").expect("decided")["version"], 1);
    let appended = step(&timeline, "appended").expect("appended");
    assert_eq!(appended["offset"], reply["event"]["offset"]);
    assert_eq!(appended["topic"], reply["event"]["topic"]);
    let applied = step(&timeline, "applied").expect("applied");
    assert_eq!(applied["offset"], reply["event"]["offset"]);
    assert!(
        applied["readModels"]
            .as_array()
            .is_some_and(|m| m.contains(&"officers".into()))
    );
    let ledger_of_retry = steps
        .iter()
        .find(|s| s["attempt"] == 2 && s["step"] == "ledger")
        .expect("the retry's ledger step");
    assert_eq!(ledger_of_retry["outcome"], "replayed");

    // The first request's correlationId and the commandId find the same command.
    let by_first = timeline_until(&stack, "tl-corr-1", "by the first id", |_| true).await;
    assert_eq!(step_names(&by_first), step_names(&timeline));
    let found: Value = stack
        .get("/v1/timelines?commandId=tl-key-1")
        .await
        .json()
        .await
        .expect("json");
    let items = found["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{found}");
    assert_eq!(items[0]["correlationId"], "tl-corr-1");
    assert_eq!(items[0]["attempts"], 2);
    assert_eq!(items[0]["outcome"], "projected");
}

#[tokio::test]
async fn a_refusal_is_in_its_timeline_and_in_the_failed_search() {
    let stack = stack().await;
    let mut bad = officer("B-7002");
    bad["rank"] = "Admiral".into();
    let refused = stack
        .register(&bad, &[(http::CORRELATION_ID, "tl-refused")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = stack
        .register(&officer("B-7003"), &[(http::CORRELATION_ID, "tl-fine")])
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    let timeline = timeline_until(&stack, "tl-refused", "the refusal", |t| {
        t["outcome"] == "refused" && step_names(t).len() == 4
    })
    .await;
    assert_eq!(
        step_names(&timeline),
        [
            "edge:received",
            "bl-service:requested",
            "bl-service:answered",
            "edge:answered"
        ]
    );
    let answered = step(&timeline, "answered").expect("answered");
    assert_eq!(answered["status"], 422);
    assert_eq!(answered["failure"], "schema-violation");

    timeline_until(&stack, "tl-fine", "the accept", |t| {
        t["outcome"] == "projected"
    })
    .await;
    let failed: Value = stack
        .get("/v1/timelines?failed=true")
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&Value> = failed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| &i["correlationId"])
        .collect();
    assert_eq!(ids, ["tl-refused"], "{failed}");
    let by_type: Value = stack
        .get("/v1/timelines?commandType=RegisterOfficer&limit=5")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        by_type["items"].as_array().map(Vec::len),
        Some(2),
        "{by_type}"
    );
}

#[tokio::test]
async fn an_event_that_lost_its_aggregate_shows_superseded() {
    let stack = stack().await;
    let accepted = stack
        .register(&officer("B-7004"), &[(http::CORRELATION_ID, "tl-winner")])
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    stack.wait_until_projected("tl-winner").await;
    // A foreign producer registers the same badge again, straight into the topic.
    let writer = stack.event_writer().expect("producer");
    writer.register("cmd-late", "B-7004").await.expect("writes");

    let timeline = timeline_until(&stack, "corr-B-7004", "the superseded event", |t| {
        t["outcome"] == "superseded"
    })
    .await;
    assert_eq!(step_names(&timeline), ["projections:superseded"]);
    assert_eq!(timeline["aggregateId"], "B-7004");
}

#[tokio::test]
async fn unknown_timelines_are_404_and_bad_searches_400_with_the_correlation_id() {
    let stack = stack().await;
    let missing = stack.get("/v1/commands/no-such-command/timeline").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let problem: Value = missing.json().await.expect("json");
    assert_eq!(problem["code"], "not-found");
    assert!(problem["correlationId"].as_str().is_some());

    for query in [
        "limit=0",
        "limit=101",
        "from=2026-12-02T10:00:00Z&to=2026-12-01T10:00:00Z",
        "from=yesterday",
        "failed=maybe",
        "badge=B-1",
        "commandId=",
    ] {
        let response = stack.get(&format!("/v1/timelines?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["code"], "invalid-query", "{query}");
        assert!(problem["correlationId"].as_str().is_some(), "{query}");
    }
}

#[tokio::test]
async fn the_postgres_timeline_fills_in_after_its_store_was_down_and_rebuilds_from_its_stream() {
    let mut stack = TestStack::start(StackOptions {
        postgres: true,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let before = stack
        .register(&officer("B-7101"), &[(http::CORRELATION_ID, "tl-pg-1")])
        .await;
    assert_eq!(before.status(), StatusCode::ACCEPTED);
    let first = timeline_until(&stack, "tl-pg-1", "projected", |t| {
        t["outcome"] == "projected"
    })
    .await;

    // The store goes down: commands are still accepted; their steps wait in the stream.
    let server = stack.postgres.as_mut().expect("a postgres stack");
    server.kill();
    let during = stack
        .register(&officer("B-7102"), &[(http::CORRELATION_ID, "tl-pg-2")])
        .await;
    assert_eq!(during.status(), StatusCode::ACCEPTED);
    let unavailable = stack.get("/v1/commands/tl-pg-2/timeline").await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    let server = stack.postgres.as_mut().expect("a postgres stack");
    server.restart().await.expect("postgres restarts");
    let filled = timeline_until(&stack, "tl-pg-2", "the steps stored once back", |t| {
        t["outcome"] == "projected" && step_names(t).len() == 8
    })
    .await;
    assert_eq!(step_names(&filled)[0], "edge:received");

    // Tables lost: the stream still has every step within the retention.
    let url = stack.database_url.clone().expect("a database");
    let db = postgres::connect(&url).await.expect("connects");
    db.batch_execute(
        "TRUNCATE ackgate_projections.timeline_steps, ackgate_projections.timeline_commands",
    )
    .await
    .expect("truncates");
    let lost = stack.get("/v1/commands/tl-pg-1/timeline").await;
    assert_eq!(lost.status(), StatusCode::NOT_FOUND);
    let progress = ackgate(&stack, &["timeline", "rebuild"])
        .await
        .expect("rebuilds");
    let last: Value = serde_json::from_str(progress.lines().last().expect("a line")).expect("json");
    assert_eq!(last["done"], true, "{progress}");
    let rebuilt = timeline_until(&stack, "tl-pg-1", "the rebuilt timeline", |_| true).await;
    assert_eq!(step_names(&rebuilt), step_names(&first));
}

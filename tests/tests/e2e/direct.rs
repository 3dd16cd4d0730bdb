//! Option A: an edge configured to accept `RegisterOfficer` directly checks the schema,
//! produces the event and answers 202 after Kafka's ack, with no business-logic service
//! running at all. What the BL hop would have judged (a badge registered twice, a retry) is
//! settled by the projections.

use std::time::{Duration, Instant};

use contracts::{
    headers::{http, message},
    ids,
    officer::REGISTER_OFFICER,
};
use e2e_tests::{
    StackOptions, TestStack,
    stack::{event_position, officer, violation_pointers},
};
use reqwest::StatusCode;
use serde_json::Value;

const PRODUCE_TIMEOUT: Duration = Duration::from_secs(2);

async fn direct_stack(own_kafka: bool) -> TestStack {
    TestStack::start(StackOptions {
        bl_instances: 0,
        direct_commands: vec![REGISTER_OFFICER.to_owned()],
        own_kafka,
        produce_timeout: PRODUCE_TIMEOUT,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts")
}

#[tokio::test]
async fn a_direct_command_is_accepted_and_projected_without_a_bl_service() {
    let stack = direct_stack(false).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = stack
        .register(
            &officer("A-1001"),
            &[
                (http::IDEMPOTENCY_KEY, "direct-1"),
                (http::CORRELATION_ID, "corr-direct-1"),
                (http::TRACEPARENT, traceparent),
            ],
        )
        .await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["location"], "/v1/commands/corr-direct-1");
    assert_eq!(response.headers()[http::CORRELATION_ID], "corr-direct-1");
    let position = event_position(&response);
    let reply: Value = response.json().await.expect("json");
    assert_eq!(reply["commandId"], "direct-1");
    assert_eq!(reply["status"], "accepted");
    let event = &reply["event"];
    assert_eq!(
        position,
        format!(
            "{}:{}:{}",
            stack.names.officer_events, event["partition"], event["offset"]
        )
    );

    let records = stack.read_topic().await;
    assert_eq!(records.len(), 1, "exactly one event");
    let record = &records[0];
    assert_eq!(record.key, "A-1001");
    assert_eq!(record.offset, event["offset"].as_i64().expect("offset"));
    let event_id = ids::event_id(REGISTER_OFFICER, "direct-1").to_string();
    assert_eq!(record.headers[message::EVENT_ID], event_id);
    assert_eq!(record.headers[message::CORRELATION_ID], "corr-direct-1");
    assert_eq!(record.headers[message::COMMAND_ID], "direct-1");
    assert!(record.headers[message::TRACEPARENT].contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(record.value["eventType"], "RegisterOfficerRequested");
    assert_eq!(record.value["payload"], officer("A-1001"));

    // Read-your-writes with the 202's position, then the status by correlationId.
    let visible = stack.get_at("/v1/officers/A-1001", &position).await;
    assert_eq!(visible.status(), StatusCode::OK);
    let status = stack.wait_until_projected("corr-direct-1").await;
    assert_eq!(status["commandId"], "direct-1");
}

#[tokio::test]
async fn direct_refusals_are_problems_and_produce_nothing() {
    let stack = direct_stack(false).await;
    let mut invalid = officer("A-1002");
    invalid["email"] = Value::from("not an address");
    invalid.as_object_mut().expect("object").remove("rank");
    let response = stack
        .register(&invalid, &[(http::CORRELATION_ID, "corr-invalid")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "schema-violation");
    assert_eq!(problem["correlationId"], "corr-invalid");
    let pointers = violation_pointers(&problem);
    assert!(
        pointers.contains(&"/rank") && pointers.contains(&"/email"),
        "{pointers:?}"
    );

    let malformed = stack
        .post_raw(
            "/v1/officers",
            b"{\"badge".to_vec(),
            "application/json",
            &[],
        )
        .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let problem: Value = malformed.json().await.expect("problem");
    assert_eq!(problem["code"], "malformed-json");
    assert!(problem["correlationId"].is_string());

    let wrong_type = stack
        .post_raw("/v1/officers", b"{}".to_vec(), "text/plain", &[])
        .await;
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_eq!(stack.topic_end_offsets().await, 0, "no event for a refusal");
}

#[tokio::test]
async fn retries_and_a_reused_badge_are_settled_by_the_projections() {
    let stack = direct_stack(false).await;
    let key = [(http::IDEMPOTENCY_KEY, "direct-retry")];
    let first = stack.register(&officer("A-2001"), &key).await;
    let retry = stack.register(&officer("A-2001"), &key).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    // No ledger on this path: the retry is a second record of the same event.
    let records = stack.read_topic().await;
    assert_eq!(records.len(), 2);
    let event_id = ids::event_id(REGISTER_OFFICER, "direct-retry").to_string();
    assert!(
        records
            .iter()
            .all(|r| r.headers[message::EVENT_ID] == event_id)
    );

    let rival = stack
        .register(&officer("A-2001"), &[(http::CORRELATION_ID, "corr-rival")])
        .await;
    assert_eq!(
        rival.status(),
        StatusCode::ACCEPTED,
        "no business rule before the 202"
    );
    let rival_position = event_position(&rival);
    let status = stack
        .get_at("/v1/commands/corr-rival", &rival_position)
        .await;
    let status: Value = status.json().await.expect("status");
    assert_eq!(status["status"], "superseded", "{status}");
    let (_, outcomes) = stack.officer_history("A-2001").await;
    assert_eq!(
        outcomes,
        ["registered", "superseded"],
        "the retry applied once"
    );
}

#[tokio::test]
async fn kafka_down_gives_503_within_the_produce_bound_and_no_202() {
    let stack = direct_stack(true).await;
    stack.kafka.stop();
    let started = Instant::now();
    let response = stack
        .register(
            &officer("A-3001"),
            &[
                (http::IDEMPOTENCY_KEY, "direct-down"),
                (http::CORRELATION_ID, "corr-down"),
            ],
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "kafka-unavailable");
    assert_eq!(problem["correlationId"], "corr-down");
    assert_eq!(problem["commandId"], "direct-down");
    assert!(waited < PRODUCE_TIMEOUT * 3, "answered after {waited:?}");

    stack.kafka.restart().await.expect("broker restarts");
    let retry = e2e_tests::eventually(
        Duration::from_secs(30),
        "a 202 after Kafka returns",
        || async {
            let response = stack
                .register(
                    &officer("A-3001"),
                    &[(http::IDEMPOTENCY_KEY, "direct-down")],
                )
                .await;
            (response.status() == StatusCode::ACCEPTED).then_some(())
        },
    );
    retry.await;
    let records = stack.read_topic().await;
    let event_id = ids::event_id(REGISTER_OFFICER, "direct-down").to_string();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.headers[message::EVENT_ID] == event_id)
    );
}

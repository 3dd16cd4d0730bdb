//! Option A from the catalog: `RecordObservation` is accepted by the edge itself (schema,
//! produce, 202 after Kafka's ack) with no business-logic service running at all, and
//! projected into the officer's observation list, newest first, a page at a time.

use std::time::{Duration, Instant};

use contracts::{
    headers::{http, message},
    ids,
    observation::RECORD_OBSERVATION,
};
use e2e_tests::{
    StackOptions, TestStack,
    stack::{event_position, observation, violation_pointers},
};
use reqwest::StatusCode;
use serde_json::Value;

const PRODUCE_TIMEOUT: Duration = Duration::from_secs(2);
const OBSERVATIONS: &str = "/v1/observations";

async fn direct_stack(own_kafka: bool) -> TestStack {
    TestStack::start(StackOptions {
        bl_instances: 0,
        own_kafka,
        produce_timeout: PRODUCE_TIMEOUT,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts")
}

#[tokio::test]
async fn an_observation_is_accepted_by_the_edge_and_listed_without_a_bl_service() {
    let stack = direct_stack(false).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = observation("A-1001", "2026-11-30T21:14:00-06:00");
    let response = stack
        .send(
            OBSERVATIONS,
            &body,
            &[
                (http::IDEMPOTENCY_KEY, "direct-1"),
                (http::CORRELATION_ID, "corr-direct-1"),
                (http::TRACEPARENT, traceparent),
            ],
        )
        .await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["location"], "/v1/commands/corr-direct-1");
    let position = event_position(&response);
    let reply: Value = response.json().await.expect("json");
    assert_eq!(reply["commandId"], "direct-1");
    assert_eq!(reply["status"], "accepted");
    let topic = stack.names.observation_events.clone();
    assert!(position.starts_with(&format!("{topic}:")), "{position}");

    let records = stack.read_topic_named(&topic).await;
    assert_eq!(records.len(), 1, "exactly one event");
    let record = &records[0];
    assert_eq!(record.key, "A-1001");
    let event_id = ids::event_id(RECORD_OBSERVATION, "direct-1").to_string();
    assert_eq!(record.headers[message::EVENT_ID], event_id);
    assert_eq!(record.headers[message::CORRELATION_ID], "corr-direct-1");
    assert!(record.headers[message::TRACEPARENT].contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(record.value["eventType"], "RecordObservationRequested");
    assert_eq!(record.value["payload"], body);
    assert!(
        record.value.get("aggregateVersion").is_none(),
        "decided without the aggregate's state"
    );

    let listed = stack
        .get_at("/v1/officers/A-1001/observations", &position)
        .await;
    assert_eq!(listed.status(), StatusCode::OK);
    let page: Value = listed.json().await.expect("page");
    assert_eq!(page["items"][0]["text"], body["text"]);
    assert_eq!(page["items"][0]["eventId"], event_id);
    let status = stack.wait_until_projected("corr-direct-1").await;
    assert_eq!(status["commandType"], RECORD_OBSERVATION);
    assert_eq!(
        stack.topic_end_offsets().await,
        0,
        "the officer topic is untouched"
    );
}

#[tokio::test]
async fn observations_page_newest_first_with_a_stable_cursor() {
    let stack = direct_stack(false).await;
    let mut last = String::new();
    for minute in [5, 1, 3, 2, 4] {
        let at = format!("2026-11-30T10:0{minute}:00Z");
        let response = stack
            .send(OBSERVATIONS, &observation("A-1500", &at), &[])
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        last = event_position(&response);
    }
    let other = stack
        .send(
            OBSERVATIONS,
            &observation("A-1501", "2026-11-30T10:09:00Z"),
            &[],
        )
        .await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);

    let mut seen = Vec::new();
    let mut path = "/v1/officers/A-1500/observations?limit=2".to_owned();
    loop {
        let page: Value = stack.get_at(&path, &last).await.json().await.expect("page");
        for item in page["items"].as_array().expect("items") {
            seen.push(item["observedAt"].as_str().expect("time").to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => {
                path = format!("/v1/officers/A-1500/observations?limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    let minutes: Vec<&str> = seen.iter().map(|t| &t[15..16]).collect();
    assert_eq!(minutes, ["5", "4", "3", "2", "1"], "{seen:?}");

    let foreign = stack
        .get("/v1/officers/A-1500/observations?cursor=zz")
        .await;
    assert_eq!(foreign.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn direct_refusals_are_problems_and_produce_nothing() {
    let stack = direct_stack(false).await;
    let mut invalid = observation("A-1002", "2026-11-30T10:00:00Z");
    invalid["location"]["latitude"] = Value::from(123);
    invalid.as_object_mut().expect("object").remove("text");
    let response = stack
        .send(
            OBSERVATIONS,
            &invalid,
            &[(http::CORRELATION_ID, "corr-invalid")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "schema-violation");
    assert_eq!(problem["correlationId"], "corr-invalid");
    let pointers = violation_pointers(&problem);
    assert!(
        pointers.contains(&"/text") && pointers.contains(&"/location/latitude"),
        "{pointers:?}"
    );

    let malformed = stack
        .post_raw(OBSERVATIONS, b"{\"badge".to_vec(), "application/json", &[])
        .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let problem: Value = malformed.json().await.expect("problem");
    assert_eq!(problem["code"], "malformed-json");

    let conditional = stack
        .send(
            OBSERVATIONS,
            &observation("A-1002", "2026-11-30T10:00:00Z"),
            &[(http::IF_MATCH, "\"1\"")],
        )
        .await;
    assert_eq!(conditional.status(), StatusCode::BAD_REQUEST);
    let problem: Value = conditional.json().await.expect("problem");
    assert_eq!(problem["code"], "invalid-header");

    let wrong_type = stack
        .post_raw(OBSERVATIONS, b"{}".to_vec(), "text/plain", &[])
        .await;
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let topic = stack.names.observation_events.clone();
    assert_eq!(
        stack.end_offsets_of(&topic).await,
        0,
        "no event for a refusal"
    );
}

#[tokio::test]
async fn a_retry_writes_again_under_the_same_event_id_and_is_listed_once() {
    let stack = direct_stack(false).await;
    let key = [(http::IDEMPOTENCY_KEY, "direct-retry")];
    let body = observation("A-2001", "2026-11-30T10:00:00Z");
    let first = stack.send(OBSERVATIONS, &body, &key).await;
    let retry = stack.send(OBSERVATIONS, &body, &key).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    // No ledger on this path: the retry is a second record of the same event.
    let records = stack
        .read_topic_named(&stack.names.observation_events)
        .await;
    assert_eq!(records.len(), 2);
    let event_id = ids::event_id(RECORD_OBSERVATION, "direct-retry").to_string();
    assert!(
        records
            .iter()
            .all(|r| r.headers[message::EVENT_ID] == event_id)
    );
    let page: Value = stack
        .get_at("/v1/officers/A-2001/observations", &event_position(&retry))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().expect("items").len(), 1, "{page}");
}

#[tokio::test]
async fn kafka_down_gives_503_within_the_produce_bound_and_no_202() {
    let stack = direct_stack(true).await;
    stack.kafka.stop();
    let body = observation("A-3001", "2026-11-30T10:00:00Z");
    let started = Instant::now();
    let response = stack
        .send(
            OBSERVATIONS,
            &body,
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
                .send(
                    OBSERVATIONS,
                    &body,
                    &[(http::IDEMPOTENCY_KEY, "direct-down")],
                )
                .await;
            (response.status() == StatusCode::ACCEPTED).then_some(())
        },
    );
    retry.await;
    let records = stack
        .read_topic_named(&stack.names.observation_events)
        .await;
    let event_id = ids::event_id(RECORD_OBSERVATION, "direct-down").to_string();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.headers[message::EVENT_ID] == event_id)
    );
}

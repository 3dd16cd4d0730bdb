//! The accept path: POST -> 202 -> one event in Kafka -> projected -> queryable.

use contracts::{headers::http, headers::message, ids, officer::REGISTER_OFFICER};
use e2e_tests::{StackOptions, TestStack, stack::officer};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn an_accepted_registration_reaches_kafka_and_the_read_models() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let response = stack
        .register(
            &officer("B-1042"),
            &[
                (http::IDEMPOTENCY_KEY, "key-1042"),
                (http::CORRELATION_ID, "corr-1042"),
                (http::TRACEPARENT, traceparent),
            ],
        )
        .await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["location"], "/v1/commands/corr-1042");
    assert_eq!(response.headers()[http::CORRELATION_ID], "corr-1042");
    let reply: Value = response.json().await.expect("json");
    assert_eq!(reply["correlationId"], "corr-1042");
    assert_eq!(reply["commandId"], "key-1042");
    assert_eq!(reply["status"], "accepted");
    assert_eq!(reply["event"]["topic"], stack.names.officer_events);

    let records = stack.read_topic().await;
    assert_eq!(records.len(), 1, "exactly one event");
    let record = &records[0];
    assert_eq!(record.key, "B-1042", "keyed by the aggregate id");
    assert_eq!(
        i64::from(record.partition),
        reply["event"]["partition"].as_i64().expect("partition")
    );
    assert_eq!(
        record.offset,
        reply["event"]["offset"].as_i64().expect("offset")
    );
    assert_eq!(record.headers[message::CORRELATION_ID], "corr-1042");
    assert_eq!(record.headers[message::COMMAND_ID], "key-1042");
    let event_id = ids::event_id(REGISTER_OFFICER, "key-1042").to_string();
    assert_eq!(record.headers[message::EVENT_ID], event_id);
    assert!(
        record.headers[message::TRACEPARENT].contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "trace id carried to Kafka"
    );
    let envelope = &record.value;
    assert_eq!(envelope["eventType"], "RegisterOfficerRequested");
    assert_eq!(envelope["eventId"], event_id);
    assert_eq!(envelope["correlationId"], "corr-1042");
    assert_eq!(envelope["commandId"], "key-1042");
    assert_eq!(envelope["aggregateId"], "B-1042");
    assert_eq!(envelope["payload"], officer("B-1042"));

    let status = stack.wait_until_projected("corr-1042").await;
    assert_eq!(status["commandId"], "key-1042");
    assert_eq!(status["event"], reply["event"]);

    let found = stack.get("/v1/officers/B-1042").await;
    assert_eq!(found.status(), StatusCode::OK);
    let view: Value = found.json().await.expect("json");
    assert_eq!(view["lastName"], "Reyes");
    assert_eq!(view["correlationId"], "corr-1042");
    assert_eq!(view["event"], reply["event"]);
}

#[tokio::test]
async fn ids_are_generated_when_the_client_sends_none() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");

    let response = stack.register(&officer("B-2001"), &[]).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let header = response.headers()[http::CORRELATION_ID]
        .to_str()
        .expect("ascii")
        .to_owned();
    let reply: Value = response.json().await.expect("json");
    assert_eq!(reply["correlationId"], header.as_str());
    assert!(ids::is_valid_client_id(
        reply["commandId"].as_str().expect("commandId")
    ));
    assert_ne!(reply["commandId"], reply["correlationId"]);
    let records = stack.read_topic().await;
    assert_eq!(records[0].headers[message::CORRELATION_ID], header);
}

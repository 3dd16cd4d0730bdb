//! Every refusal: its status, its problem body with the correlationId, and no event in Kafka.

use std::time::Duration;

use contracts::headers::http;
use e2e_tests::{StackOptions, TestStack, eventually, stack::officer};
use futures::StreamExt;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// Asserts a problem+json answer with `status` and `code`, carrying the correlationId in the
/// header and the body; returns the body.
async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for {code}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let header = response.headers()[http::CORRELATION_ID]
        .to_str()
        .expect("ascii")
        .to_owned();
    let problem: Value = response.json().await.expect("problem body");
    assert_eq!(problem["code"], code);
    assert_eq!(problem["status"], status.as_u16());
    assert_eq!(problem["type"], format!("urn:ackgate:error:{code}"));
    assert_eq!(problem["correlationId"], header.as_str());
    assert!(!problem["detail"].as_str().unwrap_or_default().is_empty());
    problem
}

#[tokio::test]
async fn refused_commands_answer_a_precise_problem_and_write_nothing() {
    let options = StackOptions {
        body_limit_bytes: 1024,
        ..StackOptions::default()
    };
    let stack = TestStack::start(options).await.expect("stack starts");
    assert_eq!(
        stack.register(&officer("B-3000"), &[]).await.status(),
        StatusCode::ACCEPTED
    );
    let before = stack.topic_end_offsets().await;
    let json = "application/json";

    let malformed = stack
        .post_raw(
            "/v1/officers",
            b"{\"badgeNumber\":".to_vec(),
            json,
            &[(http::CORRELATION_ID, "corr-bad-json")],
        )
        .await;
    let problem = assert_problem(malformed, StatusCode::BAD_REQUEST, "malformed-json").await;
    assert_eq!(problem["correlationId"], "corr-bad-json");

    let wrong_type = stack
        .post_raw(
            "/v1/officers",
            serde_json::to_vec(&officer("B-3001")).expect("json"),
            "text/plain",
            &[],
        )
        .await;
    assert_problem(
        wrong_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;

    let mut too_big = officer("B-3002");
    too_big["firstName"] = json!("x".repeat(2048));
    assert_problem(
        stack.register(&too_big, &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    )
    .await;

    let invalid = json!({ "badgeNumber": "nope", "rank": "general", "email": "x" });
    let problem = assert_problem(
        stack
            .register(&invalid, &[(http::IDEMPOTENCY_KEY, "k-422")])
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema-violation",
    )
    .await;
    assert_eq!(problem["commandId"], "k-422");
    let pointers = e2e_tests::stack::violation_pointers(&problem);
    for expected in [
        "/badgeNumber",
        "/rank",
        "/email",
        "/firstName",
        "/lastName",
        "/hireDate",
    ] {
        assert!(
            pointers.contains(&expected),
            "{expected} missing from {pointers:?}"
        );
    }

    let duplicate = stack.register(&officer("B-3000"), &[]).await;
    assert_problem(duplicate, StatusCode::CONFLICT, "badge-already-registered").await;

    let bad_key = stack
        .register(&officer("B-3003"), &[(http::IDEMPOTENCY_KEY, "has spaces")])
        .await;
    assert_problem(bad_key, StatusCode::BAD_REQUEST, "invalid-header").await;

    let bad_correlation = stack
        .register(&officer("B-3004"), &[(http::CORRELATION_ID, "bad/id")])
        .await;
    assert_problem(bad_correlation, StatusCode::BAD_REQUEST, "invalid-header").await;

    assert_eq!(
        stack.topic_end_offsets().await,
        before,
        "no refused command wrote an event"
    );
    let after = stack.register(&officer("B-3002"), &[]).await;
    assert_eq!(
        after.status(),
        StatusCode::ACCEPTED,
        "a corrected retry is not blocked by the refusal"
    );
}

#[tokio::test]
async fn unknown_routes_methods_and_resources_are_problems() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");

    assert_problem(
        stack.get("/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    let delete = stack
        .http
        .delete(format!("{}/v1/officers", stack.edge_url()))
        .send()
        .await
        .expect("edge answers");
    assert_problem(delete, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    assert_problem(
        stack.get("/v1/officers/B-9999").await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    assert_problem(
        stack.get("/v1/commands/never-sent").await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn a_silent_bl_service_times_out_with_504_and_writes_nothing() {
    let options = StackOptions {
        bl_instances: 0,
        command_timeout: Duration::from_millis(500),
        ..StackOptions::default()
    };
    let stack = TestStack::start(options).await.expect("stack starts");
    // A responder that takes requests and never answers: a hung BL instance.
    let mut silent = stack
        .nats_client
        .queue_subscribe(
            stack.names.namespace.dotted("ackgate.cmd.officer.register"),
            stack.names.domain_queue_group("officer"),
        )
        .await
        .expect("subscribes");
    stack.nats_client.flush().await.expect("flushed");
    let swallow = tokio::spawn(async move { while silent.next().await.is_some() {} });

    // Until the server has propagated the silent responder's interest, the edge may still see
    // no responders (503); once it has, every command must time out with 504.
    let response = eventually(
        Duration::from_secs(20),
        "the silent responder to be visible",
        || async {
            let response = stack.register(&officer("B-4000"), &[]).await;
            (response.status() != StatusCode::SERVICE_UNAVAILABLE).then_some(response)
        },
    )
    .await;

    assert_problem(response, StatusCode::GATEWAY_TIMEOUT, "bl-timeout").await;
    assert_eq!(stack.topic_end_offsets().await, 0);
    swallow.abort();
}

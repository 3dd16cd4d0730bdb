//! BL instances: none listening fails fast; several share the load; the badge rule holds
//! across instances under concurrency.

use std::time::{Duration, Instant};

use e2e_tests::{StackOptions, TestStack, stack::officer};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn with_no_bl_service_listening_the_edge_answers_503_at_once() {
    let mut stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");
    stack.stop_all_bl().await;
    let started = Instant::now();

    let response = stack.register(&officer("B-5000"), &[]).await;

    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "2");
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["code"], "bl-unavailable");
    // No-responders is a NATS answer, not a timeout: far below the 10 s command timeout.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(stack.topic_end_offsets().await, 0);

    stack.start_bl().await.expect("restarts");
    assert_eq!(
        stack.register(&officer("B-5000"), &[]).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn two_bl_instances_both_take_requests() {
    let stack = TestStack::start(StackOptions {
        bl_instances: 2,
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");

    let bodies: Vec<Value> = (0..40).map(|i| officer(&format!("B-6{i:03}"))).collect();
    let responses = join_all(bodies.iter().map(|body| stack.register(body, &[]))).await;

    assert!(responses.iter().all(|r| r.status() == StatusCode::ACCEPTED));
    let per_instance = stack
        .requests_per_instance(&stack.names.domain_service("officer"))
        .await;
    assert_eq!(per_instance.len(), 2, "both instances report stats");
    assert_eq!(per_instance.iter().sum::<u64>(), 40);
    assert!(
        per_instance.iter().all(|&n| n > 0),
        "each instance took requests: {per_instance:?}"
    );
    assert_eq!(stack.read_topic().await.len(), 40);
}

#[tokio::test]
async fn concurrent_registrations_of_one_badge_on_two_instances_accept_exactly_one() {
    let stack = TestStack::start(StackOptions {
        bl_instances: 2,
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");

    for round in 0..5 {
        let body = officer(&format!("B-70{round}0"));
        let responses = join_all((0..8).map(|_| stack.register(&body, &[]))).await;
        let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
        let accepted = statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count();
        let conflicts = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((accepted, conflicts), (1, 7), "round {round}: {statuses:?}");
    }

    let records = stack.read_topic().await;
    assert_eq!(records.len(), 5, "one event per badge");
    let per_instance = stack
        .requests_per_instance(&stack.names.domain_service("officer"))
        .await;
    assert!(
        per_instance.iter().all(|&n| n > 0),
        "both instances competed: {per_instance:?}"
    );
}

//! Kafka down: commands are refused with 503 within the produce bound and nothing is
//! accepted; Kafka back: commands are accepted again without restarting any service.

use std::time::{Duration, Instant};

use contracts::headers::{http, message};
use e2e_tests::{KafkaStorage, StackOptions, TestStack, eventually, stack::officer};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_kafka_outage_refuses_commands_and_recovery_needs_no_restart() {
    let produce_timeout = Duration::from_secs(2);
    let options = StackOptions {
        kafka_storage: KafkaStorage::Sqlite,
        produce_timeout,
        projections: false,
        ..StackOptions::default()
    };
    let mut stack = TestStack::start(options).await.expect("stack starts");
    assert_eq!(
        stack.register(&officer("B-8000"), &[]).await.status(),
        StatusCode::ACCEPTED
    );

    stack.kafka.stop();
    let started = Instant::now();
    let response = stack
        .register(&officer("B-8001"), &[(http::IDEMPOTENCY_KEY, "outage-1")])
        .await;
    let elapsed = started.elapsed();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["code"], "kafka-unavailable");
    assert_eq!(problem["commandId"], "outage-1");
    // The bound is the produce timeout (plus scheduling slack), not the edge's 10 s timeout.
    assert!(
        elapsed < produce_timeout + Duration::from_secs(3),
        "took {elapsed:?}"
    );

    stack.kafka.restart().await.expect("broker restarts");
    let retried = eventually(
        Duration::from_secs(30),
        "a command accepted after recovery",
        || async {
            let response = stack
                .register(&officer("B-8001"), &[(http::IDEMPOTENCY_KEY, "outage-2")])
                .await;
            (response.status() == StatusCode::ACCEPTED).then_some(response)
        },
    )
    .await;
    let reply: Value = retried.json().await.expect("json");
    assert_eq!(reply["commandId"], "outage-2");

    let records = stack.read_topic().await;
    let command_ids: Vec<&str> = records
        .iter()
        .map(|r| r.headers[message::COMMAND_ID].as_str())
        .collect();
    assert!(
        !command_ids.contains(&"outage-1"),
        "the refused command left no event: {command_ids:?}"
    );
    assert_eq!(
        records.iter().filter(|r| r.key == "B-8001").count(),
        1,
        "{command_ids:?}"
    );
    assert_eq!(records.len(), 2);
}

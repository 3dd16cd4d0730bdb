//! Kafka down or frozen: commands are refused with 503 within the produce bound and parked
//! in the command dead-letter queue; Kafka back: re-drives and client retries converge to
//! exactly one event per command, whichever comes first, with no service restarted.

use std::time::{Duration, Instant};

use bl_services::{
    dlq::ParkedCommand,
    ops::{DlqCommand, Operation},
};
use contracts::{
    headers::{http, message},
    officer::REGISTER_OFFICER,
};
use e2e_tests::{
    StackOptions, TestStack, eventually, kafka,
    stack::officer,
    timeline::{step_names, timeline_until},
};
use reqwest::StatusCode;
use serde_json::Value;

const PRODUCE_TIMEOUT: Duration = Duration::from_secs(2);

async fn stack_with_durable_kafka() -> TestStack {
    TestStack::start(StackOptions {
        own_kafka: true,
        produce_timeout: PRODUCE_TIMEOUT,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts")
}

fn redrive_all() -> Operation {
    Operation::Dlq(DlqCommand::Redrive {
        ids: Vec::new(),
        all: true,
        timeout_ms: Duration::from_secs(10),
    })
}

/// `bl-service dlq list`.
async fn parked_list(stack: &TestStack) -> Vec<Value> {
    stack
        .ops(Operation::Dlq(DlqCommand::List))
        .await
        .expect("lists")
}

/// Distinct eventIds and records in the topic for `command_id`.
async fn events_of(stack: &TestStack, command_id: &str) -> (usize, usize) {
    let records = stack.read_topic().await;
    let mine = kafka::of_command(&records, command_id);
    let mut event_ids: Vec<_> = mine.iter().map(|r| &r.headers[message::EVENT_ID]).collect();
    event_ids.dedup();
    (event_ids.len(), mine.len())
}

/// Posts until Kafka is back and the command is accepted; returns the reply body.
async fn retry_until_accepted(stack: &TestStack, badge: &str, key: &str) -> bytes::Bytes {
    eventually(
        Duration::from_secs(40),
        "the retry to be accepted",
        || async {
            let response = stack
                .register(&officer(badge), &[(http::IDEMPOTENCY_KEY, key)])
                .await;
            if response.status() == StatusCode::ACCEPTED {
                response.bytes().await.ok()
            } else {
                None
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_command_kafka_did_not_take_is_parked_then_redriven_to_exactly_one_event() {
    let stack = stack_with_durable_kafka().await;
    stack.kafka.stop();
    let started = Instant::now();
    let key = [
        (http::IDEMPOTENCY_KEY, "parked-1"),
        (http::CORRELATION_ID, "parked-corr"),
    ];
    let response = stack.register(&officer("B-8001"), &key).await;
    let elapsed = started.elapsed();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["code"], "kafka-unavailable");
    assert_eq!(problem["commandId"], "parked-1");
    assert_eq!(problem["correlationId"], "parked-corr");
    // The bound is the produce timeout (plus scheduling slack), not the edge's 10 s timeout.
    assert!(
        elapsed < PRODUCE_TIMEOUT + Duration::from_secs(3),
        "took {elapsed:?}"
    );

    let listed = parked_list(&stack).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["commandId"], "parked-1");
    assert_eq!(listed[0]["correlationId"], "parked-corr");
    assert_eq!(listed[0]["code"], "kafka-unavailable");
    let status: Value = stack
        .get("/v1/commands/parked-corr")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(status["status"], "dead-lettered", "{status}");

    // A second failure of the same command is counted, not parked twice.
    let again = stack.register(&officer("B-8001"), &key).await;
    assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
    let listed = parked_list(&stack).await;
    assert_eq!((listed.len(), listed[0]["attempts"].as_u64()), (1, Some(2)));
    // The badge stays reserved for the parked command.
    let other = stack
        .register(
            &officer("B-8001"),
            &[(http::IDEMPOTENCY_KEY, "parked-rival")],
        )
        .await;
    assert_eq!(other.status(), StatusCode::CONFLICT);

    stack.kafka.restart().await.expect("broker restarts");
    let redriven = eventually(Duration::from_secs(40), "a successful re-drive", || async {
        let report = stack.ops(redrive_all()).await.ok()?;
        (report.first()?["outcome"] == "accepted").then(|| report[0].clone())
    })
    .await;
    assert_eq!(redriven["correlationId"], "parked-corr", "ids kept");
    assert!(parked_list(&stack).await.is_empty());

    // The client's retry after the re-drive gets the re-drive's reply and adds nothing.
    let client_retry = stack.register(&officer("B-8001"), &key).await;
    assert_eq!(client_retry.status(), StatusCode::ACCEPTED);
    assert_eq!(client_retry.headers()[http::IDEMPOTENT_REPLAYED], "true");
    let reply: Value = client_retry.json().await.expect("json");
    assert_eq!(reply, redriven["reply"]);
    assert_eq!(events_of(&stack, "parked-1").await, (1, 1));
    stack.wait_until_projected("parked-corr").await;

    // Support staff see the whole story: the 503s, the operator's re-drives (each a request
    // of its own), the one that was accepted, the client's replayed retry.
    let timeline = timeline_until(&stack, "parked-corr", "the whole story", |t| {
        t["outcome"] == "projected"
    })
    .await;
    let names = step_names(&timeline);
    let count = |name: &str| names.iter().filter(|s| *s == name).count();
    assert!(count("bl-service:dead-lettered") >= 2, "{names:?}");
    assert_eq!(count("bl-service:appended"), 1, "{names:?}");
    assert_eq!(count("projections:applied"), 1, "{names:?}");
    let steps = timeline["steps"].as_array().expect("steps");
    let attempt_of = |step: &str| {
        steps
            .iter()
            .find(|s| s["step"] == step)
            .map(|s| &s["attempt"])
    };
    let of_attempt =
        |n: &Value| -> Vec<&Value> { steps.iter().filter(|s| &s["attempt"] == n).collect() };
    let first = of_attempt(&Value::from(1));
    assert!(
        first
            .iter()
            .any(|s| s["failure"] == "kafka-unavailable" && s["component"] == "edge")
    );
    let accepted = of_attempt(attempt_of("appended").expect("appended"));
    assert_eq!(
        accepted[0]["step"], "requested",
        "an operator's re-drive: {accepted:?}"
    );
    assert_eq!(accepted[0]["redrive"], true);
    assert!(
        accepted
            .iter()
            .any(|s| s["step"] == "ledger" && s["outcome"] == "resumes-parked")
    );
    assert_eq!(
        attempt_of("applied"),
        attempt_of("appended"),
        "applied with the request that wrote it"
    );
    let last = of_attempt(&timeline["attempts"]);
    assert!(
        last.iter()
            .any(|s| s["step"] == "ledger" && s["outcome"] == "replayed"),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_client_retry_first_then_a_redrive_still_make_one_event() {
    let stack = stack_with_durable_kafka().await;
    stack.kafka.stop();
    let response = stack
        .register(
            &officer("B-8100"),
            &[(http::IDEMPOTENCY_KEY, "retry-first")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let parked: Value = stack
        .ops(Operation::Dlq(DlqCommand::Show {
            id: "retry-first".to_owned(),
        }))
        .await
        .expect("shows")
        .remove(0);

    stack.kafka.restart().await.expect("broker restarts");
    let accepted = retry_until_accepted(&stack, "B-8100", "retry-first").await;
    let listed = parked_list(&stack).await;
    assert!(
        listed.is_empty(),
        "the accepted retry took it out of the queue: {listed:?}"
    );

    // Had that removal been lost, a re-drive would still add nothing: park it again.
    let command: ParkedCommand =
        serde_json::from_value(parked["parked"].clone()).expect("a parked command");
    let dlq = bl_services::dlq::CommandDlq::open(
        stack.nats_client.clone(),
        &stack.names.command_dlq_bucket,
    )
    .await
    .expect("opens");
    let key = bl_services::ledger::ledger_key(REGISTER_OFFICER, "retry-first");
    dlq.park(&key, command).await.expect("parks");
    let report = stack.ops(redrive_all()).await.expect("re-drives");
    assert_eq!(report[0]["outcome"], "accepted");
    let accepted: Value = serde_json::from_slice(&accepted).expect("json");
    assert_eq!(report[0]["reply"], accepted, "the stored reply");
    assert!(parked_list(&stack).await.is_empty());
    assert_eq!(events_of(&stack, "retry-first").await, (1, 1));
}

/// The ambiguous case: the broker freezes with the record in hand, the transaction's commit
/// times out (the client gets 503 "may or may not be stored"), then the broker wakes. The
/// retry first settles the unknown attempt (fences its transactional id, then searches the
/// committed records) and produces only if nothing was stored: exactly one record.
#[tokio::test]
async fn an_ambiguous_timeout_converges_to_one_event_on_retry() {
    let stack = stack_with_durable_kafka().await;
    // One command per lane (idle lanes take turns): whichever lane the next command takes
    // has committed a transaction, as a lane of a running service has. A lane that never
    // registered a partition can abort on its own and answer "nothing was stored" instead.
    for lane in 0..stack.options.transaction_lanes {
        let warm = stack.register(&officer(&format!("B-820{lane}")), &[]).await;
        assert_eq!(warm.status(), StatusCode::ACCEPTED, "lane {lane} warmed up");
    }

    stack.kafka.pause().expect("broker freezes");
    let key = [
        (http::IDEMPOTENCY_KEY, "ambiguous-1"),
        (http::CORRELATION_ID, "ambiguous-corr"),
    ];
    let response = stack.register(&officer("B-8299"), &key).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = response.json().await.expect("json");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("may or may not")),
        "the client is told the outcome is unknown: {problem}"
    );
    stack.kafka.resume().expect("broker resumes");

    let accepted = retry_until_accepted(&stack, "B-8299", "ambiguous-1").await;
    let reply: Value = serde_json::from_slice(&accepted).expect("json");
    assert_eq!(reply["correlationId"], "ambiguous-corr");
    let (events, records) = events_of(&stack, "ambiguous-1").await;
    assert_eq!(events, 1, "one eventId");
    assert_eq!(
        records, 1,
        "one record: the unknown attempt was settled, not repeated"
    );
    let status = stack.wait_until_projected("ambiguous-corr").await;
    assert_eq!(status["commandId"], "ambiguous-1");
    let officer: Value = stack
        .get("/v1/officers/B-8299")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(officer["commandId"], "ambiguous-1");
}

/// `/ready` of the service listening on `port`: its status and body.
async fn readiness(stack: &TestStack, port: u16) -> (u16, Value) {
    let response = stack
        .http
        .get(format!("http://127.0.0.1:{port}/ready"))
        .send()
        .await
        .expect("health endpoint answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// A broker that is down when the services start: they start, say they are not ready,
/// refuse commands with 503 `kafka-unavailable`, and recover by themselves when it is back.
#[tokio::test]
async fn services_started_while_kafka_is_down_become_ready_when_it_is_back() {
    let mut stack = stack_with_durable_kafka().await;
    stack.stop_all_bl().await;
    stack.stop_projections().await;
    stack.kafka.stop();

    stack.start_bl().await.expect("starts without Kafka");
    stack
        .start_projections()
        .await
        .expect("starts without Kafka");
    let ports: Vec<u16> = stack.health_ports.iter().rev().take(2).copied().collect();
    for port in &ports {
        let (status, body) = eventually(Duration::from_secs(20), "not ready", || async {
            let (status, body) = readiness(&stack, *port).await;
            (status == 503 && body["reason"].as_str().is_some_and(|r| r.contains("Kafka")))
                .then_some((status, body))
        })
        .await;
        assert_eq!(status, 503, "{body}");
    }
    let key = [(http::IDEMPOTENCY_KEY, "started-without-kafka")];
    let refused = stack.register(&officer("B-8300"), &key).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "kafka-unavailable", "{problem}");

    stack.kafka.restart().await.expect("broker starts");
    for port in &ports {
        eventually(Duration::from_secs(60), "ready again", || async {
            (readiness(&stack, *port).await.0 == 200).then_some(())
        })
        .await;
    }
    retry_until_accepted(&stack, "B-8300", "started-without-kafka").await;
    let (events, records) = events_of(&stack, "started-without-kafka").await;
    assert_eq!((events, records), (1, 1));
}

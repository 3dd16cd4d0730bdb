//! Exactly one record per accepted command, not only one event: the two windows an
//! idempotent producer leaves open, closed by Kafka transactions.
//!
//! - A BL instance whose event Kafka committed but which died before it recorded the reply
//!   (NATS down, then SIGKILL): the retry settles the attempt and answers with the record
//!   already there. Without transactions the same retry writes a second record; a
//!   test shows that too, so this one is known to be able to fail.
//! - A zombie: an instance paused with SIGSTOP in the middle of its work, past its lease,
//!   then resumed. Another instance takes its commands over and fences it, and nothing the
//!   zombie wrote becomes visible.

use std::time::Duration;

use bl_services::{aggregates::entry_key, ledger::ledger_key};
use contracts::{
    headers::{http, message},
    officer::REGISTER_OFFICER,
};
use e2e_tests::{StackOptions, TestStack, eventually, kafka, stack::officer};
use futures::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::Value;

const PRODUCE_TIMEOUT: Duration = Duration::from_secs(2);

/// A stack whose edge waits long enough for a retry to wait out the crashed attempt's lease
/// and settle it, so the retry's own answer says how it was accepted.
async fn stack(transactions: bool) -> TestStack {
    TestStack::start(StackOptions {
        own_kafka: true,
        bl_instances: 0,
        projections: false,
        produce_timeout: PRODUCE_TIMEOUT,
        command_timeout: Duration::from_secs(14),
        transactions,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts")
}

/// Waits until the officer `badge` is taken by `command_id`: the BL has begun its attempt
/// and decided it, and what is left is the event.
async fn wait_for_decision(stack: &TestStack, badge: &str, command: &str, command_id: &str) {
    let jetstream = async_nats::jetstream::new(stack.nats_client.clone());
    let aggregates = jetstream
        .get_key_value(&stack.names.aggregates_bucket)
        .await
        .expect("aggregates bucket");
    let key = entry_key("officer", badge);
    let ours = ledger_key(command, command_id);
    eventually(
        Duration::from_secs(10),
        "the attempt to be decided",
        || async {
            let entry = aggregates.get(&key).await.ok().flatten()?;
            let entry: Value = serde_json::from_slice(&entry).ok()?;
            (entry["head"]["ledgerKey"] == ours.as_str()).then_some(())
        },
    )
    .await;
}

/// The committed records of `command_id`.
async fn records_of(stack: &TestStack, command_id: &str) -> Vec<kafka::Record> {
    let records = stack.read_topic().await;
    kafka::of_command(&records, command_id)
        .into_iter()
        .cloned()
        .collect()
}

/// Sends `badge` with `key` until a 202, and returns its body.
async fn until_accepted(stack: &TestStack, badge: &str, key: &str) -> Value {
    until_accepted_with_headers(stack, badge, key).await.0
}

/// Sends `badge` with `key` until a 202; returns its body and whether it was a replay of
/// a recorded reply (`Idempotent-Replayed`).
async fn until_accepted_with_headers(stack: &TestStack, badge: &str, key: &str) -> (Value, bool) {
    eventually(Duration::from_secs(60), "a 202", || async {
        let response = stack
            .register(&officer(badge), &[(http::IDEMPOTENCY_KEY, key)])
            .await;
        if response.status() != StatusCode::ACCEPTED {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return None;
        }
        let replayed = response.headers().contains_key(http::IDEMPOTENT_REPLAYED);
        Some((response.json::<Value>().await.ok()?, replayed))
    })
    .await
}

/// An instance whose event Kafka committed dies before it can record the reply: NATS is
/// down when it tries, and it is SIGKILLed before NATS is back (so no buffered write can
/// land later). Returns the retry's 202, whether it was a replay, and the command's records.
async fn commit_then_crash(mut stack: TestStack) -> (Value, bool, Vec<kafka::Record>) {
    let logs = tempfile::tempdir().expect("log dir");
    let binary = env!("CARGO_BIN_EXE_ackgate-fault").as_ref();
    let mut doomed = stack
        .spawn_bl_process(binary, logs.path().join("doomed.log"))
        .await
        .expect("the instance to crash starts");
    let warm = stack.register(&officer("W-1000"), &[]).await;
    assert_eq!(warm.status(), StatusCode::ACCEPTED, "producer warmed up");

    stack.kafka.pause().expect("Kafka freezes");
    let sending = {
        let (http, url) = (stack.http.clone(), stack.edge_url().to_owned());
        tokio::spawn(async move {
            let request = http
                .post(format!("{url}/v1/officers"))
                .header(http::IDEMPOTENCY_KEY, "lost-reply")
                .json(&officer("W-1001"));
            request.send().await.map(|r| r.status())
        })
    };
    wait_for_decision(&stack, "W-1001", REGISTER_OFFICER, "lost-reply").await;
    stack.nats.stop();
    stack
        .kafka
        .resume()
        .expect("Kafka resumes: the event is written");
    // Committed (the records read are committed ones): the instance may die now.
    eventually(
        Duration::from_secs(30),
        "the first attempt's record",
        || async { (!records_of(&stack, "lost-reply").await.is_empty()).then_some(()) },
    )
    .await;
    doomed.kill();
    stack
        .nats
        .restart()
        .await
        .expect("NATS restarts with its data");
    let first = sending.await.expect("joins");
    assert!(
        first.is_err() || first.as_ref().is_ok_and(|s| s.is_server_error()),
        "the first attempt never got a 202: {first:?}"
    );

    stack.start_bl().await.expect("a new instance");
    let (reply, replayed) = until_accepted_with_headers(&stack, "W-1001", "lost-reply").await;
    let records = records_of(&stack, "lost-reply").await;
    (reply, replayed, records)
}

#[tokio::test]
async fn a_commit_whose_instance_crashed_is_found_again_not_written_twice() {
    let (reply, replayed, records) = commit_then_crash(stack(true).await).await;

    assert!(
        !replayed,
        "no reply was recorded: the retry settled the attempt"
    );
    assert_eq!(records.len(), 1, "exactly one record: {records:?}");
    let record = &records[0];
    assert_eq!(reply["event"]["partition"], record.partition);
    assert_eq!(reply["event"]["offset"], record.offset, "the 202 names it");
}

#[tokio::test]
async fn without_transactions_the_same_crash_writes_a_second_record() {
    let (_, replayed, records) = commit_then_crash(stack(false).await).await;

    assert!(!replayed, "no reply was recorded");
    let event_ids: std::collections::HashSet<_> = records
        .iter()
        .map(|r| r.headers[message::EVENT_ID].clone())
        .collect();
    assert_eq!(event_ids.len(), 1, "one eventId");
    assert_eq!(
        records.len(),
        2,
        "the window transactions close: {records:?}"
    );
}

#[tokio::test]
async fn a_zombie_instance_paused_past_its_lease_cannot_write_a_second_record() {
    let stack = TestStack::start(StackOptions {
        bl_instances: 0,
        projections: false,
        produce_timeout: PRODUCE_TIMEOUT,
        command_timeout: Duration::from_secs(3),
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let logs = tempfile::tempdir().expect("log dir");
    let zombie = stack
        .spawn_bl_process(
            env!("CARGO_BIN_EXE_ackgate-fault").as_ref(),
            logs.path().join("zombie.log"),
        )
        .await
        .expect("the instance to pause starts");
    let warm = stack.register(&officer("Z-1000"), &[]).await;
    assert_eq!(warm.status(), StatusCode::ACCEPTED, "producer warmed up");

    // Commands stream in; the instance is frozen in the middle of its transactions, and a
    // second one starts. Commands the frozen one had begun wait out its lease, then the
    // second instance settles them (fencing the frozen one's transactional id).
    let commands: Vec<(String, String)> = (0..240)
        .map(|n| (format!("Z-{:04}", 2000 + n), format!("zombie-cmd-{n}")))
        .collect();
    let second_stops = tokio_util::sync::CancellationToken::new();
    let (first_round, second_instance) = {
        let sending = stream::iter(&commands).map(|(badge, key)| {
            let stack = &stack;
            async move {
                let response = stack
                    .register(&officer(badge), &[(http::IDEMPOTENCY_KEY, key)])
                    .await;
                response.status()
            }
        });
        #[allow(clippy::async_yields_async)] // the second instance's task, awaited at the end
        let pause_then_take_over = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            zombie.signal("STOP").expect("SIGSTOP");
            let app = bl_services::Application::build(stack.bl_settings())
                .await
                .expect("a second instance");
            tokio::spawn(app.run(second_stops.clone()))
        };
        let (statuses, second) = tokio::join!(
            // Enough at once that the instance is always inside a transaction.
            sending.buffer_unordered(48).collect::<Vec<_>>(),
            pause_then_take_over
        );
        (statuses, second)
    };
    let unanswered = first_round
        .iter()
        .filter(|s| **s != StatusCode::ACCEPTED)
        .count();
    assert!(unanswered > 0, "the pause caught commands in flight");

    let replies: Vec<(String, Value)> = stream::iter(&commands)
        .map(|(badge, key)| {
            let stack = &stack;
            async move { (key.clone(), until_accepted(stack, badge, key).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    zombie.signal("CONT").expect("SIGCONT");
    tokio::time::sleep(Duration::from_secs(5)).await; // the zombie finishes what it was doing

    let committed = stack.read_topic().await;
    for (key, reply) in &replies {
        let records = kafka::of_command(&committed, key);
        assert_eq!(records.len(), 1, "{key}: exactly one record: {records:?}");
        assert_eq!(
            reply["event"]["offset"], records[0].offset,
            "{key}: the 202 names it"
        );
    }
    let (bootstrap, topic) = (stack.kafka.bootstrap(), stack.names.officer_events.clone());
    let written = tokio::task::spawn_blocking(move || kafka::read_all_raw(&bootstrap, &topic))
        .await
        .expect("joins")
        .expect("topic readable");
    second_stops.cancel();
    let _ = second_instance.await;
    // Whether the pause caught the zombie with records written in an open transaction
    // depends on where in a command it froze (often in its ledger writes, not in Kafka), so
    // it is reported, not asserted; the assertions above hold either way.
    eprintln!(
        "zombie: {} records written, {} committed ({} aborted)",
        written.len(),
        committed.len(),
        written.len() - committed.len()
    );
}

#[tokio::test]
async fn a_command_left_unsettled_by_a_dead_instance_is_settled_by_the_next_one_on_its_aggregate() {
    let mut stack = stack(true).await;
    let logs = tempfile::tempdir().expect("log dir");
    let binary = env!("CARGO_BIN_EXE_ackgate-fault").as_ref();
    let mut doomed = stack
        .spawn_bl_process(binary, logs.path().join("doomed.log"))
        .await
        .expect("the instance to die starts");
    let registered = stack.register(&officer("U-1001"), &[]).await;
    assert_eq!(registered.status(), StatusCode::ACCEPTED);

    // The suspension takes the officer's next version, then its instance dies before Kafka
    // answers: nobody is left to settle it, and its client gives up.
    stack.kafka.pause().expect("Kafka freezes");
    let suspend = serde_json::json!({ "badgeNumber": "U-1001", "reason": "Review." });
    let sending = {
        let (http, url, body) = (
            stack.http.clone(),
            stack.edge_url().to_owned(),
            suspend.clone(),
        );
        tokio::spawn(async move {
            let request = http
                .post(format!("{url}/v1/officers/suspensions"))
                .header(http::IDEMPOTENCY_KEY, "abandoned-suspend")
                .json(&body);
            request.send().await.map(|r| r.status())
        })
    };
    wait_for_decision(&stack, "U-1001", "SuspendOfficer", "abandoned-suspend").await;
    doomed.kill();
    stack.kafka.resume().expect("Kafka resumes");
    let _ = sending.await;

    // The next command on the officer finds it unsettled; once its lease has passed, it sends
    // the suspension again with its ids (settling it: one event), then is decided after it.
    stack.start_bl().await.expect("a new instance");
    let rank = serde_json::json!({ "badgeNumber": "U-1001", "rank": "captain" });
    let answers = eventually(
        Duration::from_secs(60),
        "the next command's 202",
        || async {
            let response = stack
                .send(
                    "/v1/officers/rank-changes",
                    &rank,
                    &[(http::IDEMPOTENCY_KEY, "next-rank")],
                )
                .await;
            let status = response.status();
            if status == StatusCode::ACCEPTED {
                return Some(());
            }
            let problem: Value = response.json().await.ok()?;
            assert_eq!(
                problem["code"], "aggregate-busy",
                "only busy while unsettled: {problem}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        },
    );
    answers.await;
    let events: Vec<(String, i64)> = stack
        .read_topic()
        .await
        .iter()
        .filter(|r| r.key == "U-1001")
        .map(|r| {
            let kind = r.value["eventType"].as_str().expect("type").to_owned();
            (kind, r.value["aggregateVersion"].as_i64().expect("version"))
        })
        .collect();
    let expected = [
        ("RegisterOfficerRequested", 1),
        ("SuspendOfficerRequested", 2),
        ("ChangeOfficerRankRequested", 3),
    ];
    let expected: Vec<(String, i64)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    assert_eq!(
        events, expected,
        "the suspension once, then the rank change"
    );
    let retry = stack
        .send(
            "/v1/officers/suspensions",
            &suspend,
            &[(http::IDEMPOTENCY_KEY, "abandoned-suspend")],
        )
        .await;
    assert_eq!(
        retry.status(),
        StatusCode::ACCEPTED,
        "its client's retry gets its 202"
    );
    assert_eq!(retry.headers()[http::IDEMPOTENT_REPLAYED], "true");
}

//! `ackgate`, the support and operator tool, against a real stack: a command traced by
//! either id, searched, the lag read; a poison event that blocks its key discarded with a
//! reason (dead-letter topic, timeline, status) and the rest of the key re-driven.

use std::time::Duration;

use contracts::{headers::http, headers::message, topics::dead_letter_topic};
use e2e_tests::{
    StackOptions, TestStack,
    cli::ackgate,
    eventually,
    stack::officer,
    timeline::{step_names, timeline_until},
};
use reqwest::StatusCode;
use serde_json::Value;

async fn stack() -> TestStack {
    TestStack::start(StackOptions::default())
        .await
        .expect("stack starts")
}

#[tokio::test]
async fn trace_finds_a_command_by_either_id_and_prints_every_step() {
    let stack = stack().await;
    let ids = [
        (http::IDEMPOTENCY_KEY, "cli-key-1"),
        (http::CORRELATION_ID, "cli-corr-1"),
    ];
    let accepted = stack.register(&officer("B-6001"), &ids).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    timeline_until(&stack, "cli-corr-1", "projected", |t| {
        t["outcome"] == "projected"
    })
    .await;

    let table = ackgate(&stack, &["trace", "cli-corr-1"])
        .await
        .expect("traces");
    assert!(
        table.contains("RegisterOfficer command (commandId cli-key-1) on B-6001: PROJECTED"),
        "{table}"
    );
    for step in [
        "received",
        "requested",
        "ledger",
        "decided",
        "appended",
        "answered",
        "applied",
    ] {
        assert!(table.contains(step), "{step} missing:\n{table}");
    }
    assert!(
        table.contains("POST /v1/officers; client chose correlationId, Idempotency-Key"),
        "{table}"
    );

    let by_command_id = ackgate(&stack, &["trace", "cli-key-1", "--json"])
        .await
        .expect("traces");
    let timeline: Value = serde_json::from_str(&by_command_id).expect("json");
    assert_eq!(timeline["correlationId"], "cli-corr-1");
    assert_eq!(timeline["outcome"], "projected");

    let unknown = ackgate(&stack, &["trace", "no-such-id"]).await;
    let error = unknown.expect_err("unknown ids are an error").to_string();
    assert!(
        error.contains("no command with correlationId or commandId no-such-id"),
        "{error}"
    );

    let found = ackgate(&stack, &["timelines", "--aggregate-id", "B-6001"])
        .await
        .expect("searches");
    assert!(
        found.contains("cli-corr-1") && found.contains("1 command(s)"),
        "{found}"
    );
    let invalid = ackgate(&stack, &["timelines", "--limit", "0"]).await;
    assert!(invalid.is_err(), "limit 0 is refused");

    let lag = eventually(Duration::from_secs(20), "lag 0", || async {
        let lag = ackgate(&stack, &["lag"]).await.ok()?;
        lag.contains("0 record(s) behind").then_some(lag)
    })
    .await;
    assert!(lag.contains(&stack.names.officer_events), "{lag}");
}

#[tokio::test]
async fn a_poison_event_is_discarded_with_a_reason_and_its_key_flows_again() {
    let stack = stack().await;
    // A foreign producer writes garbage for B-6100; the next command on B-6100 waits behind it.
    let writer = stack.event_writer().expect("producer");
    let poison = writer
        .write("B-6100", b"not an event")
        .await
        .expect("writes");
    let ids = [(http::CORRELATION_ID, "cli-blocked")];
    let accepted = stack.register(&officer("B-6100"), &ids).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    let status: Value = eventually(
        Duration::from_secs(20),
        "the command to show parked",
        || async {
            let status: Value = stack
                .get("/v1/commands/cli-blocked")
                .await
                .json()
                .await
                .ok()?;
            (status["status"] == "parked").then_some(status)
        },
    )
    .await;
    assert_eq!(
        status["parked"]["code"], "blocked-by-earlier-event",
        "{status}"
    );
    let parked = ackgate(&stack, &["parked", "list"]).await.expect("lists");
    assert_eq!(parked.lines().count(), 2, "{parked}");

    let missing_reason = ackgate(
        &stack,
        &["parked", "discard", &poison.token(), "--reason", " "],
    )
    .await;
    assert!(missing_reason.is_err(), "a discard needs a reason");
    let report = ackgate(
        &stack,
        &[
            "parked",
            "discard",
            &poison.token(),
            "--reason",
            "garbage from a test producer",
            "--redrive",
        ],
    )
    .await
    .expect("discards");
    let report: Value = serde_json::from_str(report.trim()).expect("json");
    assert_eq!(report["discarded"]["code"], "unparseable", "{report}");
    assert_eq!(report["redrive"]["applied"], 1, "{report}");
    assert_eq!(report["redrive"]["releasedKeys"][0], "B-6100");
    let again = ackgate(
        &stack,
        &["parked", "discard", &poison.token(), "--reason", "twice"],
    )
    .await;
    assert!(again.is_err(), "nothing is parked there any more");

    let status: Value = stack
        .get("/v1/commands/cli-blocked")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(status["status"], "projected", "{status}");
    let blocked = timeline_until(&stack, "cli-blocked", "parked, then applied", |t| {
        t["outcome"] == "projected"
    })
    .await;
    let names = step_names(&blocked);
    let parked_at = names.iter().position(|s| s == "projections:parked");
    let applied_at = names.iter().position(|s| s == "projections:applied");
    assert!(parked_at.is_some() && parked_at < applied_at, "{names:?}");
    let garbage = timeline_until(&stack, "corr-B-6100", "parked, then discarded", |t| {
        t["outcome"] == "discarded"
    })
    .await;
    assert_eq!(
        step_names(&garbage),
        ["projections:parked", "projections:discarded"]
    );

    let dead_letters = stack
        .read_topic_named(&dead_letter_topic(&stack.names.officer_events))
        .await;
    let discarded: Vec<_> = dead_letters
        .iter()
        .filter(|r| r.headers.contains_key(message::DISCARD_REASON))
        .collect();
    assert_eq!(discarded.len(), 1, "one discard record");
    assert_eq!(
        discarded[0].headers[message::DISCARD_REASON],
        "garbage from a test producer"
    );
    assert_eq!(
        discarded[0].headers[message::SOURCE_OFFSET],
        poison.offset.to_string()
    );
}

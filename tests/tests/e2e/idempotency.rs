//! Idempotency on commandId: a retry gets the first reply byte for byte, on any instance and
//! after restarts; concurrent retries make one event; a reused key with another body is
//! refused; a refusal leaves nothing behind; the ledger is rebuilt from Kafka.

use bl_services::ops::{LedgerCommand, Operation};
use bytes::Bytes;
use contracts::headers::{http, message};
use e2e_tests::{StackOptions, TestStack, kafka, stack::officer};
use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// The status, correlation header, replay header and body of a response.
async fn parts(response: Response) -> (StatusCode, String, bool, Bytes) {
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let correlation = header(http::CORRELATION_ID).unwrap_or_default();
    let replayed = header(http::IDEMPOTENT_REPLAYED).as_deref() == Some("true");
    (
        status,
        correlation,
        replayed,
        response.bytes().await.expect("body"),
    )
}

#[tokio::test]
async fn a_retry_gets_the_first_reply_byte_for_byte_on_any_instance_and_after_restarts() {
    let mut stack = TestStack::start(StackOptions {
        bl_instances: 2,
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let key = [
        (http::IDEMPOTENCY_KEY, "retry-1"),
        (http::CORRELATION_ID, "first-try"),
    ];
    let (status, correlation, replayed, first) =
        parts(stack.register(&officer("B-3000"), &key).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!((correlation.as_str(), replayed), ("first-try", false));

    for attempt in 0..20 {
        let retry_correlation = format!("retry-{attempt}");
        let headers = [
            (http::IDEMPOTENCY_KEY, "retry-1"),
            (http::CORRELATION_ID, retry_correlation.as_str()),
        ];
        let (status, correlation, replayed, body) =
            parts(stack.register(&officer("B-3000"), &headers).await).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body, first, "attempt {attempt}: the same bytes");
        assert_eq!(correlation, "first-try", "the command's correlationId");
        assert!(replayed, "marked Idempotent-Replayed");
    }
    let served = stack
        .requests_per_instance(&stack.names.domain_service("officer"))
        .await;
    assert!(
        served.len() == 2 && served.iter().all(|n| *n > 0),
        "both instances answered retries: {served:?}"
    );

    stack.stop_all_bl().await;
    stack.start_bl().await.expect("restarts");
    stack.start_bl().await.expect("restarts");
    let (status, _, replayed, body) = parts(stack.register(&officer("B-3000"), &key).await).await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, true));
    assert_eq!(body, first, "the same bytes after every instance restarted");

    let records = stack.read_topic().await;
    assert_eq!(kafka::of_command(&records, "retry-1").len(), 1, "one event");
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn concurrent_attempts_of_one_command_make_one_event_and_one_reply() {
    let stack = TestStack::start(StackOptions {
        bl_instances: 2,
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let body = officer("B-3100");
    let attempts = (0..16).map(|i| {
        let correlation = format!("concurrent-{i}");
        let (stack, body) = (&stack, &body);
        async move {
            let headers = [
                (http::IDEMPOTENCY_KEY, "concurrent-1"),
                (http::CORRELATION_ID, correlation.as_str()),
            ];
            parts(stack.register(body, &headers).await).await
        }
    });
    let answers = join_all(attempts).await;

    let first = &answers[0].3;
    for (status, _, _, reply) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED);
        assert_eq!(reply, first, "every attempt got the same bytes");
    }
    assert_eq!(
        answers
            .iter()
            .filter(|(_, _, replayed, _)| !replayed)
            .count(),
        1,
        "exactly one attempt produced; the others replayed its reply"
    );
    let records = stack.read_topic().await;
    assert_eq!(kafka::of_command(&records, "concurrent-1").len(), 1);
}

#[tokio::test]
async fn a_reused_key_with_another_body_is_refused_and_reordered_members_are_the_same_body() {
    let stack = TestStack::start(StackOptions {
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let key = [(http::IDEMPOTENCY_KEY, "reuse-1")];
    let original = stack.register(&officer("B-3200"), &key).await;
    assert_eq!(original.status(), StatusCode::ACCEPTED);
    let original = original.bytes().await.expect("body");

    let mut changed = officer("B-3200");
    changed["firstName"] = "Bea".into();
    let refused = stack.register(&changed, &key).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let correlation = refused.headers()[http::CORRELATION_ID].clone();
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "idempotency-key-reused");
    assert_eq!(problem["commandId"], "reuse-1");
    assert_eq!(
        problem["correlationId"],
        correlation.to_str().expect("text")
    );

    // The same command with members reordered and spaced out is the same command.
    let reordered = br#"{ "hireDate": "2019-04-01", "email": "ana.reyes@example.org",
        "rank": "sergeant", "lastName": "Reyes", "firstName": "Ana", "badgeNumber": "B-3200" }"#;
    let replay = stack
        .post_raw("/v1/officers", reordered.to_vec(), "application/json", &key)
        .await;
    assert_eq!(replay.status(), StatusCode::ACCEPTED);
    assert_eq!(replay.bytes().await.expect("body"), original);

    assert_eq!(stack.read_topic().await.len(), 1, "no second event");
}

#[tokio::test]
async fn a_refused_command_leaves_nothing_that_blocks_a_corrected_retry() {
    let stack = TestStack::start(StackOptions {
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let key = [(http::IDEMPOTENCY_KEY, "fix-1")];
    let mut invalid = officer("B-3300");
    invalid["rank"] = "general".into();
    let response = stack.register(&invalid, &key).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let corrected = stack.register(&officer("B-3300"), &key).await;
    assert_eq!(
        corrected.status(),
        StatusCode::ACCEPTED,
        "after a schema refusal"
    );

    // A business-rule refusal (badge taken) leaves nothing either.
    let taken_key = [(http::IDEMPOTENCY_KEY, "fix-2")];
    let response = stack.register(&officer("B-3300"), &taken_key).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let corrected = stack.register(&officer("B-3301"), &taken_key).await;
    assert_eq!(corrected.status(), StatusCode::ACCEPTED, "after a 409");

    let records = stack.read_topic().await;
    assert_eq!(records.len(), 2);
    assert_eq!(kafka::of_command(&records, "fix-2")[0].key, "B-3301");
}

#[tokio::test]
async fn a_lost_ledger_is_rebuilt_from_kafka_with_the_same_replies() {
    let mut stack = TestStack::start(StackOptions {
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let mut originals = Vec::new();
    for n in 0..3 {
        let key = format!("rebuild-{n}");
        let response = stack
            .register(
                &officer(&format!("B-340{n}")),
                &[(http::IDEMPOTENCY_KEY, &key)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        originals.push((key, response.bytes().await.expect("body")));
    }

    stack.stop_all_bl().await;
    let jetstream = async_nats::jetstream::new(stack.nats_client.clone());
    for bucket in [
        &stack.names.command_ledger_bucket,
        &stack.names.aggregates_bucket,
    ] {
        jetstream
            .delete_key_value(bucket)
            .await
            .expect("bucket deleted");
    }
    let report = stack
        .ops(Operation::Ledger(LedgerCommand::Rebuild))
        .await
        .expect("rebuild runs");
    assert_eq!(report.len(), 1);
    assert_eq!(report[0]["events"], 3);
    assert_eq!(report[0]["added"], 3);
    assert_eq!(report[0]["aggregatesRestored"], 3);
    stack.start_bl().await.expect("restarts");

    for (n, (key, original)) in originals.iter().enumerate() {
        let retry = stack
            .register(
                &officer(&format!("B-340{n}")),
                &[(http::IDEMPOTENCY_KEY, key)],
            )
            .await;
        assert_eq!(retry.status(), StatusCode::ACCEPTED);
        assert_eq!(retry.headers()[http::IDEMPOTENT_REPLAYED], "true");
        assert_eq!(&retry.bytes().await.expect("body"), original, "{key}");
    }
    let taken = stack
        .register(
            &officer("B-3400"),
            &[(http::IDEMPOTENCY_KEY, "rebuild-new")],
        )
        .await;
    assert_eq!(
        taken.status(),
        StatusCode::CONFLICT,
        "badge claims are back"
    );
    assert_eq!(stack.read_topic().await.len(), 3, "no event was added");

    let again = stack
        .ops(Operation::Ledger(LedgerCommand::Rebuild))
        .await
        .expect("rebuild runs");
    assert_eq!(
        again[0]["alreadyAccepted"], 3,
        "a second rebuild changes nothing"
    );
}

#[tokio::test]
async fn the_ledger_forgets_a_command_after_its_retention() {
    let stack = TestStack::start(StackOptions {
        projections: false,
        ledger_retention: std::time::Duration::from_secs(2),
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let key = [(http::IDEMPOTENCY_KEY, "short-lived")];
    let first = stack.register(&officer("B-3500"), &key).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let show = || {
        stack.ops(Operation::Ledger(LedgerCommand::Show {
            command: "RegisterOfficer".to_owned(),
            command_id: "short-lived".to_owned(),
        }))
    };
    let entry = show().await.expect("shows").remove(0);
    assert_eq!(entry["entry"]["state"], "accepted", "{entry}");

    e2e_tests::eventually(
        std::time::Duration::from_secs(20),
        "the entry to expire",
        || async { show().await.ok()?.first()?["entry"].is_null().then_some(()) },
    )
    .await;
    // Past the retention a retry is a new attempt: it produces again, under the same eventId.
    let late = stack.register(&officer("B-3500"), &key).await;
    assert_eq!(late.status(), StatusCode::ACCEPTED);
    assert!(late.headers().get(http::IDEMPOTENT_REPLAYED).is_none());
    let records = stack.read_topic().await;
    let mine = kafka::of_command(&records, "short-lived");
    assert_eq!(mine.len(), 2);
    assert_eq!(
        mine[0].headers[message::EVENT_ID],
        mine[1].headers[message::EVENT_ID]
    );
}

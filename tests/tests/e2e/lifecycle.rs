//! The officer lifecycle on the officer's current state: every command accepted in turn,
//! each refusal with its code and no event, `If-Match` against the version the query gives
//! as `ETag`, and concurrent commands on one officer across two instances decided one after
//! the other (a serial order explains every 202 and every refusal).

use std::collections::HashMap;

use contracts::headers::http;
use e2e_tests::{
    StackOptions, TestStack,
    stack::{event_position, officer},
};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONTACT: &str = "/v1/officers/contact-changes";
const RANK: &str = "/v1/officers/rank-changes";
const SUSPEND: &str = "/v1/officers/suspensions";
const REINSTATE: &str = "/v1/officers/reinstatements";
const RETIRE: &str = "/v1/officers/retirements";

async fn stack(bl_instances: usize) -> TestStack {
    TestStack::start(StackOptions {
        bl_instances,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts")
}

/// Sends a command; asserts a 202 and returns its event position.
async fn accepted(stack: &TestStack, path: &str, body: &Value, headers: &[(&str, &str)]) -> String {
    let response = stack.send(path, body, headers).await;
    let status = response.status();
    let position = (status == StatusCode::ACCEPTED).then(|| event_position(&response));
    let text = response.text().await.unwrap_or_default();
    position.unwrap_or_else(|| panic!("{path}: {status} {text}"))
}

/// Sends a command; asserts the refusal's status and code, and returns the problem.
async fn refused(
    stack: &TestStack,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
    status: StatusCode,
    code: &str,
) -> Value {
    let response = stack.send(path, body, headers).await;
    assert_eq!(response.status(), status, "{path} {body}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], code, "{problem}");
    assert!(problem["correlationId"].is_string(), "{problem}");
    problem
}

/// The officer as the read models hold it once `position` is applied, and its `ETag`.
async fn officer_at(stack: &TestStack, badge: &str, position: &str) -> (Value, String) {
    let response = stack
        .get_at(&format!("/v1/officers/{badge}"), position)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("text")
        .to_owned();
    (response.json().await.expect("officer"), etag)
}

#[tokio::test]
async fn each_lifecycle_command_changes_the_officer_and_takes_the_next_version() {
    let stack = stack(1).await;
    accepted(&stack, "/v1/officers", &officer("L-1001"), &[]).await;
    let steps = [
        (
            CONTACT,
            json!({ "badgeNumber": "L-1001", "phone": "+1 314 555 0101" }),
        ),
        (
            RANK,
            json!({ "badgeNumber": "L-1001", "rank": "lieutenant" }),
        ),
        (
            SUSPEND,
            json!({ "badgeNumber": "L-1001", "reason": "Pending review." }),
        ),
        (
            REINSTATE,
            json!({ "badgeNumber": "L-1001", "note": "Review closed." }),
        ),
        (
            RETIRE,
            json!({ "badgeNumber": "L-1001", "retiredOn": "2026-11-30" }),
        ),
    ];
    let mut last = String::new();
    for (path, body) in &steps {
        last = accepted(&stack, path, body, &[]).await;
    }
    let (view, etag) = officer_at(&stack, "L-1001", &last).await;
    assert_eq!(etag, "\"6\"");
    assert_eq!(view["version"], 6);
    assert_eq!(view["status"], "retired");
    assert_eq!(view["rank"], "lieutenant");
    assert_eq!(view["phone"], "+1 314 555 0101");
    assert_eq!(view["retiredOn"], "2026-11-30");
    let outcomes: Vec<&str> = view["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(
        outcomes,
        [
            "registered",
            "changed",
            "changed",
            "changed",
            "changed",
            "changed"
        ]
    );

    let records = stack.read_topic().await;
    let versions: Vec<i64> = records
        .iter()
        .filter(|r| r.key == "L-1001")
        .map(|r| r.value["aggregateVersion"].as_i64().expect("a version"))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let types: Vec<&str> = records
        .iter()
        .map(|r| r.value["eventType"].as_str().expect("type"))
        .collect();
    assert!(types.contains(&"RetireOfficerRequested"), "{types:?}");
}

#[tokio::test]
async fn refusals_judged_on_the_current_state_write_nothing() {
    let stack = stack(1).await;
    let suspend = json!({ "badgeNumber": "L-2001", "reason": "Review." });
    let problem = refused(
        &stack,
        SUSPEND,
        &suspend,
        &[(http::CORRELATION_ID, "corr-missing")],
        StatusCode::NOT_FOUND,
        "aggregate-not-found",
    )
    .await;
    assert_eq!(problem["correlationId"], "corr-missing");

    accepted(&stack, "/v1/officers", &officer("L-2001"), &[]).await;
    let same_rank = json!({ "badgeNumber": "L-2001", "rank": "sergeant" });
    refused(
        &stack,
        RANK,
        &same_rank,
        &[],
        StatusCode::CONFLICT,
        "no-change",
    )
    .await;
    let reinstate = json!({ "badgeNumber": "L-2001" });
    refused(
        &stack,
        REINSTATE,
        &reinstate,
        &[],
        StatusCode::CONFLICT,
        "no-change",
    )
    .await;
    refused(
        &stack,
        "/v1/officers",
        &officer("L-2001"),
        &[],
        StatusCode::CONFLICT,
        "badge-already-registered",
    )
    .await;

    accepted(
        &stack,
        RETIRE,
        &json!({ "badgeNumber": "L-2001", "retiredOn": "2026-01-31" }),
        &[],
    )
    .await;
    for (path, body) in [
        (SUSPEND, suspend.clone()),
        (RANK, json!({ "badgeNumber": "L-2001", "rank": "chief" })),
        (
            RETIRE,
            json!({ "badgeNumber": "L-2001", "retiredOn": "2026-02-01" }),
        ),
        (
            CONTACT,
            json!({ "badgeNumber": "L-2001", "email": "new@example.org" }),
        ),
    ] {
        refused(
            &stack,
            path,
            &body,
            &[],
            StatusCode::CONFLICT,
            "transition-not-allowed",
        )
        .await;
    }
    let records = stack.read_topic().await;
    assert_eq!(
        records.len(),
        2,
        "a registration and a retirement, nothing else"
    );

    let empty_change = json!({ "badgeNumber": "L-2001" });
    let problem = refused(
        &stack,
        CONTACT,
        &empty_change,
        &[],
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema-violation",
    )
    .await;
    assert!(
        problem["violations"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    let unknown = stack.send("/v1/promotions", &json!({}), &[]).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let problem: Value = unknown.json().await.expect("problem");
    assert_eq!(problem["code"], "not-found");
}

#[tokio::test]
async fn if_match_accepts_only_the_version_the_etag_named() {
    let stack = stack(1).await;
    let registered = accepted(&stack, "/v1/officers", &officer("L-3001"), &[]).await;
    let (_, etag) = officer_at(&stack, "L-3001", &registered).await;
    assert_eq!(etag, "\"1\"");

    let rank = json!({ "badgeNumber": "L-3001", "rank": "captain" });
    accepted(&stack, RANK, &rank, &[(http::IF_MATCH, &etag)]).await;
    let suspend = json!({ "badgeNumber": "L-3001", "reason": "Review." });
    let stale = refused(
        &stack,
        SUSPEND,
        &suspend,
        &[(http::IF_MATCH, &etag)],
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert!(
        stale["detail"]
            .as_str()
            .is_some_and(|d| d.contains("\"2\"")),
        "{stale}"
    );
    accepted(
        &stack,
        SUSPEND,
        &suspend,
        &[(http::IF_MATCH, "\"7\", \"2\"")],
    )
    .await;
    accepted(
        &stack,
        REINSTATE,
        &json!({ "badgeNumber": "L-3001" }),
        &[(http::IF_MATCH, "*")],
    )
    .await;

    let missing = json!({ "badgeNumber": "L-3999", "reason": "Review." });
    refused(
        &stack,
        SUSPEND,
        &missing,
        &[(http::IF_MATCH, "*")],
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    for malformed in ["3", "W/\"3\"", "\"three\""] {
        refused(
            &stack,
            SUSPEND,
            &suspend,
            &[(http::IF_MATCH, malformed)],
            StatusCode::BAD_REQUEST,
            "invalid-header",
        )
        .await;
    }
    let versions: Vec<i64> = stack
        .read_topic()
        .await
        .iter()
        .map(|r| r.value["aggregateVersion"].as_i64().expect("version"))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4], "refusals wrote nothing");
}

/// What the officer is after each accepted event, for the serial-order check.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Officer {
    suspended: bool,
    rank: &'static str,
}

const RANKS: [&str; 3] = ["sergeant", "lieutenant", "captain"];

/// A command of the race and the code it gets when judged on `officer` (`None`: accepted).
fn judge(command: &(usize, &'static str, Value), officer: Officer) -> Option<&'static str> {
    match command.1 {
        "suspend" => officer.suspended.then_some("no-change"),
        "reinstate" => (!officer.suspended).then_some("no-change"),
        _ => (officer.rank == command.2["rank"]).then_some("no-change"),
    }
}

fn after(command: &(usize, &'static str, Value), officer: Officer) -> Officer {
    match command.1 {
        "suspend" => Officer {
            suspended: true,
            ..officer
        },
        "reinstate" => Officer {
            suspended: false,
            ..officer
        },
        _ => {
            let rank = RANKS
                .iter()
                .find(|r| command.2["rank"] == **r)
                .copied()
                .unwrap_or("?");
            Officer { rank, ..officer }
        }
    }
}

#[tokio::test]
async fn concurrent_changes_across_two_instances_are_decided_in_one_serial_order() {
    let stack = stack(2).await;
    accepted(&stack, "/v1/officers", &officer("L-4001"), &[]).await;
    let commands: Vec<(usize, &'static str, Value)> = (0..24)
        .map(|n| match n % 4 {
            0 => (
                n,
                "suspend",
                json!({ "badgeNumber": "L-4001", "reason": format!("Review {n}.") }),
            ),
            1 => (n, "reinstate", json!({ "badgeNumber": "L-4001" })),
            _ => (
                n,
                "rank",
                json!({ "badgeNumber": "L-4001", "rank": RANKS[n % 3] }),
            ),
        })
        .collect();
    let sends = commands.iter().map(|(n, kind, body)| {
        let path = match *kind {
            "suspend" => SUSPEND,
            "reinstate" => REINSTATE,
            _ => RANK,
        };
        let key = format!("race-{n}");
        let stack = &stack;
        async move {
            let response = stack
                .send(path, body, &[(http::IDEMPOTENCY_KEY, &key)])
                .await;
            let status = response.status();
            let answer: Value = response.json().await.expect("json");
            (status, answer)
        }
    });
    let answers = join_all(sends).await;
    let per_instance = stack
        .requests_per_instance(&stack.names.domain_service("officer"))
        .await;
    assert!(
        per_instance.iter().filter(|n| **n > 0).count() == 2,
        "both instances decided: {per_instance:?}"
    );

    // The topic is the serial order: versions without a gap, one event per 202.
    let events: Vec<Value> = stack
        .read_topic()
        .await
        .into_iter()
        .map(|r| r.value)
        .collect();
    let versions: Vec<i64> = events
        .iter()
        .map(|e| e["aggregateVersion"].as_i64().expect("v"))
        .collect();
    assert_eq!(
        versions,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "no version twice, none skipped"
    );
    let accepted_ids: HashMap<&str, &Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .map(|(_, a)| (a["commandId"].as_str().expect("id"), a))
        .collect();
    assert_eq!(accepted_ids.len() + 1, events.len(), "one event per 202");
    let busy = answers
        .iter()
        .filter(|(_, a)| a["code"] == "aggregate-busy")
        .count();
    assert!(
        !accepted_ids.is_empty() && busy <= commands.len() / 2,
        "commands were judged on the state, not turned away: {answers:?}"
    );

    // Replaying the topic explains every 202 (its rule held on the state before it) and
    // every refusal (its rule failed on some state the officer was in).
    let mut officer = Officer {
        suspended: false,
        rank: "sergeant",
    };
    let mut states = vec![officer];
    for event in &events[1..] {
        let id = event["commandId"].as_str().expect("id");
        let n: usize = id
            .trim_start_matches("race-")
            .parse()
            .expect("a race command");
        let command = &commands[n];
        assert_eq!(
            judge(command, officer),
            None,
            "{id} was accepted on a state that refuses it"
        );
        officer = after(command, officer);
        states.push(officer);
    }
    for ((status, answer), command) in answers.iter().zip(&commands) {
        if *status == StatusCode::ACCEPTED {
            continue;
        }
        let code = answer["code"].as_str().expect("code");
        assert!(
            code == "aggregate-busy" || states.iter().any(|s| judge(command, *s) == Some(code)),
            "refusal {code} of {command:?} fits no state the officer was in"
        );
    }
}

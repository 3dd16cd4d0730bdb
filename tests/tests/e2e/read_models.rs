//! The read models through the edge, on both stores: officer with history, filtered and
//! paginated lists, name search, command status by commandId, stats with lag, the
//! read-your-writes position, and precise refusals of bad query parameters.

use std::time::Duration;

use e2e_tests::{StackOptions, TestStack, eventually, stack::event_position};
use reqwest::StatusCode;
use serde_json::{Value, json};

const OFFICERS: [(&str, &str, &str, &str, &str); 5] = [
    ("B-101", "Ana", "Reyes", "sergeant", "2019-04-01"),
    ("B-102", "Bo", "Reyes-Smith", "officer", "2021-06-15"),
    ("B-103", "Cyd", "Okafor", "sergeant", "2017-01-09"),
    ("B-104", "Dee", "Smith", "captain", "2020-11-30"),
    ("B-105", "Eli", "Anand", "sergeant", "2022-02-02"),
];

fn body((badge, first, last, rank, hired): (&str, &str, &str, &str, &str)) -> Value {
    json!({
        "badgeNumber": badge, "firstName": first, "lastName": last, "rank": rank,
        "email": "someone@example.org", "hireDate": hired
    })
}

async fn get_with(stack: &TestStack, path: &str, position: Option<&str>) -> reqwest::Response {
    match position {
        Some(position) => stack.get_at(path, position).await,
        None => stack.get(path).await,
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

fn badges(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["badgeNumber"].as_str().expect("badge").to_owned())
        .collect()
}

/// Registers the officers and reads each back at once with its 202's position.
async fn register_and_read_your_writes(stack: &TestStack) -> Vec<String> {
    let mut command_ids = Vec::new();
    for officer in OFFICERS {
        let key = format!("cmd-{}", officer.0);
        let accepted = stack
            .register(&body(officer), &[("idempotency-key", &key)])
            .await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        let position = event_position(&accepted);
        let read = get_with(
            stack,
            &format!("/v1/officers/{}", officer.0),
            Some(&position),
        )
        .await;
        assert_eq!(
            read.status(),
            StatusCode::OK,
            "read-your-writes for {}",
            officer.0
        );
        let detail = json_of(read).await;
        assert_eq!(detail["lastName"], officer.2);
        assert_eq!(detail["history"][0]["outcome"], "registered");
        assert_eq!(detail["history"][0]["commandId"], key);
        command_ids.push(key);
    }
    command_ids
}

async fn read_models_answer_every_query(options: StackOptions) {
    let stack = TestStack::start(options).await.expect("stack starts");
    let command_ids = register_and_read_your_writes(&stack).await;

    let sergeants = json_of(stack.get("/v1/officers?rank=sergeant").await).await;
    assert_eq!(badges(&sergeants), ["B-101", "B-103", "B-105"]);
    let hired = json_of(
        stack
            .get("/v1/officers?hiredFrom=2019-01-01&hiredTo=2021-12-31")
            .await,
    )
    .await;
    assert_eq!(badges(&hired), ["B-101", "B-102", "B-104"]);

    let mut listed = Vec::new();
    let mut path = "/v1/officers?limit=2".to_owned();
    loop {
        let page = json_of(stack.get(&path).await).await;
        listed.extend(badges(&page));
        let Some(cursor) = page["nextCursor"].as_str() else {
            break;
        };
        path = format!("/v1/officers?limit=2&cursor={cursor}");
    }
    assert_eq!(listed, ["B-101", "B-102", "B-103", "B-104", "B-105"]);

    let smiths = json_of(stack.get("/v1/officers/search?q=smith").await).await;
    let mut found = badges(&smiths);
    found.sort();
    assert_eq!(found, ["B-102", "B-104"]);
    let prefix = json_of(stack.get("/v1/officers/search?q=rey%20sm").await).await;
    assert_eq!(badges(&prefix), ["B-102"]);

    let by_command = stack
        .get(&format!("/v1/commands?commandId={}", command_ids[2]))
        .await;
    assert_eq!(by_command.status(), StatusCode::OK);
    let status = json_of(by_command).await;
    assert_eq!(
        (status["status"].as_str(), status["aggregateId"].as_str()),
        (Some("projected"), Some("B-103"))
    );

    let stats = eventually(Duration::from_secs(10), "stats without lag", || async {
        let stats = json_of(stack.get("/v1/stats").await).await;
        (stats["lagRecords"] == 0).then_some(stats)
    })
    .await;
    assert_eq!(stats["officers"], 5);
    assert!(stats["lastEventAt"].is_string(), "{stats}");
    assert_eq!(stats["officersByRank"]["sergeant"], 3);
    // Published counts offsets, transaction markers included; projected has moved past them.
    for partition in stats["partitions"].as_array().expect("partitions") {
        assert_eq!(partition["published"], partition["projected"], "{stats}");
    }
    assert_eq!(stats["lagSeconds"], 0.0);
    refuses_bad_queries(&stack).await;
}

/// Each bad query is a 400 `invalid-query` (or 503 `not-yet-projected`) problem with the
/// request's correlationId.
async fn refuses_bad_queries(stack: &TestStack) {
    let far_ahead = format!(
        "/v1/officers/B-101?minPosition={}:0:999999",
        stack.names.officer_events
    );
    let refusals = [
        ("/v1/officers?limit=0", 400, "invalid-query"),
        ("/v1/officers?limit=501", 400, "invalid-query"),
        ("/v1/officers?rank=general", 400, "invalid-query"),
        ("/v1/officers?hiredFrom=2020-13-01", 400, "invalid-query"),
        (
            "/v1/officers?hiredFrom=2021-01-01&hiredTo=2020-01-01",
            400,
            "invalid-query",
        ),
        ("/v1/officers?cursor=zz", 400, "invalid-query"),
        ("/v1/officers?color=blue", 400, "invalid-query"),
        ("/v1/officers/search?q=%20-", 400, "invalid-query"),
        ("/v1/officers/search", 400, "invalid-query"),
        ("/v1/commands", 400, "invalid-query"),
        (
            "/v1/officers/B-101?minPosition=nonsense",
            400,
            "invalid-query",
        ),
        (
            "/v1/officers/B-101?minPosition=other.topic:0:1",
            400,
            "invalid-query",
        ),
        ("/v1/officers/B-999", 404, "not-found"),
        (far_ahead.as_str(), 503, "not-yet-projected"),
    ];
    for (path, status, code) in refusals {
        let response = stack
            .http
            .get(format!("{}{path}", stack.edge_url()))
            .header("x-correlation-id", "corr-bad-query")
            .send()
            .await
            .expect("edge answers");
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("text").to_owned());
        let problem = json_of(response).await;
        assert_eq!(
            (problem["code"].as_str(), problem["correlationId"].as_str()),
            (Some(code), Some("corr-bad-query")),
            "{path}"
        );
        assert_eq!(
            retry_after.is_some(),
            status == 503,
            "{path}: Retry-After only when retrying helps"
        );
    }
}

#[tokio::test]
async fn read_models_in_memory_answer_every_query() {
    read_models_answer_every_query(StackOptions {
        read_wait_max: Duration::from_millis(500),
        ..StackOptions::default()
    })
    .await;
}

#[tokio::test]
async fn read_models_in_postgres_answer_every_query() {
    read_models_answer_every_query(StackOptions {
        postgres: true,
        read_wait_max: Duration::from_millis(500),
        ..StackOptions::default()
    })
    .await;
}

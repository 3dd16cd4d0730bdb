//! Projections rebuild their read models from the topic when they restart.

use contracts::headers::http;
use std::time::Duration;

use e2e_tests::{StackOptions, TestStack, eventually, stack::officer};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn restarted_projections_rebuild_the_read_models_from_the_topic() {
    let mut stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");
    let badges = ["B-9001", "B-9002", "B-9003"];
    for badge in badges {
        let correlation_id = format!("corr-{badge}");
        let response = stack
            .register(&officer(badge), &[(http::CORRELATION_ID, &correlation_id)])
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        stack.wait_until_projected(&correlation_id).await;
    }

    stack.stop_projections().await;
    // The stopped responder's unsubscribe reaches the server asynchronously; until it does,
    // a query can still time out (504) instead of failing fast.
    let problem: Value = eventually(Duration::from_secs(20), "queries to fail fast", || async {
        let while_down = stack.get("/v1/officers/B-9001").await;
        (while_down.status() == StatusCode::SERVICE_UNAVAILABLE)
            .then_some(while_down.json().await.ok()?)
    })
    .await;
    assert_eq!(problem["code"], "projection-unavailable");

    stack
        .start_projections()
        .await
        .expect("projections restart");
    for badge in badges {
        let status = stack.wait_until_projected(&format!("corr-{badge}")).await;
        assert_eq!(status["aggregateId"], badge);
        let officer: Value = stack
            .get(&format!("/v1/officers/{badge}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(officer["badgeNumber"], badge);
    }
}

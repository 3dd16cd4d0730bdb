//! Reading command timelines through the edge, as support staff would.

use std::time::Duration;

use serde_json::Value;

use crate::TestStack;

/// Waits until the timeline of `correlation_id` satisfies `done`, and returns it; fails
/// with the last timeline seen.
pub async fn timeline_until(
    stack: &TestStack,
    correlation_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/v1/commands/{correlation_id}/timeline");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        let response = stack.get(&path).await;
        if response.status().is_success() {
            last = response.json().await.unwrap_or_default();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last timeline: {last:#}");
}

/// Each step as `component:step`, oldest first (`bl-service:answered`).
pub fn step_names(timeline: &Value) -> Vec<String> {
    steps(timeline)
        .iter()
        .map(|s| format!("{}:{}", text(&s["component"]), text(&s["step"])))
        .collect()
}

/// The steps of one attempt (1 for the first request).
pub fn attempt_steps(timeline: &Value, attempt: u64) -> Vec<String> {
    steps(timeline)
        .iter()
        .filter(|s| s["attempt"].as_u64() == Some(attempt))
        .map(|s| format!("{}:{}", text(&s["component"]), text(&s["step"])))
        .collect()
}

/// The first step named `name` (`ledger`, `applied`, ...).
pub fn step<'a>(timeline: &'a Value, name: &str) -> Option<&'a Value> {
    steps(timeline).iter().find(|s| s["step"] == name)
}

fn steps(timeline: &Value) -> &[Value] {
    timeline["steps"].as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

//! Reading command timelines through the edge, as support staff would.

use std::time::Duration;

use serde_json::Value;

use crate::{TestStack, eventually};

/// Waits until the timeline of `correlation_id` satisfies `done`, and returns it.
pub async fn timeline_until(
    stack: &TestStack,
    correlation_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/v1/commands/{correlation_id}/timeline");
    eventually(Duration::from_secs(20), what, || async {
        let response = stack.get(&path).await;
        if !response.status().is_success() {
            return None;
        }
        let timeline: Value = response.json().await.ok()?;
        done(&timeline).then_some(timeline)
    })
    .await
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

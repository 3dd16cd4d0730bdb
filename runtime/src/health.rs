//! `/health` (the process is up), `/ready` (it can do its job) and `/metrics` (Prometheus),
//! on every service.

use std::sync::Arc;

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

/// A readiness check: `Ok` when ready, otherwise why not.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Routes `/health`, `/ready` and `/metrics`; merge into a service's router.
pub fn health_router(service: &'static str, ready: Readiness) -> Router {
    Router::new()
        .route("/health", get(move || health(service)))
        .route("/ready", get(readiness))
        .route("/metrics", get(crate::metrics::scrape))
        .with_state(ready)
}

async fn health(service: &'static str) -> Json<Value> {
    Json(json!({ "status": "up", "service": service }))
}

async fn readiness(State(ready): State<Readiness>) -> (StatusCode, Json<Value>) {
    match ready() {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not-ready", "reason": reason })),
        ),
    }
}

/// Ready when every check is; otherwise the first reason.
pub fn all_ready(checks: Vec<Readiness>) -> Readiness {
    Arc::new(move || checks.iter().try_for_each(|check| check()))
}

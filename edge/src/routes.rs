//! The REST API: `/v1/...` routes, health, and problem answers for everything else.

mod commands;
mod queries;

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Router, middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use contracts::{ErrorCode, Names};
use runtime::{Readiness, health_router};

use crate::{
    context::{RequestContext, with_request_context},
    direct::DirectCommands,
    problem::ProblemResponse,
    requester::Requester,
};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// NATS request/reply.
    pub requester: Requester,
    /// Commands accepted by the edge itself (Option A), if any.
    pub direct: Option<Arc<DirectCommands>>,
    /// Largest accepted command body.
    pub body_limit_bytes: usize,
    /// Wait for a BL reply.
    pub command_timeout: Duration,
    /// Wait for a projection's answer.
    pub query_timeout: Duration,
    /// The subjects requests go to, in this deployment's namespace.
    pub names: Names,
}

/// The whole router, with the request-context middleware around every route.
pub fn router(state: AppState, ready: Readiness) -> Router {
    Router::new()
        .route(
            "/v1/officers",
            post(commands::register_officer).get(queries::officer_list),
        )
        .route("/v1/officers/search", get(queries::officer_search))
        .route("/v1/officers/{badge_number}", get(queries::officer))
        .route("/v1/commands", get(queries::command_by_id))
        .route(
            "/v1/commands/{correlation_id}",
            get(queries::command_status),
        )
        .route("/v1/stats", get(queries::stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::new(state))
        .merge(health_router("edge", ready))
        .layer(middleware::from_fn(with_request_context))
}

async fn not_found(Extension(ctx): Extension<RequestContext>) -> Response {
    ProblemResponse(ctx.problem(ErrorCode::NotFound, "no such resource")).into_response()
}

async fn method_not_allowed(Extension(ctx): Extension<RequestContext>) -> Response {
    ProblemResponse(ctx.problem(
        ErrorCode::MethodNotAllowed,
        "this resource does not accept this method",
    ))
    .into_response()
}

//! The REST API: the catalog's command routes, the query routes, health, and problem
//! answers for everything else.

mod commands;
mod console;
mod docs;
mod queries;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    Extension, Router, middleware,
    response::{IntoResponse, Response},
    routing::{MethodRouter, get},
};
use contracts::{
    Catalog, ErrorCode, Names,
    catalog::{CommandPath, HttpMethod, HttpRoute},
};
use runtime::{Readiness, health_router};

use crate::{
    context::{RequestContext, with_request_context},
    direct::DirectPath,
    problem::ProblemResponse,
    requester::Requester,
};

pub use commands::{CommandRoute, RouteVersion, Target};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// NATS request/reply.
    pub requester: Requester,
    /// The producer of commands accepted by the edge itself (Option A), if the catalog has
    /// any.
    pub direct: Option<Arc<DirectPath>>,
    /// Largest accepted command body.
    pub body_limit_bytes: usize,
    /// Wait for a BL reply.
    pub command_timeout: Duration,
    /// Wait for a projection's answer.
    pub query_timeout: Duration,
    /// The subjects requests go to, in this deployment's namespace.
    pub names: Names,
    /// The OpenAPI document of this edge's catalog, serialized once.
    pub openapi: bytes::Bytes,
    /// The AsyncAPI document of this edge's catalog, serialized once.
    pub asyncapi: bytes::Bytes,
    /// Where the steps of each command request are published.
    pub timeline: runtime::Timeline,
}

type Routes = BTreeMap<String, MethodRouter<Arc<AppState>>>;

/// The whole router, with the request-context middleware around every route.
pub fn router(state: AppState, catalog: &Catalog, ready: Readiness) -> Router {
    let mut routes = Routes::new();
    let mut add = |path: &str, method: MethodRouter<Arc<AppState>>| {
        let merged = match routes.remove(path) {
            Some(existing) => existing.merge(method),
            None => method,
        };
        routes.insert(path.to_owned(), merged);
    };
    add("/v1/officers", get(queries::officer_list));
    add("/v1/officers/search", get(queries::officer_search));
    add("/v1/officers/{badge_number}", get(queries::officer));
    add(
        "/v1/officers/{badge_number}/observations",
        get(queries::observations),
    );
    add("/v1/commands", get(queries::command_by_id));
    add(
        "/v1/commands/{correlation_id}",
        get(queries::command_status),
    );
    add(
        "/v1/commands/{correlation_id}/timeline",
        get(queries::command_timeline),
    );
    add("/v1/timelines", get(queries::timeline_search));
    add("/v1/stats", get(queries::stats));
    add("/openapi.json", get(docs::openapi));
    add("/asyncapi.json", get(docs::asyncapi));
    add("/docs", get(docs::page));
    add("/docs/swagger-ui-bundle.js", get(docs::bundle));
    add("/docs/swagger-ui.css", get(docs::style));
    add("/console", get(console::page));
    add("/console/{file}", get(console::file));
    for route in catalog.routes() {
        let command = Arc::new(command_route(catalog, &route, &state.names));
        add(&route.path, command_method(route.method, command));
    }
    routes
        .into_iter()
        .fold(Router::new(), |router, (path, method)| {
            router.route(&path, method)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::new(state))
        .merge(health_router("edge", ready))
        .layer(middleware::from_fn(with_request_context))
}

/// The versions served on `route`, with their subjects and topics in the namespace.
pub fn command_route(catalog: &Catalog, route: &HttpRoute, names: &Names) -> CommandRoute {
    let versions = catalog
        .versions_on(route)
        .into_iter()
        .map(|entry| {
            let spec = &entry.spec;
            let target = match (&spec.subject, spec.path) {
                (Some(subject), CommandPath::BusinessLogic) => Target::Service {
                    subject: names.namespace.dotted(subject),
                },
                _ => Target::Direct {
                    topic: names.namespace.dotted(&spec.topic),
                },
            };
            RouteVersion {
                entry: entry.clone(),
                target,
            }
        })
        .collect();
    CommandRoute { versions }
}

fn command_method(method: HttpMethod, route: Arc<CommandRoute>) -> MethodRouter<Arc<AppState>> {
    let handler = move |state, ctx, headers, body| {
        commands::command(Arc::clone(&route), state, ctx, headers, body)
    };
    match method {
        HttpMethod::Post => axum::routing::post(handler),
        HttpMethod::Put => axum::routing::put(handler),
        HttpMethod::Patch => axum::routing::patch(handler),
    }
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

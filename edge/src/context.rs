//! Per-request identity: every request gets a correlationId (the client's, or a new one) and
//! trace context, runs inside a span carrying them (the trace's server span), and answers
//! with `X-Correlation-Id`.

use std::time::Instant;

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use contracts::{
    ErrorCode, Problem,
    headers::http,
    ids::{self, TraceParent},
};
use tracing::{Instrument, Span};

use crate::{observe, problem::ProblemResponse};

/// The ids of the request being served, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Tracing key, echoed in the `X-Correlation-Id` response header.
    pub correlation_id: String,
    /// Trace context to pass downstream (a child of the caller's, or a new root).
    pub traceparent: TraceParent,
}

impl RequestContext {
    /// A problem for this request.
    pub fn problem(&self, code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem::new(code, detail, &self.correlation_id)
    }
}

/// Middleware: assigns the ids, instruments the request and stamps the response.
pub async fn with_request_context(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (correlation_id, invalid) = correlation_id(request.headers());
    let (span, traceparent) = observe::server_span(
        &request,
        &correlation_id,
        traceparent(request.headers()).as_ref(),
    );
    let (method, route) = (
        request.method().clone(),
        observe::route(&request).to_owned(),
    );
    let context = RequestContext {
        correlation_id: correlation_id.clone(),
        traceparent,
    };
    async move {
        let mut response = match invalid {
            Some(problem) => ProblemResponse(problem).into_response(),
            None => {
                request.extensions_mut().insert(context);
                next.run(request).await
            }
        };
        // A handler may have set it already: a replayed command answers under its own id.
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response
                .headers_mut()
                .entry(http::CORRELATION_ID)
                .or_insert(value);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        observe::served(&Span::current(), method.as_str(), &route, status, elapsed);
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "request served"
        );
        response
    }
    .instrument(span)
    .await
}

/// The client's correlationId when valid; otherwise a new one and, if the client sent an
/// invalid one, the problem to answer with.
fn correlation_id(headers: &HeaderMap) -> (String, Option<Problem>) {
    let Some(raw) = headers.get(http::CORRELATION_ID) else {
        return (ids::generate_id(), None);
    };
    match raw.to_str() {
        Ok(id) if ids::is_valid_client_id(id) => (id.to_owned(), None),
        _ => {
            let generated = ids::generate_id();
            let detail = format!(
                "X-Correlation-Id must be 1-{} characters of A-Z a-z 0-9 . _ : -; this request was given {generated}",
                ids::MAX_CLIENT_ID_LEN
            );
            let problem = Problem::new(ErrorCode::InvalidHeader, detail, &generated);
            (generated, Some(problem))
        }
    }
}

/// The caller's trace context, if it sent a valid one.
fn traceparent(headers: &HeaderMap) -> Option<TraceParent> {
    headers
        .get(http::TRACEPARENT)
        .and_then(|raw| raw.to_str().ok())
        .and_then(TraceParent::parse)
}

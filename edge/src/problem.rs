//! RFC 9457 problem responses.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contracts::{
    Problem,
    headers::{http, media},
};

/// A problem, answered as `application/problem+json` with its status, `Retry-After` when
/// the code is transient, and `X-Correlation-Id` equal to the body's (a retry of a command
/// is answered under the correlationId the command was first sent with).
#[derive(Debug)]
pub struct ProblemResponse(pub Problem);

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        let problem = self.0;
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match serde_json::to_vec(&problem) {
            Ok(body) => body,
            Err(e) => {
                // A problem is strings and numbers: this is a defect, answered plainly.
                tracing::error!(error = %e, "problem does not serialize");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        let mut response =
            (status, [(header::CONTENT_TYPE, media::PROBLEM_JSON)], body).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = problem.code.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Ok(id) = HeaderValue::from_str(&problem.correlation_id) {
            headers.insert(http::CORRELATION_ID, id);
        }
        response
    }
}

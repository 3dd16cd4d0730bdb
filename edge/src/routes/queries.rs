//! `GET` routes: answered by the projections over NATS request/reply.

use std::sync::Arc;

use axum::{
    Extension,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use contracts::{headers::media, officer::OfficerQuery, status::CommandStatusQuery, subjects};
use serde::Serialize;

use super::AppState;
use crate::{context::RequestContext, problem::ProblemResponse, requester::Upstream};

/// `GET /v1/commands/{correlationId}`: what happened to a command.
pub(super) async fn command_status(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(correlation_id): Path<String>,
) -> Response {
    query(
        &state,
        &ctx,
        subjects::QUERY_COMMAND_STATUS,
        &CommandStatusQuery { correlation_id },
    )
    .await
}

/// `GET /v1/officers/{badgeNumber}`: one officer from the read model.
pub(super) async fn officer(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Path(badge_number): Path<String>,
) -> Response {
    query(
        &state,
        &ctx,
        subjects::QUERY_OFFICER,
        &OfficerQuery { badge_number },
    )
    .await
}

async fn query(
    state: &AppState,
    ctx: &RequestContext,
    subject: &'static str,
    query: &impl Serialize,
) -> Response {
    let body = match serde_json::to_vec(query) {
        Ok(body) => body,
        Err(e) => {
            return ProblemResponse(ctx.problem(contracts::ErrorCode::Internal, e.to_string()))
                .into_response();
        }
    };
    let answer = state
        .requester
        .request(
            ctx,
            Upstream::Queries,
            subject,
            async_nats::HeaderMap::new(),
            body.into(),
            state.query_timeout,
        )
        .await;
    match answer {
        Ok(view) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, media::JSON)],
            view.payload,
        )
            .into_response(),
        Err(problem) => ProblemResponse(problem).into_response(),
    }
}

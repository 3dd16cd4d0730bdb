//! `POST /v1/officers`: the command path. The edge checks only what it must to protect the
//! bus (media type, size, JSON well-formedness); the BL service does the rest. A command
//! configured as direct (Option A, see [`crate::direct`]) is accepted by the edge itself.

use std::sync::Arc;

use axum::{
    Extension,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use contracts::{
    CommandAccepted, ErrorCode, Problem,
    headers::{http, media, message},
    ids,
};
use http_body_util::LengthLimitError;
use runtime::nats;

use super::AppState;
use crate::{context::RequestContext, problem::ProblemResponse, requester::Upstream};

/// Registers an officer: 202 once the event is in Kafka, a problem otherwise.
pub(super) async fn register_officer(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let direct = state
        .direct
        .as_deref()
        .filter(|d| d.takes_register_officer());
    let answer = async {
        let (command_id, body) = read_command(&state, &ctx, &headers, body).await?;
        match direct {
            Some(direct) => {
                let accepted = direct.register_officer(&ctx, &command_id, &body).await?;
                accepted_directly(&accepted)
                    .map_err(|detail| refuse(&ctx, &command_id, ErrorCode::Internal, detail))
            }
            None => {
                let subject = &state.names.register_officer;
                send_command(&state, &ctx, &command_id, body, subject).await
            }
        }
    };
    match answer.await {
        Ok(response) => response,
        Err(problem) => ProblemResponse(problem).into_response(),
    }
}

fn refuse(ctx: &RequestContext, command_id: &str, code: ErrorCode, detail: String) -> Problem {
    ctx.problem(code, detail).with_command_id(command_id)
}

/// The commandId and the body, once the media type and the size are acceptable.
async fn read_command(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, Bytes), Problem> {
    let command_id = command_id(ctx, headers)?;
    check_media_type(headers)
        .map_err(|detail| refuse(ctx, &command_id, ErrorCode::UnsupportedMediaType, detail))?;
    let body = read_body(body, state.body_limit_bytes)
        .await
        .map_err(|detail| refuse(ctx, &command_id, ErrorCode::PayloadTooLarge, detail))?;
    Ok((command_id, body))
}

/// Option B: the command's BL service validates it and produces its event.
async fn send_command(
    state: &AppState,
    ctx: &RequestContext,
    command_id: &str,
    body: Bytes,
    subject: &str,
) -> Result<Response, Problem> {
    serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
        let detail = format!("body is not valid JSON: {e}");
        refuse(ctx, command_id, ErrorCode::MalformedJson, detail)
    })?;
    tracing::info!(command_id, subject, "forwarding command");
    let mut ids = async_nats::HeaderMap::new();
    ids.insert(message::COMMAND_ID, command_id);
    let reply = state
        .requester
        .request(
            ctx,
            Upstream::Commands,
            subject,
            ids,
            body,
            state.command_timeout,
        )
        .await?;
    accepted(reply).map_err(|detail| refuse(ctx, command_id, ErrorCode::Internal, detail))
}

/// The client's `Idempotency-Key`, or a new commandId.
fn command_id(ctx: &RequestContext, headers: &HeaderMap) -> Result<String, Problem> {
    let Some(raw) = headers.get(http::IDEMPOTENCY_KEY) else {
        return Ok(ids::generate_id());
    };
    raw.to_str()
        .ok()
        .and_then(ids::parse_idempotency_key)
        .map(str::to_owned)
        .ok_or_else(|| {
            let detail = format!(
                "Idempotency-Key must be 1-{} characters of A-Z a-z 0-9 . _ : -",
                ids::MAX_CLIENT_ID_LEN
            );
            ctx.problem(ErrorCode::InvalidHeader, detail)
        })
}

/// Accepts `application/json` and `application/<anything>+json`, with any parameters.
fn check_media_type(headers: &HeaderMap) -> Result<(), String> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == media::JSON
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(format!(
            "expected Content-Type {}, got {:?}",
            media::JSON,
            value
        ))
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, String> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<LengthLimitError>());
        if too_large {
            format!("the body exceeds the limit of {limit} bytes")
        } else {
            tracing::warn!(error = %e, "body could not be read");
            format!("the body could not be read within the limit of {limit} bytes")
        }
    })
}

/// 202 with the BL reply passed through byte for byte, and `Idempotent-Replayed: true` when
/// it is the stored reply of an earlier attempt. The correlationId is the command's, which
/// for a retry is its first attempt's.
fn accepted(reply: async_nats::Message) -> Result<Response, String> {
    let reply_ids: CommandAccepted = serde_json::from_slice(&reply.payload).map_err(|e| {
        tracing::error!(error = %e, "BL service sent an unreadable accepted reply");
        "the command service sent an unreadable reply; the command may have been accepted"
            .to_owned()
    })?;
    let replayed = nats::header(reply.headers.as_ref(), message::REPLAYED).is_some();
    if replayed {
        tracing::info!(original_correlation_id = %reply_ids.correlation_id, "idempotent replay");
    }
    let mut response = accepted_response(&reply_ids, reply.payload);
    if replayed {
        response.headers_mut().insert(
            http::IDEMPOTENT_REPLAYED,
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// 202 for a command the edge accepted itself.
fn accepted_directly(accepted: &CommandAccepted) -> Result<Response, String> {
    let body =
        serde_json::to_vec(accepted).map_err(|e| format!("reply does not serialize: {e}"))?;
    Ok(accepted_response(accepted, Bytes::from(body)))
}

/// 202 with `body`, `Location` of the command status and `Ackgate-Event-Position` (the token
/// for read-your-writes queries).
fn accepted_response(accepted: &CommandAccepted, body: Bytes) -> Response {
    let location = format!("/v1/commands/{}", accepted.correlation_id);
    (
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, location),
            (header::CONTENT_TYPE, media::JSON.to_owned()),
            (
                HeaderName::from_static(http::CORRELATION_ID),
                accepted.correlation_id.clone(),
            ),
            (
                HeaderName::from_static(http::EVENT_POSITION),
                accepted.event.token(),
            ),
        ],
        body,
    )
        .into_response()
}

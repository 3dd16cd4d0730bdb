//! Command routes, built from the catalog: one per route, serving every version of its
//! command. The version is the `version` parameter of the `Content-Type` media type
//! (`application/json; version=2`); without it, the lowest version served, so a client written
//! against version 1 never changes meaning. The edge checks only what it must to protect the
//! bus (media type, size, JSON well-formedness, header syntax); a business-logic service
//! does the rest. A direct command (Option A) is accepted by the edge itself.

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
    CatalogEntry, CommandAccepted, ErrorCode, Problem,
    headers::{http, media, message},
    ids,
    precondition::IfMatch,
    timeline::StepKind,
};
use http_body_util::LengthLimitError;
use runtime::{Trail, nats};

use super::AppState;
use crate::{context::RequestContext, problem::ProblemResponse, requester::Upstream};

/// Where a command version goes, in the deployment's namespace.
#[derive(Debug, Clone)]
pub enum Target {
    /// Option B: a request to its business-logic service.
    Service {
        /// The NATS subject.
        subject: String,
    },
    /// Option A: produced by the edge.
    Direct {
        /// The Kafka topic.
        topic: String,
    },
}

/// One version of the command served on a route.
#[derive(Debug, Clone)]
pub struct RouteVersion {
    /// Its catalog entry.
    pub entry: CatalogEntry,
    /// Where it goes.
    pub target: Target,
}

/// The versions of the command served on one route, lowest first (never empty).
#[derive(Debug, Clone)]
pub struct CommandRoute {
    /// The versions.
    pub versions: Vec<RouteVersion>,
}

/// Accepts a command: 202 once its event is in Kafka, a problem otherwise. Its steps here
/// (received, appended when the edge produced it, answered) go to the command's timeline.
pub(super) async fn command(
    route: Arc<CommandRoute>,
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let trail = received(&state, &ctx, &route, &headers);
    let (response, code) = match accept(&route, &state, &ctx, &headers, body, &trail).await {
        Ok(response) => (response, None),
        Err(problem) => {
            let code = Some(problem.code);
            (ProblemResponse(problem).into_response(), code)
        }
    };
    trail.step(StepKind::Answered {
        status: response.status().as_u16(),
        code,
        replayed: response.headers().contains_key(http::IDEMPOTENT_REPLAYED),
    });
    state.timeline.publish(&trail);
    response
}

/// Starts the request's trail: what the client sent, before anything is checked.
fn received(
    state: &AppState,
    ctx: &RequestContext,
    route: &CommandRoute,
    headers: &HeaderMap,
) -> Trail {
    let trail = state.timeline.trail(&ctx.correlation_id);
    let Some(first) = route.versions.first() else {
        return trail;
    };
    let spec = &first.entry.spec;
    trail.identify(None, Some(&spec.command), None);
    trail.step(StepKind::Received {
        method: spec.http.method.as_str().to_owned(),
        route: spec.http.path.clone(),
        principal: None,
        client_correlation_id: headers.contains_key(http::CORRELATION_ID),
        client_command_id: headers.contains_key(http::IDEMPOTENCY_KEY),
    });
    trail
}

async fn accept(
    route: &CommandRoute,
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: Body,
    trail: &Trail,
) -> Result<Response, Problem> {
    let command_id = command_id(ctx, headers)?;
    tracing::Span::current().record("command_id", command_id.as_str());
    trail.identify(Some(&command_id), None, None);
    let refusing = |code, detail| refuse(ctx, &command_id, code, detail);
    let version = select_version(route, headers)
        .map_err(|detail| refusing(ErrorCode::UnsupportedMediaType, detail))?;
    let if_match =
        if_match(headers, version).map_err(|detail| refusing(ErrorCode::InvalidHeader, detail))?;
    let body = read_body(body, state.body_limit_bytes)
        .await
        .map_err(|detail| refusing(ErrorCode::PayloadTooLarge, detail))?;
    match &version.target {
        Target::Service { subject } => {
            let sent = Outgoing {
                command_id: &command_id,
                subject,
                if_match,
                body,
            };
            send_command(state, ctx, sent).await
        }
        Target::Direct { topic } => {
            let Some(direct) = state.direct.as_deref() else {
                let detail = "this edge has no Kafka producer for direct commands".to_owned();
                return Err(refusing(ErrorCode::Internal, detail));
            };
            let entry = &version.entry;
            let accepted = direct.accept(ctx, &command_id, entry, topic, &body).await?;
            trail.step(StepKind::Appended {
                position: accepted.event.clone(),
            });
            accepted_directly(&accepted).map_err(|detail| refusing(ErrorCode::Internal, detail))
        }
    }
}

fn refuse(ctx: &RequestContext, command_id: &str, code: ErrorCode, detail: String) -> Problem {
    ctx.problem(code, detail).with_command_id(command_id)
}

/// A command on its way to its business-logic service.
struct Outgoing<'a> {
    command_id: &'a str,
    subject: &'a str,
    if_match: Option<&'a str>,
    body: Bytes,
}

/// Option B: the command's business-logic service validates it and produces its event.
async fn send_command(
    state: &AppState,
    ctx: &RequestContext,
    sent: Outgoing<'_>,
) -> Result<Response, Problem> {
    let command_id = sent.command_id;
    serde_json::from_slice::<serde::de::IgnoredAny>(&sent.body).map_err(|e| {
        let detail = format!("body is not valid JSON: {e}");
        refuse(ctx, command_id, ErrorCode::MalformedJson, detail)
    })?;
    tracing::info!(command_id, subject = sent.subject, "forwarding command");
    let mut ids = async_nats::HeaderMap::new();
    ids.insert(message::COMMAND_ID, command_id);
    if let Some(condition) = sent.if_match {
        ids.insert(message::IF_MATCH, condition);
    }
    let reply = state
        .requester
        .request(
            ctx,
            Upstream::Commands,
            sent.subject,
            ids,
            sent.body,
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

/// The version the request's media type asks for: `application/json` (or
/// `application/<anything>+json`) with an optional `version` parameter; without it, the
/// lowest version served.
fn select_version<'a>(
    route: &'a CommandRoute,
    headers: &HeaderMap,
) -> Result<&'a RouteVersion, String> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let is_json = essence == media::JSON
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let served: Vec<String> = route
        .versions
        .iter()
        .map(|v| v.entry.spec.version.to_string())
        .collect();
    if !is_json {
        return Err(format!(
            "expected Content-Type {} (optionally with version={}), got {value:?}",
            media::JSON,
            served.join(" or version=")
        ));
    }
    let asked = parts.find_map(|param| {
        let (name, raw) = param.split_once('=')?;
        let name = name.trim().eq_ignore_ascii_case("version");
        name.then(|| raw.trim().trim_matches('"').to_owned())
    });
    let Some(asked) = asked else {
        return route
            .versions
            .first()
            .ok_or_else(|| "no version of this command is served".to_owned());
    };
    route
        .versions
        .iter()
        .find(|v| v.entry.spec.version.to_string() == asked)
        .ok_or_else(|| {
            let command = route
                .versions
                .first()
                .map(|v| v.entry.spec.command.as_str());
            format!(
                "{} is not served in version {asked:?}; versions served: {}",
                command.unwrap_or("this command"),
                served.join(", ")
            )
        })
}

/// The `If-Match` header, checked; refused for a direct command, which is accepted without
/// its aggregate's state.
fn if_match<'a>(headers: &'a HeaderMap, version: &RouteVersion) -> Result<Option<&'a str>, String> {
    let Some(raw) = headers.get(http::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| "If-Match must be visible ASCII".to_owned())?;
    IfMatch::parse(raw)?;
    if matches!(version.target, Target::Direct { .. }) {
        return Err(format!(
            "If-Match cannot be judged for {}: it is accepted without its aggregate's state",
            version.entry.spec.command
        ));
    }
    Ok(Some(raw))
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

//! `GET` routes: answered by the projections over NATS request/reply.
//!
//! Every query accepts a read-your-writes position (the `Ackgate-Min-Position` header or
//! the `minPosition` parameter, e.g. the `Ackgate-Event-Position` of a 202): the answer
//! then reflects at least that event, or is a `503 not-yet-projected` with `Retry-After`.
//! Unknown or malformed parameters are refused with `400 invalid-query`.

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, Path},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use contracts::{
    ErrorCode, EventPosition, Names, Problem,
    headers::{http, media, message},
    observation::ObservationQuery,
    officer::{OfficerListQuery, OfficerQuery, OfficerSearchQuery},
    precondition,
    status::CommandStatusQuery,
    timeline::{TimelineQuery, TimelineSearch},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::AppState;
use crate::{context::RequestContext, problem::ProblemResponse, requester::Upstream};

/// The query parameter that carries a read-your-writes position.
const MIN_POSITION_PARAM: &str = "minPosition";

/// What every query handler needs: the shared state, the request's ids, its
/// read-your-writes header and its raw query string.
pub(super) struct QueryRequest {
    state: Arc<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    raw: Option<String>,
}

impl FromRequestParts<Arc<AppState>> for QueryRequest {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let ctx = parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        Ok(Self {
            state: Arc::clone(state),
            ctx,
            headers: parts.headers.clone(),
            raw: parts.uri.query().map(str::to_owned),
        })
    }
}

/// No parameters besides `minPosition`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// `commandId`, for `GET /v1/commands`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ByCommandId {
    command_id: String,
}

/// `GET /v1/commands/{correlationId}`: what happened to a command.
pub(super) async fn command_status(
    Path(correlation_id): Path<String>,
    request: QueryRequest,
) -> Response {
    request
        .answer(
            |names| &names.query_command_status,
            |raw| {
                parse::<NoParams>(raw)?;
                Ok(CommandStatusQuery::CorrelationId(correlation_id))
            },
        )
        .await
}

/// `GET /v1/commands/{correlationId}/timeline`: every step of a command, from every
/// component, for every request that carried it.
pub(super) async fn command_timeline(
    Path(correlation_id): Path<String>,
    request: QueryRequest,
) -> Response {
    request
        .answer(
            |names| &names.query_timeline,
            |raw| {
                parse::<NoParams>(raw)?;
                Ok(TimelineQuery::CorrelationId(correlation_id))
            },
        )
        .await
}

/// `GET /v1/timelines?commandId=&aggregateId=&commandType=&from=&to=&failed=&limit=`:
/// commands, newest first.
pub(super) async fn timeline_search(request: QueryRequest) -> Response {
    request
        .answer(
            |names| &names.query_timeline_search,
            |raw| {
                let search: TimelineSearch = parse(raw)?;
                search.validate()?;
                Ok(search)
            },
        )
        .await
}

/// `GET /v1/commands?commandId=...`: a command by its idempotency key.
pub(super) async fn command_by_id(request: QueryRequest) -> Response {
    request
        .answer(
            |names| &names.query_command_status,
            |raw| parse::<ByCommandId>(raw).map(|q| CommandStatusQuery::CommandId(q.command_id)),
        )
        .await
}

/// `GET /v1/officers/{badgeNumber}`: one officer and the history of its badge, with its
/// version as the `ETag` a command's `If-Match` names.
pub(super) async fn officer(Path(badge_number): Path<String>, request: QueryRequest) -> Response {
    let mut response = request
        .answer(
            |names| &names.query_officer,
            |raw| {
                parse::<NoParams>(raw)?;
                Ok(OfficerQuery { badge_number })
            },
        )
        .await;
    if response.status() == StatusCode::OK {
        set_etag(&mut response).await;
    }
    response
}

/// Sets `ETag` from the `version` of the officer in the body.
async fn set_etag(response: &mut Response) {
    #[derive(Deserialize)]
    struct Versioned {
        version: u64,
    }
    let body = std::mem::take(response.body_mut());
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return;
    };
    if let Ok(officer) = serde_json::from_slice::<Versioned>(&bytes)
        && let Ok(value) = HeaderValue::from_str(&precondition::etag(officer.version))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    *response.body_mut() = axum::body::Body::from(bytes);
}

/// `GET /v1/officers/{badgeNumber}/observations?limit=&cursor=`: an officer's observations,
/// newest first.
pub(super) async fn observations(
    Path(badge_number): Path<String>,
    request: QueryRequest,
) -> Response {
    request
        .answer(
            |names| &names.query_observations,
            |raw| {
                let query = ObservationQuery {
                    badge_number,
                    ..parse::<ObservationQuery>(raw)?
                };
                query.validate()?;
                Ok(query)
            },
        )
        .await
}

/// `GET /v1/officers?rank=&hiredFrom=&hiredTo=&limit=&cursor=`: a page of officers.
pub(super) async fn officer_list(request: QueryRequest) -> Response {
    request
        .answer(
            |names| &names.query_officer_list,
            |raw| {
                let query: OfficerListQuery = parse(raw)?;
                query.validate()?;
                Ok(query)
            },
        )
        .await
}

/// `GET /v1/officers/search?q=&limit=`: officers by name.
pub(super) async fn officer_search(request: QueryRequest) -> Response {
    request
        .answer(
            |names| &names.query_officer_search,
            |raw| {
                let query: OfficerSearchQuery = parse(raw)?;
                query.validate()?;
                Ok(query)
            },
        )
        .await
}

/// `GET /v1/stats`: read-model counts and projection lag.
pub(super) async fn stats(request: QueryRequest) -> Response {
    request
        .answer(
            |names| &names.query_projection_stats,
            |raw| parse::<NoParams>(raw).map(|_| serde_json::json!({})),
        )
        .await
}

/// Parses the query string (without `minPosition`) into `T`, or says what is wrong.
fn parse<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| format!("query string: {e}"))?;
    let rest: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| k != MIN_POSITION_PARAM)
        .collect();
    let encoded = serde_urlencoded::to_string(&rest).map_err(|e| e.to_string())?;
    serde_urlencoded::from_str(&encoded).map_err(|e| format!("query string: {e}"))
}

/// The read-your-writes position: the header, else the parameter.
fn min_position(headers: &HeaderMap, raw: Option<&str>) -> Result<Option<String>, String> {
    let from_header = headers
        .get(http::MIN_POSITION)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| "Ackgate-Min-Position is not text".to_owned())
        })
        .transpose()?;
    let from_param = || {
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or_default())
            .ok()?
            .into_iter()
            .find(|(k, _)| k == MIN_POSITION_PARAM)
            .map(|(_, v)| v)
    };
    let Some(token) = from_header.or_else(from_param) else {
        return Ok(None);
    };
    EventPosition::parse_token(&token)?;
    Ok(Some(token))
}

impl QueryRequest {
    /// Builds the query from the raw query string, asks the projections on the subject
    /// `subject` picks from the namespace's names, and answers with their view or a problem.
    async fn answer<Q: Serialize>(
        self,
        subject: fn(&Names) -> &str,
        query: impl FnOnce(Option<&str>) -> Result<Q, String>,
    ) -> Response {
        let raw = self.raw.as_deref();
        let prepared = query(raw).and_then(|q| Ok((q, min_position(&self.headers, raw)?)));
        let (query, position) = match prepared {
            Ok(prepared) => prepared,
            Err(detail) => {
                return ProblemResponse(self.ctx.problem(ErrorCode::InvalidQuery, detail))
                    .into_response();
            }
        };
        let subject = subject(&self.state.names);
        match ask(&self.state, &self.ctx, subject, &query, position).await {
            Ok(view) => {
                (StatusCode::OK, [(header::CONTENT_TYPE, media::JSON)], view).into_response()
            }
            Err(problem) => ProblemResponse(problem).into_response(),
        }
    }
}

async fn ask(
    state: &AppState,
    ctx: &RequestContext,
    subject: &str,
    query: &impl Serialize,
    position: Option<String>,
) -> Result<bytes::Bytes, Problem> {
    let body =
        serde_json::to_vec(query).map_err(|e| ctx.problem(ErrorCode::Internal, e.to_string()))?;
    let mut extra = async_nats::HeaderMap::new();
    if let Some(position) = position {
        extra.insert(message::MIN_POSITION, position.as_str());
    }
    let reply = state
        .requester
        .request(
            ctx,
            Upstream::Queries,
            subject,
            extra,
            body.into(),
            state.query_timeout,
        )
        .await?;
    Ok(reply.payload)
}

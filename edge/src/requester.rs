//! NATS request/reply to the services behind the edge, with failures turned into problems:
//! nobody listening fails fast (503), a silent service times out (504), and a service's own
//! refusal comes back as the problem it sent.

use std::time::Duration;

use async_nats::{HeaderMap, RequestErrorKind, Subject, client::Request, connection::State};
use bytes::Bytes;
use contracts::{ErrorCode, Problem, headers::message};
use runtime::{nats, telemetry::trace};
use tracing::Instrument;

use crate::{context::RequestContext, observe};

/// Which kind of service a request goes to, which decides the error codes.
#[derive(Debug, Clone, Copy)]
pub enum Upstream {
    /// Business-logic services (commands).
    Commands,
    /// Projections (queries).
    Queries,
}

impl Upstream {
    fn unavailable(self) -> ErrorCode {
        match self {
            Self::Commands => ErrorCode::BlUnavailable,
            Self::Queries => ErrorCode::ProjectionUnavailable,
        }
    }

    fn timed_out(self) -> ErrorCode {
        match self {
            Self::Commands => ErrorCode::BlTimeout,
            Self::Queries => ErrorCode::ProjectionTimeout,
        }
    }
}

/// Sends requests over one shared NATS connection.
#[derive(Clone)]
pub struct Requester {
    client: async_nats::Client,
}

impl Requester {
    /// Wraps a connected client.
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }

    /// Sends `body` to `subject` with the request's ids in the headers (plus `extra`), and
    /// returns the success reply.
    pub async fn request(
        &self,
        ctx: &RequestContext,
        upstream: Upstream,
        subject: &str,
        extra: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<async_nats::Message, Problem> {
        if self.client.connection_state() != State::Connected {
            return Err(ctx.problem(
                upstream.unavailable(),
                "the message bus is disconnected; retry later",
            ));
        }
        let span = observe::request_span(subject);
        let traceparent = trace::traceparent_of(&span).unwrap_or_else(|| ctx.traceparent.clone());
        let mut headers = extra;
        headers.insert(message::CORRELATION_ID, ctx.correlation_id.as_str());
        headers.insert(message::TRACEPARENT, traceparent.to_string().as_str());
        let request = Request::new()
            .payload(body)
            .headers(headers)
            .timeout(Some(timeout));
        let reply = self
            .client
            .send_request(Subject::from(subject), request)
            .instrument(span)
            .await
            .map_err(|e| request_failed(ctx, upstream, timeout, e.kind()))?;
        match nats::refusal(&reply) {
            None => Ok(reply),
            Some(problem) => Err(problem.unwrap_or_else(|e| {
                tracing::error!(error = %e, "service sent an unreadable error reply");
                ctx.problem(ErrorCode::Internal, "the service sent an unreadable error")
            })),
        }
    }
}

fn request_failed(
    ctx: &RequestContext,
    upstream: Upstream,
    timeout: Duration,
    kind: RequestErrorKind,
) -> Problem {
    match kind {
        RequestErrorKind::NoResponders => {
            tracing::warn!(?upstream, "no service listening");
            ctx.problem(
                upstream.unavailable(),
                "no service is listening for this request; retry later",
            )
        }
        RequestErrorKind::TimedOut => {
            tracing::warn!(?upstream, ?timeout, "service did not answer in time");
            ctx.problem(
                upstream.timed_out(),
                format!("no answer within {} ms; the outcome is unknown, retry with the same Idempotency-Key", timeout.as_millis()),
            )
        }
        RequestErrorKind::MaxPayloadExceeded => ctx.problem(
            ErrorCode::PayloadTooLarge,
            "the body exceeds the message bus's payload limit",
        ),
        RequestErrorKind::InvalidSubject | RequestErrorKind::Other => {
            tracing::warn!(?upstream, "request failed");
            ctx.problem(
                upstream.unavailable(),
                "the request could not be sent; retry later",
            )
        }
    }
}

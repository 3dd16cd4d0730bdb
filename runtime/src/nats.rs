//! NATS conventions: how services connect, report readiness, and reply. A reply's body is
//! the JSON the edge passes on to the client; a refusal is a problem body plus the service
//! API's error headers, so generic NATS tooling sees it as an error too.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{HeaderMap, connection::State, service::Request};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::Readiness;
use contracts::{Problem, headers::message};

/// NATS could not be reached at start-up.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {source}")]
pub struct ConnectFailed {
    url: String,
    source: async_nats::ConnectError,
}

/// Connects with a client name (visible in the server's connection list). Later
/// disconnections are retried by the client forever.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, ConnectFailed> {
    let first = Arc::new(AtomicBool::new(true));
    async_nats::ConnectOptions::new()
        .name(name)
        .event_callback(move |event| {
            let first = Arc::clone(&first);
            async move { count(&event, &first) }
        })
        .connect(url)
        .await
        .map_err(|source| ConnectFailed {
            url: url.to_owned(),
            source,
        })
}

/// Counts losses and recoveries of the connection for `ackgate_nats_*`; `first` is set
/// until the first connection, which is no reconnection.
fn count(event: &async_nats::Event, first: &AtomicBool) {
    match event {
        async_nats::Event::Disconnected => crate::metrics::nats().disconnected(),
        async_nats::Event::Connected if !first.swap(false, Ordering::Relaxed) => {
            crate::metrics::nats().reconnected();
        }
        _ => {}
    }
}

/// How long the requests of a stopped service endpoint may take to end. The client drops
/// the subscription itself, so they end at once while NATS is up; while it is down they
/// never do, since the client only acts on the unsubscribe once it has reconnected.
pub const UNSUBSCRIBE_PATIENCE: Duration = Duration::from_secs(1);

/// An endpoint's `requests` until `shutdown`, then until they end by themselves (so
/// requests already received are still served) or [`UNSUBSCRIBE_PATIENCE`] has passed. A
/// service draining on shutdown thus waits for its in-flight requests, not for NATS.
pub fn until_stopped<S: Stream>(
    requests: S,
    shutdown: CancellationToken,
) -> impl Stream<Item = S::Item> {
    requests.take_until(async move {
        shutdown.cancelled().await;
        tokio::time::sleep(UNSUBSCRIBE_PATIENCE).await;
    })
}

/// Sends what `client` has buffered, waiting at most `patience`: with the server gone, a
/// flush waits for a reconnection that may never come, and a stop must not wait for ever.
pub async fn flush_within(client: &async_nats::Client, patience: Duration) {
    match tokio::time::timeout(patience, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "NATS flush failed; buffered messages are lost"),
        Err(_) => tracing::warn!(
            patience_ms = u64::try_from(patience.as_millis()).unwrap_or(u64::MAX),
            "NATS flush timed out; buffered messages are lost"
        ),
    }
}

/// Ready while the NATS connection is up.
pub fn nats_readiness(client: async_nats::Client) -> Readiness {
    Arc::new(move || match client.connection_state() {
        State::Connected => Ok(()),
        state => Err(format!("NATS {state}")),
    })
}

/// Replies to a service request with `body` on success, or with the problem body and the
/// `Nats-Service-Error*` headers. Both carry the correlationId header.
pub async fn respond<T: serde::Serialize>(
    request: &Request,
    correlation_id: &str,
    outcome: Result<&T, &Problem>,
) {
    let mut headers = HeaderMap::new();
    headers.insert(message::CORRELATION_ID, correlation_id);
    let body = match outcome {
        Ok(reply) => serde_json::to_vec(reply),
        Err(problem) => {
            headers.insert(
                message::SERVICE_ERROR_CODE,
                problem.status.to_string().as_str(),
            );
            headers.insert(message::SERVICE_ERROR, problem.title.as_str());
            serde_json::to_vec(problem)
        }
    };
    match body {
        Ok(body) => send(request, headers, body.into()).await,
        Err(e) => tracing::error!(error = %e, "reply does not serialize"),
    }
}

/// Replies to a command with its accepted reply, passed on byte for byte; `replayed` marks
/// the stored reply of an earlier attempt.
pub async fn respond_accepted(
    request: &Request,
    correlation_id: &str,
    body: Bytes,
    replayed: bool,
) {
    let mut headers = HeaderMap::new();
    headers.insert(message::CORRELATION_ID, correlation_id);
    if replayed {
        headers.insert(message::REPLAYED, "true");
    }
    send(request, headers, body).await;
}

async fn send(request: &Request, headers: HeaderMap, body: Bytes) {
    if let Err(e) = request.respond_with_headers(Ok(body), headers).await {
        tracing::warn!(error = %e, "could not send the reply; the requester will time out");
    }
}

/// The refusal a reply carries, read the way [`respond`] writes it: `None` for a success
/// reply; for a refusal (it has the `Nats-Service-Error-Code` header), its problem body, or
/// the reason that body is unreadable.
pub fn refusal(reply: &async_nats::Message) -> Option<Result<Problem, serde_json::Error>> {
    header(reply.headers.as_ref(), message::SERVICE_ERROR_CODE)?;
    Some(serde_json::from_slice(&reply.payload))
}

/// A header of a NATS message, as text.
pub fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

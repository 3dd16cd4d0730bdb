//! Query responders on the NATS service API: the edge's `GET`s arrive here as requests.

use std::sync::Arc;

use async_nats::service::{Request, ServiceExt};
use contracts::{
    ErrorCode, Problem, headers::message, ids, officer::OfficerQuery, runtime::nats,
    status::CommandStatusQuery, subjects,
};
use futures::StreamExt;
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Error, Result, store::ReadModels};

/// Serves queries until `shutdown`, then finishes the ones in flight.
pub async fn serve(
    client: async_nats::Client,
    models: Arc<ReadModels>,
    shutdown: CancellationToken,
) -> Result<()> {
    let service = client
        .service_builder()
        .description("Ackgate read models: command status, officers, stats")
        .queue_group(subjects::PROJECTIONS_QUEUE_GROUP)
        .start(subjects::PROJECTIONS_SERVICE, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| Error::NatsService(e.to_string()))?;
    let add = |name: &'static str, subject: &'static str| {
        let builder = service.endpoint_builder().name(name);
        async move {
            builder
                .add(subject)
                .await
                .map_err(|e| Error::NatsService(e.to_string()))
        }
    };
    let statuses = add("command-status", subjects::QUERY_COMMAND_STATUS).await?;
    let officers = add("officer", subjects::QUERY_OFFICER).await?;
    let stats = add("stats", subjects::QUERY_PROJECTION_STATS).await?;
    let answering = futures::future::join3(
        statuses.for_each_concurrent(None, |request| {
            let models = Arc::clone(&models);
            answer(request, move |q: CommandStatusQuery| {
                models.command_status(&q.correlation_id).ok_or(format!(
                    "no command with correlationId {}",
                    q.correlation_id
                ))
            })
        }),
        officers.for_each_concurrent(None, |request| {
            let models = Arc::clone(&models);
            answer(request, move |q: OfficerQuery| {
                models
                    .officer(&q.badge_number)
                    .ok_or(format!("no officer with badge number {}", q.badge_number))
            })
        }),
        stats.for_each_concurrent(None, |request| {
            let models = Arc::clone(&models);
            async move {
                let correlation_id = request_correlation_id(&request);
                nats::respond(&request, &correlation_id, Ok(&models.stats())).await;
            }
        }),
    );
    tokio::pin!(answering);
    tokio::select! {
        _ = &mut answering => {}
        () = shutdown.cancelled() => {
            let _ = service.stop().await;
            answering.await;
        }
    }
    Ok(())
}

/// Decodes the query, looks it up, and replies with the view or a `not-found` problem.
async fn answer<Q, V>(request: Request, lookup: impl FnOnce(Q) -> Result<V, String>)
where
    Q: DeserializeOwned,
    V: Serialize,
{
    let correlation_id = request_correlation_id(&request);
    let span = tracing::info_span!("query", subject = %request.message.subject, correlation_id = %correlation_id);
    async {
        let outcome = match serde_json::from_slice::<Q>(&request.message.payload) {
            Ok(query) => lookup(query)
                .map_err(|detail| Problem::new(ErrorCode::NotFound, detail, &correlation_id)),
            Err(e) => Err(Problem::new(
                ErrorCode::MalformedJson,
                format!("query body: {e}"),
                &correlation_id,
            )),
        };
        tracing::debug!(found = outcome.is_ok(), "query answered");
        nats::respond(&request, &correlation_id, outcome.as_ref()).await;
    }
    .instrument(span)
    .await;
}

fn request_correlation_id(request: &Request) -> String {
    nats::header(request.message.headers.as_ref(), message::CORRELATION_ID)
        .filter(|id| ids::is_valid_client_id(id))
        .unwrap_or_else(ids::generate_id)
}

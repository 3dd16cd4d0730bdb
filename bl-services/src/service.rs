//! The officer service on the NATS service API: a queue-group endpoint per command, with
//! `$SRV` discovery and stats. Replies carry the reply body the edge passes on to the client;
//! refusals also carry the service API's error headers.

use std::sync::Arc;

use async_nats::{HeaderMap, service::ServiceExt};
use contracts::{ErrorCode, Names, Problem, headers::message, ids, officer::REGISTER_OFFICER};
use futures::StreamExt;
use runtime::nats;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    Error, Result,
    officer::{CommandContext, OfficerCommands},
};

/// Serves `RegisterOfficer` until `shutdown`, then stops taking requests and finishes the
/// ones in flight. The service name, queue group and subject are those in `names`.
pub async fn serve(
    client: async_nats::Client,
    commands: Arc<OfficerCommands>,
    names: &Names,
    max_in_flight: usize,
    shutdown: CancellationToken,
) -> Result<()> {
    let service = client
        .service_builder()
        .description("Ackgate officer commands: validate, enforce rules, write events")
        .queue_group(&names.officer_queue_group)
        .start(&names.officer_service, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| Error::NatsService(e.to_string()))?;
    let endpoint = service
        .endpoint_builder()
        .name("register-officer")
        .add(&names.register_officer)
        .await
        .map_err(|e| Error::NatsService(e.to_string()))?;
    tracing::info!(subject = %names.register_officer, "officer service listening");
    let requests = nats::until_stopped(endpoint, shutdown.clone());
    let serving = requests.for_each_concurrent(max_in_flight, |request| {
        handle(Arc::clone(&commands), request)
    });
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => {}
        () = shutdown.cancelled() => {
            // Unsubscribes every endpoint; the stream then ends once in-flight requests are done.
            let _ = service.stop().await;
            serving.await;
        }
    }
    Ok(())
}

async fn handle(commands: Arc<OfficerCommands>, request: async_nats::service::Request) {
    let ctx = match command_context(request.message.headers.as_ref()) {
        Ok(ctx) => ctx,
        Err(problem) => {
            return nats::respond::<()>(&request, &problem.correlation_id, Err(&problem)).await;
        }
    };
    let span = tracing::info_span!(
        "command",
        command = REGISTER_OFFICER,
        correlation_id = %ctx.correlation_id,
        command_id = %ctx.command_id,
    );
    async {
        match commands.register(&ctx, &request.message.payload).await {
            Ok(reply) => {
                nats::respond_accepted(&request, &reply.correlation_id, reply.body, reply.replayed)
                    .await;
            }
            Err(problem) => {
                tracing::info!(code = %problem.code, status = problem.status, "command refused");
                nats::respond::<()>(&request, &problem.correlation_id, Err(&problem)).await;
            }
        }
    }
    .instrument(span)
    .await;
}

/// Reads the ids from the request headers, generating those the sender left out.
fn command_context(headers: Option<&HeaderMap>) -> Result<CommandContext, Problem> {
    let header = |name| nats::header(headers, name);
    let correlation_id = header(message::CORRELATION_ID).unwrap_or_else(ids::generate_id);
    let command_id = header(message::COMMAND_ID).unwrap_or_else(ids::generate_id);
    for (name, value) in [
        (message::CORRELATION_ID, &correlation_id),
        (message::COMMAND_ID, &command_id),
    ] {
        if !ids::is_valid_client_id(value) {
            let safe_correlation = if ids::is_valid_client_id(&correlation_id) {
                correlation_id.clone()
            } else {
                ids::generate_id()
            };
            let detail = format!(
                "header {name} must be 1-{} characters of A-Z a-z 0-9 . _ : -",
                ids::MAX_CLIENT_ID_LEN
            );
            return Err(Problem::new(
                ErrorCode::InvalidHeader,
                detail,
                safe_correlation,
            ));
        }
    }
    let traceparent =
        header(message::TRACEPARENT).filter(|raw| ids::TraceParent::parse(raw).is_some());
    Ok(CommandContext {
        correlation_id,
        command_id,
        traceparent,
        redrive: header(message::REDRIVE).is_some_and(|v| v == "true"),
    })
}

//! The business-logic services on the NATS service API: one service per domain (aggregate
//! type), with its queue group and `$SRV` discovery and stats, and one endpoint per command
//! version the catalog routes through it. Replies carry the body the edge passes on to the
//! client; refusals also carry the service API's error headers.

use std::{sync::Arc, time::Instant};

use async_nats::{
    HeaderMap,
    service::{Service, ServiceExt},
};
use contracts::{
    Catalog, CatalogEntry, ErrorCode, Names, Problem, catalog::CommandPath, headers::message, ids,
    ids::TraceParent, precondition::IfMatch, timeline::StepKind,
};
use futures::{StreamExt, stream::SelectAll};
use runtime::{Timeline, metrics, nats, telemetry::trace};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    Error, Result, observe,
    pipeline::{CommandContext, Pipeline, Served},
};

/// The business-logic commands of the catalog, grouped by domain: `domains` selects some
/// (empty: every domain that has one).
pub fn served_domains(catalog: &Catalog, domains: &[String]) -> Result<Vec<String>> {
    let mut all: Vec<String> = catalog
        .entries()
        .iter()
        .filter(|e| e.spec.path == CommandPath::BusinessLogic)
        .map(|e| e.spec.aggregate.kind.clone())
        .collect();
    all.sort();
    all.dedup();
    if domains.is_empty() {
        return Ok(all);
    }
    for domain in domains {
        if !all.contains(domain) {
            return Err(Error::Catalog(format!(
                "no business-logic command belongs to domain {domain:?} (domains: {all:?})"
            )));
        }
    }
    Ok(domains.to_vec())
}

/// Serves the commands of `domains` until `shutdown`, then stops taking requests and
/// finishes the ones in flight.
pub async fn serve(
    client: async_nats::Client,
    pipeline: Arc<Pipeline>,
    catalog: Arc<Catalog>,
    names: &Names,
    domains: &[String],
    max_in_flight: usize,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut services = Vec::new();
    let mut served = Vec::new();
    let mut requests = SelectAll::new();
    for domain in domains {
        let service = start_service(&client, names, domain).await?;
        for entry in catalog.entries() {
            let spec = &entry.spec;
            let Some(subject) = spec.subject.as_deref().map(|s| names.namespace.dotted(s)) else {
                continue; // a direct command
            };
            if spec.path != CommandPath::BusinessLogic || &spec.aggregate.kind != domain {
                continue;
            }
            let endpoint = service
                .endpoint_builder()
                .name(endpoint_name(entry))
                .add(&subject)
                .await
                .map_err(|e| Error::NatsService(e.to_string()))?;
            tracing::info!(%subject, command = %spec.label(), "listening");
            let index = served.len();
            let tagged = nats::until_stopped(endpoint, shutdown.clone()).map(move |r| (index, r));
            requests.push(tagged.boxed());
            served.push(Served {
                entry: entry.clone(),
                subject,
            });
        }
        services.push(service);
    }
    let served = Arc::new(served);
    let serving = requests.for_each_concurrent(max_in_flight, |(index, request)| {
        let (pipeline, served) = (Arc::clone(&pipeline), Arc::clone(&served));
        async move { handle(&pipeline, &served[index], request).await }
    });
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => {}
        () = shutdown.cancelled() => {
            // Unsubscribes every endpoint; the streams then end once in-flight requests are done.
            for service in services {
                let _ = service.stop().await;
            }
            serving.await;
        }
    }
    Ok(())
}

async fn start_service(
    client: &async_nats::Client,
    names: &Names,
    domain: &str,
) -> Result<Service> {
    client
        .service_builder()
        .description(format!(
            "Ackgate {domain} commands: validate, judge the rules on the current state, write events"
        ))
        .queue_group(names.domain_queue_group(domain))
        .start(names.domain_service(domain), env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| Error::NatsService(e.to_string()))
}

/// `register-officer-v1`: endpoint names allow letters, digits, `-` and `_`.
fn endpoint_name(entry: &CatalogEntry) -> String {
    let mut name = String::new();
    for (i, c) in entry.spec.command.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    format!("{name}-v{}", entry.spec.version)
}

async fn handle(pipeline: &Pipeline, served: &Served, request: async_nats::service::Request) {
    let started = Instant::now();
    let entry = &served.entry;
    let timeline = pipeline.timeline();
    let mut ctx = match command_context(request.message.headers.as_ref(), timeline) {
        Ok(ctx) => ctx,
        Err(problem) => {
            return nats::respond::<()>(&request, &problem.correlation_id, Err(&problem)).await;
        }
    };
    let parent = ctx.traceparent.as_deref().and_then(TraceParent::parse);
    let span = runtime::request_span!(
        traced: trace::sampled(parent.as_ref()),
        "command",
        command = %entry.spec.command,
        version = entry.spec.version,
        correlation_id = %ctx.correlation_id,
        command_id = %ctx.command_id,
    );
    ctx.traceparent = Some(observe::process_span(&span, served, parent.as_ref()));
    ctx.trail
        .identify(Some(&ctx.command_id), Some(&entry.spec.command), None);
    ctx.trail.step(StepKind::Requested {
        subject: served.subject.clone(),
        redrive: ctx.redrive,
    });
    async {
        // Each answer is stamped before it is sent, so it precedes the edge's own.
        let outcome = match pipeline
            .handle(served, &ctx, &request.message.payload)
            .await
        {
            Ok(reply) => {
                let replayed = reply.replayed;
                ctx.trail.step(answered(ACCEPTED, None, replayed));
                nats::respond_accepted(&request, &reply.correlation_id, reply.body, replayed).await;
                if replayed { "replayed" } else { "accepted" }
            }
            Err(problem) => {
                tracing::info!(code = %problem.code, status = problem.status, "command refused");
                ctx.trail
                    .step(answered(problem.status, Some(problem.code), false));
                nats::respond::<()>(&request, &problem.correlation_id, Err(&problem)).await;
                problem.code.as_str()
            }
        };
        timeline.publish(&ctx.trail);
        metrics::command().handled(&entry.spec.command, outcome, started.elapsed());
    }
    .instrument(span)
    .await;
}

/// The status of an accepted command's answer.
const ACCEPTED: u16 = 202;

fn answered(status: u16, code: Option<ErrorCode>, replayed: bool) -> StepKind {
    StepKind::Answered {
        status,
        code,
        replayed,
    }
}

/// Reads the ids and the precondition from the request headers, generating the ids the
/// sender left out.
fn command_context(
    headers: Option<&HeaderMap>,
    timeline: &Timeline,
) -> Result<CommandContext, Problem> {
    let header = |name| nats::header(headers, name);
    let correlation_id = header(message::CORRELATION_ID).unwrap_or_else(ids::generate_id);
    let command_id = header(message::COMMAND_ID).unwrap_or_else(ids::generate_id);
    let safe_correlation = || {
        if ids::is_valid_client_id(&correlation_id) {
            correlation_id.clone()
        } else {
            ids::generate_id()
        }
    };
    for (name, value) in [
        (message::CORRELATION_ID, &correlation_id),
        (message::COMMAND_ID, &command_id),
    ] {
        if !ids::is_valid_client_id(value) {
            let detail = format!(
                "header {name} must be 1-{} characters of A-Z a-z 0-9 . _ : -",
                ids::MAX_CLIENT_ID_LEN
            );
            return Err(Problem::new(
                ErrorCode::InvalidHeader,
                detail,
                safe_correlation(),
            ));
        }
    }
    let if_match = header(message::IF_MATCH)
        .map(|raw| IfMatch::parse(&raw))
        .transpose()
        .map_err(|detail| {
            Problem::new(ErrorCode::InvalidHeader, detail, safe_correlation())
                .with_command_id(&command_id)
        })?;
    let traceparent =
        header(message::TRACEPARENT).filter(|raw| ids::TraceParent::parse(raw).is_some());
    Ok(CommandContext {
        trail: timeline.trail(&correlation_id),
        correlation_id,
        command_id,
        traceparent,
        redrive: header(message::REDRIVE).is_some_and(|v| v == "true"),
        if_match,
    })
}

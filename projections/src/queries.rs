//! Query and admin responders on the NATS service API: the edge's `GET`s arrive here as
//! requests. A query carrying a position (`Ackgate-Min-Position`) is answered only once the
//! read models have applied it, or refused as `not-yet-projected` after the bounded wait.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_nats::service::{Request, ServiceExt};
use contracts::{
    ErrorCode, EventPosition, Names, Problem,
    deadletter::{
        DeadLetterList, DeadLetterListQuery, DiscardReport, DiscardRequest, RedriveReport,
        RedriveRequest,
    },
    headers::message,
    ids::{self, TraceParent},
    observation::ObservationQuery,
    officer::{OfficerListQuery, OfficerQuery, OfficerSearchQuery},
    status::{CommandStatusQuery, PartitionProgress, ProjectionStats},
    timeline::{TimelineQuery, TimelineSearch},
};
use futures::StreamExt;
use runtime::{nats, telemetry::trace};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    Error, Result,
    deadletters::DeadLetterPublisher,
    observe,
    store::{ApplyPolicy, Offsets, ReadModelStore, has_applied},
    timeline::{self, TimelineStore, report},
    watermarks::Watermarks,
};

/// What the responders need.
pub struct Queries<S, T> {
    /// The read models.
    pub store: Arc<S>,
    /// The command timelines.
    pub timeline: Arc<T>,
    /// Kafka's side of the lag.
    pub watermarks: Watermarks,
    /// This instance's applied offsets of each events topic, moved after every batch. A
    /// waiter checks them without touching the store.
    pub applied: HashMap<String, watch::Receiver<Offsets>>,
    /// Longest wait for a read-your-writes position.
    pub read_wait_max: Duration,
    /// Retries for re-driven events.
    pub policy: ApplyPolicy,
    /// Where discarded events are published again, with their reason.
    pub dead_letters: DeadLetterPublisher,
    /// Where re-driven events are reported for their commands' timelines.
    pub reporter: runtime::Timeline,
    /// The subjects answered, the service name and queue group, and the events topic, in
    /// this deployment's namespace.
    pub names: Arc<Names>,
}

/// What an endpoint answers. Requests are routed by endpoint, not by subject, since the
/// subjects depend on the namespace.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    CommandStatus,
    Officer,
    OfficerList,
    OfficerSearch,
    Observations,
    Stats,
    DeadLettersList,
    DeadLettersRedrive,
    DeadLettersDiscard,
    Timeline,
    TimelineSearch,
}

impl Endpoint {
    const ALL: [Self; 11] = [
        Self::CommandStatus,
        Self::Officer,
        Self::OfficerList,
        Self::OfficerSearch,
        Self::Observations,
        Self::Stats,
        Self::DeadLettersList,
        Self::DeadLettersRedrive,
        Self::DeadLettersDiscard,
        Self::Timeline,
        Self::TimelineSearch,
    ];

    /// The endpoint's name in `$SRV` stats, and its subject in `names`.
    fn name_and_subject(self, names: &Names) -> (&'static str, &str) {
        match self {
            Self::CommandStatus => ("command-status", &names.query_command_status),
            Self::Officer => ("officer", &names.query_officer),
            Self::OfficerList => ("officer-list", &names.query_officer_list),
            Self::OfficerSearch => ("officer-search", &names.query_officer_search),
            Self::Observations => ("observations", &names.query_observations),
            Self::Stats => ("stats", &names.query_projection_stats),
            Self::DeadLettersList => ("dead-letters-list", &names.admin_dead_letters_list),
            Self::DeadLettersRedrive => ("dead-letters-redrive", &names.admin_dead_letters_redrive),
            Self::DeadLettersDiscard => ("dead-letters-discard", &names.admin_dead_letters_discard),
            Self::Timeline => ("timeline", &names.query_timeline),
            Self::TimelineSearch => ("timeline-search", &names.query_timeline_search),
        }
    }
}

/// How often a read-your-writes waiter re-reads the store's offsets. Its own consumer's
/// progress arrives on the watch channel at once; the store is only asked for what another
/// instance applied (its partitions), so thousands of waiters do not compete with the
/// consumer for the store.
const STORE_RECHECK: Duration = Duration::from_millis(100);

/// Serves queries until `shutdown`, then finishes the ones in flight.
pub async fn serve<S: ReadModelStore, T: TimelineStore>(
    client: async_nats::Client,
    queries: Queries<S, T>,
    shutdown: CancellationToken,
) -> Result<()> {
    let names = &queries.names;
    let service = client
        .service_builder()
        .description(
            "Ackgate read models: command status and timeline, officers, observations, stats, dead letters",
        )
        .queue_group(&names.projections_queue_group)
        .start(&names.projections_service, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| Error::NatsService(e.to_string()))?;
    let mut per_endpoint = Vec::with_capacity(Endpoint::ALL.len());
    for endpoint in Endpoint::ALL {
        let (name, subject) = endpoint.name_and_subject(names);
        let added = service.endpoint_builder().name(name).add(subject).await;
        let added = added.map_err(|e| Error::NatsService(e.to_string()))?;
        per_endpoint.push(added.map(move |request| (endpoint, request)));
    }
    let queries = &queries;
    let all = futures::stream::select_all(per_endpoint);
    let requests = nats::until_stopped(all, shutdown.clone());
    let answering = requests.for_each_concurrent(None, |(endpoint, request)| {
        queries.answer(endpoint, request)
    });
    tokio::pin!(answering);
    tokio::select! {
        () = &mut answering => {}
        () = shutdown.cancelled() => {
            let _ = service.stop().await;
            answering.await;
        }
    }
    Ok(())
}

impl<S: ReadModelStore, T: TimelineStore> Queries<S, T> {
    async fn answer(&self, endpoint: Endpoint, request: Request) {
        let correlation_id = request_correlation_id(&request);
        let subject = &request.message.subject;
        let traceparent = nats::header(request.message.headers.as_ref(), message::TRACEPARENT);
        let parent = traceparent.as_deref().and_then(TraceParent::parse);
        let span = runtime::request_span!(
            traced: trace::sampled(parent.as_ref()),
            "query",
            subject = %subject,
            correlation_id = %correlation_id,
        );
        observe::query_span(&span, subject, parent.as_ref());
        async {
            let outcome = self.route(endpoint, &request, &correlation_id).await;
            if let Err(problem) = &outcome {
                tracing::info!(code = %problem.code, detail = %problem.detail, "query refused");
            }
            nats::respond(&request, &correlation_id, outcome.as_ref()).await;
        }
        .instrument(span)
        .await;
    }

    async fn route(
        &self,
        endpoint: Endpoint,
        request: &Request,
        correlation_id: &str,
    ) -> Result<serde_json::Value, Problem> {
        let ctx = Ctx(correlation_id);
        self.wait_for_position(request, ctx).await?;
        match endpoint {
            Endpoint::CommandStatus => {
                let query: CommandStatusQuery = ctx.decode(request)?;
                let found = self.store.command_status(&query).await;
                ctx.json(ctx.found(found, || format!("no command with {}", describe(&query)))?)
            }
            Endpoint::Officer => {
                let query: OfficerQuery = ctx.decode(request)?;
                let found = self.store.officer(&query.badge_number).await;
                ctx.json(ctx.found(found, || {
                    format!("no officer with badge number {}", query.badge_number)
                })?)
            }
            Endpoint::OfficerList => {
                let query: OfficerListQuery =
                    ctx.decode_valid(request, OfficerListQuery::validate)?;
                ctx.json(ctx.available(self.store.list_officers(&query).await)?)
            }
            Endpoint::OfficerSearch => {
                let query: OfficerSearchQuery =
                    ctx.decode_valid(request, OfficerSearchQuery::validate)?;
                ctx.json(ctx.available(self.store.search_officers(&query).await)?)
            }
            Endpoint::Observations => {
                let query: ObservationQuery =
                    ctx.decode_valid(request, ObservationQuery::validate)?;
                ctx.json(ctx.available(self.store.observations(&query).await)?)
            }
            Endpoint::Stats => ctx.json(self.stats(ctx).await?),
            Endpoint::DeadLettersList => {
                let query: DeadLetterListQuery = ctx.decode(request)?;
                let parked = ctx.available(self.store.dead_letters(query.key.as_deref()).await)?;
                ctx.json(DeadLetterList { parked })
            }
            Endpoint::DeadLettersRedrive => {
                let redrive: RedriveRequest = ctx.decode(request)?;
                tracing::info!(keys = ?redrive.keys, all = redrive.all, "re-driving dead letters");
                ctx.json(self.redrive(ctx, &redrive).await?)
            }
            Endpoint::DeadLettersDiscard => {
                let discard: DiscardRequest =
                    ctx.decode_valid(request, DiscardRequest::validate)?;
                ctx.json(self.discard(ctx, &discard).await?)
            }
            Endpoint::Timeline => {
                let query: TimelineQuery = ctx.decode(request)?;
                let found = timeline::timeline(self.timeline.as_ref(), &query).await;
                ctx.json(ctx.found(found, || format!("no timeline for {}", describe(&query)))?)
            }
            Endpoint::TimelineSearch => {
                let search: TimelineSearch = ctx.decode_valid(request, TimelineSearch::validate)?;
                ctx.json(ctx.available(timeline::search(self.timeline.as_ref(), &search).await)?)
            }
        }
    }

    /// Gives up one parked event: out of the store, onto the dead-letter topic with its
    /// reason, into its command's timeline; then, if asked, re-drives the rest of its key.
    async fn discard(
        &self,
        ctx: Ctx<'_>,
        discard: &DiscardRequest,
    ) -> Result<DiscardReport, Problem> {
        let reason = discard.reason.trim();
        let source = &discard.source;
        tracing::warn!(source = %source.token(), reason, "discarding a parked event");
        let letter = ctx.found(self.store.discard(source, reason).await, || {
            format!("no parked event at {}", source.token())
        })?;
        if let Err(e) = self.dead_letters.publish_discarded(&letter, reason).await {
            // The discard stands (and is in the timeline); the operator must know the
            // dead-letter topic lacks its record.
            tracing::error!(error = %e, source = %source.token(), "discarded event not published to the dead-letter topic");
            let detail = format!(
                "the event at {} was discarded, but Kafka did not take its dead-letter record: {e}",
                source.token()
            );
            return Err(ctx.problem(ErrorCode::KafkaUnavailable, detail));
        }
        let redrive = match discard.redrive {
            false => None,
            true => {
                let keys = RedriveRequest {
                    keys: vec![letter.parked.key.clone()],
                    all: false,
                };
                Some(self.redrive(ctx, &keys).await?)
            }
        };
        Ok(DiscardReport {
            discarded: letter.parked,
            redrive,
        })
    }

    /// Re-applies parked events and reports each applied one to its command's timeline.
    async fn redrive(
        &self,
        ctx: Ctx<'_>,
        request: &RedriveRequest,
    ) -> Result<RedriveReport, Problem> {
        let redriven = ctx.available(self.store.redrive(request, self.policy).await)?;
        report::redriven(&self.reporter, &redriven.applied);
        Ok(redriven.report)
    }

    /// Waits until the store has applied the request's `Ackgate-Min-Position`, if any.
    async fn wait_for_position(&self, request: &Request, ctx: Ctx<'_>) -> Result<(), Problem> {
        let Some(token) = nats::header(request.message.headers.as_ref(), message::MIN_POSITION)
        else {
            return Ok(());
        };
        let position = EventPosition::parse_token(&token)
            .map_err(|d| ctx.problem(ErrorCode::InvalidQuery, d))?;
        let Some(applied) = self.applied.get(&position.topic) else {
            let mut topics: Vec<&String> = self.applied.keys().collect();
            topics.sort();
            let detail = format!(
                "these read models are built from {topics:?}, not {}",
                position.topic
            );
            return Err(ctx.problem(ErrorCode::InvalidQuery, detail));
        };
        let deadline = tokio::time::Instant::now() + self.read_wait_max;
        let mut applied = applied.clone();
        loop {
            let offsets = ctx.available(self.store.offsets(&position.topic).await)?;
            if has_applied(&offsets, &position) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                let next = offsets
                    .get(&position.partition)
                    .copied()
                    .unwrap_or_default();
                let detail = format!(
                    "position {token} is not applied yet (partition {} is applied up to offset {next}) after waiting {} ms; retry shortly",
                    position.partition,
                    self.read_wait_max.as_millis()
                );
                return Err(ctx.problem(ErrorCode::NotYetProjected, detail));
            }
            let pause = left.min(STORE_RECHECK);
            let by_us = applied.wait_for(|offsets| has_applied(offsets, &position));
            let seen = tokio::time::timeout(pause, by_us).await.map(|r| r.is_ok());
            match seen {
                Ok(true) => return Ok(()),
                // The consumer has stopped; only the store can still move.
                Ok(false) => tokio::time::sleep(pause).await,
                // Another instance may own the partition: ask the store again.
                Err(_) => {}
            }
        }
    }

    /// The store's stats with Kafka's side of each partition of every events topic.
    async fn stats(&self, ctx: Ctx<'_>) -> Result<ProjectionStats, Problem> {
        let mut stats = ctx.available(self.store.stats().await)?;
        let mut topics: Vec<&String> = self.applied.keys().collect();
        topics.sort();
        let mut partitions = Vec::new();
        for topic in topics {
            let published = self.watermarks.high(topic).await.map_err(|e| {
                tracing::warn!(error = %e, "watermarks unavailable");
                ctx.problem(
                    ErrorCode::ProjectionUnavailable,
                    "Kafka's watermarks are unavailable; retry later",
                )
            })?;
            partitions.extend(published.into_iter().map(|(partition, high)| {
                let projected = stats
                    .partitions
                    .iter()
                    .find(|p| p.topic == *topic && p.partition == partition)
                    .map_or(0, |p| p.projected);
                PartitionProgress {
                    topic: topic.clone(),
                    partition,
                    published: high,
                    projected,
                    lag: (high - projected).max(0),
                }
            }));
        }
        stats.partitions = partitions;
        stats.lag_records = stats.partitions.iter().map(|p| p.lag).sum();
        stats.lag_seconds = match (stats.lag_records, stats.last_event_at) {
            (0, _) | (_, None) => 0.0,
            (_, Some(at)) => (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0),
        };
        Ok(stats)
    }
}

fn describe(query: &CommandStatusQuery) -> String {
    match query {
        CommandStatusQuery::CorrelationId(id) => format!("correlationId {id}"),
        CommandStatusQuery::CommandId(id) => format!("commandId {id}"),
    }
}

/// The request's correlationId, for problems.
#[derive(Clone, Copy)]
struct Ctx<'a>(&'a str);

impl Ctx<'_> {
    fn problem(self, code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem::new(code, detail, self.0)
    }

    /// [`Self::decode`], then `validate`: an unanswerable query is `invalid-query`.
    fn decode_valid<Q: DeserializeOwned>(
        self,
        request: &Request,
        validate: fn(&Q) -> Result<(), String>,
    ) -> Result<Q, Problem> {
        let query = self.decode(request)?;
        validate(&query).map_err(|d| self.problem(ErrorCode::InvalidQuery, d))?;
        Ok(query)
    }

    /// The answer as JSON; a view that does not serialize is a defect, answered as one.
    fn json(self, value: impl serde::Serialize) -> Result<serde_json::Value, Problem> {
        serde_json::to_value(value).map_err(|e| {
            tracing::error!(error = %e, "answer does not serialize");
            self.problem(ErrorCode::Internal, "the answer could not be written")
        })
    }

    fn decode<Q: DeserializeOwned>(self, request: &Request) -> Result<Q, Problem> {
        serde_json::from_slice(&request.message.payload)
            .map_err(|e| self.problem(ErrorCode::InvalidQuery, format!("query: {e}")))
    }

    /// The store's answer, or `projection-unavailable` when the store failed.
    fn available<T>(self, outcome: Result<T>) -> Result<T, Problem> {
        outcome.map_err(|e| {
            tracing::error!(error = %e, "read-model store failed");
            self.problem(
                ErrorCode::ProjectionUnavailable,
                "the read-model store is unavailable; retry later",
            )
        })
    }

    fn found<T>(
        self,
        outcome: Result<Option<T>>,
        missing: impl FnOnce() -> String,
    ) -> Result<T, Problem> {
        self.available(outcome)?
            .ok_or_else(|| self.problem(ErrorCode::NotFound, missing()))
    }
}

fn request_correlation_id(request: &Request) -> String {
    nats::header(request.message.headers.as_ref(), message::CORRELATION_ID)
        .filter(|id| ids::is_valid_client_id(id))
        .unwrap_or_else(ids::generate_id)
}

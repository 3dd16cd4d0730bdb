//! The fault suite: sustained load through the edge while the brokers and services are
//! SIGKILLed and restarted, then a check that every 202 means exactly one event in Kafka and
//! nothing else does. Run it with `scripts/fault` (long) or in the test suite (short).
//!
//! Phases: **chaos** (clients and kills run for the configured duration), **settle** (all
//! components up; the dead-letter queue is re-driven and unresolved commands retried, as
//! operators and clients would), **verify** (read the whole topic and the read models).

pub mod chaos;
pub mod cluster;
pub mod load;
pub mod stall;
pub mod verify;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use bl_services::ops::{DlqCommand, Operation};
use contracts::{Names, status::ProjectionStats};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use self::{
    chaos::{ChaosLog, Kill},
    cluster::{Cluster, ClusterOptions, ServiceTimings},
    load::{Client, CommandLog, CommandTrace},
    stall::Stalls,
    verify::{Queried, Verdict},
};

/// How hard and how long to shake the system.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// The `ackgate-fault` binary, which also runs the services.
    pub binary: PathBuf,
    /// Length of the chaos phase.
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Officer-service instances.
    pub bl_instances: usize,
    /// Apache Kafka nodes: 1, or 3 for the replicated cluster mode.
    pub kafka_nodes: u32,
    /// Mean time between kills.
    pub kill_every: Duration,
    /// Longest time a killed component stays down.
    pub max_downtime: Duration,
    /// Seed of the clients' and the chaos' choices.
    pub seed: u64,
    /// Service timeouts.
    pub timings: ServiceTimings,
    /// Longest time to settle after the chaos.
    pub settle_within: Duration,
}

/// What a run did and found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultReport {
    /// Seed, to replay the same choices.
    pub seed: u64,
    /// Chaos phase length, seconds.
    pub chaos_secs: f64,
    /// Settle and verify, seconds.
    pub settle_secs: f64,
    /// Concurrent clients.
    pub clients: usize,
    /// Apache Kafka nodes.
    pub kafka_nodes: u32,
    /// SIGKILLs per component.
    pub kills: BTreeMap<String, u64>,
    /// SIGKILLs in all.
    pub total_kills: u64,
    /// Kafka SIGKILLs by what the node was picked as (`partition-leader`, `controller`;
    /// `single` for a one-node cluster).
    pub kafka_kills: BTreeMap<String, u64>,
    /// Kafka turns passed over because a restarted node was not back in every ISR in time.
    pub kafka_turns_skipped: u64,
    /// How long acceptance stalled, between any two 202s and after each kind of kill.
    pub stalls: Stalls,
    /// Every kill: when, what, and the stall after it.
    pub kill_log: Vec<Kill>,
    /// Services that exited on their own and were restarted.
    pub unexpected_exits: u64,
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Requests that were retries of an earlier attempt of the same command.
    pub retries: u64,
    /// Answers by HTTP status and problem code (0: no answer).
    pub answers: BTreeMap<String, u64>,
    /// Distinct commands answered `kafka-unavailable` (parked) at least once.
    pub parked_commands: u64,
    /// Re-drive outcomes in the settle phase.
    pub redriven: BTreeMap<String, u64>,
    /// The checks.
    pub verdict: Verdict,
    /// Where the service and broker logs are.
    pub logs: PathBuf,
}

/// Runs the suite. `Err` means the run could not be carried out; violations are in the
/// report.
pub async fn run(config: FaultConfig) -> Result<FaultReport> {
    let logs = tempfile::Builder::new()
        .prefix("ackgate-fault-")
        .tempdir()?
        .keep();
    let options = ClusterOptions {
        bl_instances: config.bl_instances,
        timings: config.timings.clone(),
        kafka_nodes: config.kafka_nodes,
        store: projections::StoreKind::Postgres,
        direct_edge: false,
    };
    let mut cluster = Cluster::start(&config.binary, &logs, &options)
        .await
        .context("the cluster starts")?;
    let log = CommandLog::default();
    let started = Instant::now();
    let until = started + config.duration;
    let clients: Vec<_> = (0..config.clients)
        .map(|n| {
            let client = Client::new(cluster.edge_url(), log.clone());
            tokio::spawn(async move { client.drive(n, config.seed, until).await })
        })
        .collect();
    let ChaosLog {
        mut kills,
        kafka_turns_skipped,
    } = chaos::run(&mut cluster, &config, started, until).await?;
    for client in clients {
        client.await?;
    }
    let chaos_secs = started.elapsed().as_secs_f64();
    tracing::info!(chaos_secs, "chaos over; settling");
    let accepted = log.acceptance_times().into_iter().map(|t| t - started);
    let clients_stopped = config.duration.min(started.elapsed());
    let stalls = stall::measure(accepted.collect(), clients_stopped, &mut kills);

    let settling = Instant::now();
    let redriven = settle(&mut cluster, &config, &log).await?;
    let traces = log.snapshot();
    let verdict = verify_all(&cluster, &traces).await?;
    Ok(FaultReport {
        seed: config.seed,
        chaos_secs,
        settle_secs: settling.elapsed().as_secs_f64(),
        clients: config.clients,
        kafka_nodes: config.kafka_nodes,
        total_kills: kills.len() as u64,
        kills: count_by(&kills, |k| Some(k.component.clone())),
        kafka_kills: count_by(&kills, |k| Some(k.kafka.as_ref()?.role.as_str().to_owned())),
        kafka_turns_skipped,
        stalls,
        kill_log: kills,
        unexpected_exits: cluster.unexpected_exits,
        requests: traces.values().map(|t| t.answers.len() as u64).sum(),
        retries: retries(&traces),
        answers: answer_counts(&traces),
        parked_commands: traces
            .values()
            .filter(|t| {
                t.answers
                    .iter()
                    .any(|a| a.code.as_deref() == Some("kafka-unavailable"))
            })
            .count() as u64,
        redriven,
        verdict,
        logs,
    })
}

fn count_by(kills: &[Kill], key: impl Fn(&Kill) -> Option<String>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for kill in kills {
        if let Some(key) = key(kill) {
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    counts
}

/// Brings every component up, re-drives the dead-letter queue until it is empty, and retries
/// every command that has no final answer yet, as a patient client would.
async fn settle(
    cluster: &mut Cluster,
    config: &FaultConfig,
    log: &CommandLog,
) -> Result<BTreeMap<String, u64>> {
    cluster.supervise()?;
    let deadline = Instant::now() + config.settle_within;
    let nats = async_nats::connect(cluster.nats.url()).await?;
    wait_for_services(&nats, &cluster.names, config.bl_instances, deadline).await?;
    let mut redriven = BTreeMap::new();
    let settings = cluster.ops_settings(&config.timings);
    let redrive = Operation::Dlq(DlqCommand::Redrive {
        ids: Vec::new(),
        all: true,
        timeout_ms: config.timings.command_timeout,
    });
    loop {
        let reports = crate::stack::run_ops(&settings, redrive.clone()).await?;
        for report in &reports {
            let outcome = report["outcome"].as_str().unwrap_or("unknown").to_owned();
            *redriven.entry(outcome).or_insert(0) += 1;
        }
        if reports.is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the dead-letter queue did not drain"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let client = Client::new(cluster.edge_url(), log.clone());
    for (command_id, trace) in log.snapshot() {
        if !matches!(trace.last_status(), Some(200..=499)) {
            let status = client
                .send_until_final(&command_id, trace.intent, trace.path, &trace.body, deadline)
                .await;
            tracing::info!(command_id, status, "unresolved command retried");
        }
    }
    Ok(redriven)
}

async fn wait_for_services(
    nats: &async_nats::Client,
    names: &Names,
    bl: usize,
    deadline: Instant,
) -> Result<()> {
    loop {
        let officers = count_replies(nats, &names.domain_service("officer")).await;
        let projections = count_replies(nats, &names.projections_service).await;
        if officers >= bl && projections >= 1 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "services did not come back: {officers} BL, {projections} projections"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn count_replies(nats: &async_nats::Client, service: &str) -> usize {
    let ping = format!("$SRV.PING.{service}");
    crate::stack::service_replies(nats, &ping, Duration::from_millis(500))
        .await
        .len()
}

/// Reads the topic, waits for the projections to consume all of it, and runs every check.
async fn verify_all(
    cluster: &Cluster,
    traces: &std::collections::HashMap<String, CommandTrace>,
) -> Result<Verdict> {
    let (bootstrap, topic) = (
        cluster.kafka.bootstrap(),
        cluster.names.officer_events.clone(),
    );
    let records =
        tokio::task::spawn_blocking(move || crate::kafka::read_all(&bootstrap, &topic)).await??;
    let mut verdict = verify::check_topic(traces, &records);
    verify::check_versions(&records, &mut verdict);
    let nats = async_nats::connect(cluster.nats.url()).await?;
    let stats = caught_up_stats(&nats, &cluster.names, records.len() as u64).await?;
    verify::check_projection_stats(&stats, &mut verdict);
    let http = reqwest::Client::new();
    let edge = cluster.edge_url();
    let checks = traces.iter().map(|(command_id, trace)| {
        let (http, edge) = (&http, &edge);
        async move {
            let queried = query(http, edge, trace).await?;
            verify::check_queried(command_id, trace, &queried)
        }
    });
    let found: Vec<Option<String>> = futures::stream::iter(checks)
        .buffer_unordered(64)
        .collect()
        .await;
    verdict.violations.extend(found.into_iter().flatten());
    Ok(verdict)
}

/// The projection stats once every record of the topic has been consumed.
async fn caught_up_stats(
    nats: &async_nats::Client,
    names: &Names,
    records: u64,
) -> Result<ProjectionStats> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let reply = nats
            .request(names.query_projection_stats.clone(), "{}".into())
            .await;
        if let Ok(reply) = reply
            && let Ok(stats) = serde_json::from_slice::<ProjectionStats>(&reply.payload)
        {
            let consumed = stats.applied_events + stats.duplicate_records + stats.unreadable;
            if consumed >= records || Instant::now() >= deadline {
                return Ok(stats);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "projections did not answer");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Queries the read models for one command (the accepted correlationId, or the last
/// refusal's); `None` for key-reuse-only traces, which have nothing of their own to read.
async fn query(http: &reqwest::Client, edge: &str, trace: &CommandTrace) -> Option<Queried> {
    let last = trace.own_answers().filter(|a| a.status != 0).last()?;
    let body: Value = serde_json::from_slice(&last.body).ok()?;
    let correlation_id = body["correlationId"].as_str()?;
    let get = |path: String| async move {
        let response = http.get(format!("{edge}{path}")).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json::<Value>().await.unwrap_or_default()))
    };
    Some(Queried {
        status: get(format!("/v1/commands/{correlation_id}")).await?,
        officer: get(format!("/v1/officers/{}", trace.badge)).await?,
    })
}

fn retries(traces: &std::collections::HashMap<String, CommandTrace>) -> u64 {
    traces
        .values()
        .map(|t| {
            let mut retries = 0;
            let mut previous = None;
            for answer in &t.answers {
                if previous.is_some_and(|status| status == 0 || status >= 500) {
                    retries += 1;
                }
                previous = Some(answer.status);
            }
            retries
        })
        .sum()
}

fn answer_counts(
    traces: &std::collections::HashMap<String, CommandTrace>,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for answer in traces.values().flat_map(|t| &t.answers) {
        let key = match &answer.code {
            Some(code) => format!("{} {code}", answer.status),
            None => answer.status.to_string(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Prints the report as a short human summary (to stderr) for the terminal.
pub fn summary(report: &FaultReport) -> String {
    let v = &report.verdict;
    let mut text = format!(
        "fault run: {:.0} s of chaos, {} clients, {} kills {:?}, {} unexpected exits\n\
         requests {} (retries {}), commands {:?}\n\
         accepted {} ({} registrations, {} lifecycle changes) / refused {}; parked {} ; re-drives {:?}\n\
         topic: {} records, {} events, {} duplicate records\n\
         answers {:?}\nlogs: {}\n",
        report.chaos_secs,
        report.clients,
        report.total_kills,
        report.kills,
        report.unexpected_exits,
        report.requests,
        report.retries,
        v.commands,
        v.accepted_commands,
        v.accepted_registrations,
        v.accepted_changes,
        v.refused_commands,
        report.parked_commands,
        report.redriven,
        v.records,
        v.events,
        v.duplicate_records,
        report.answers,
        report.logs.display(),
    );
    text.push_str(&stall_summary(report));
    if v.violations.is_empty() {
        text.push_str("violations: 0\n");
    } else {
        text.push_str(&format!("violations: {}\n", v.violations.len()));
        for violation in v.violations.iter().take(50) {
            text.push_str(&format!("  - {violation}\n"));
        }
    }
    text
}

/// The Kafka kills by role and the acceptance stalls, for the summary.
fn stall_summary(report: &FaultReport) -> String {
    let stalls = &report.stalls;
    let gaps = |g: &stall::Gaps| {
        format!(
            "max {:.2} s, p99 {:.2} s, p50 {:.3} s over {}",
            g.max_ms / 1000.0,
            g.p99_ms / 1000.0,
            g.p50_ms / 1000.0,
            g.count
        )
    };
    let mut text = format!(
        "Kafka ({} node(s)) kills by role {:?}, {} Kafka turns passed over\n\
         gaps between 202s: {}\n\
         stall after a Kafka kill: {} ({} stalls unfinished when the clients stopped)\n",
        report.kafka_nodes,
        report.kafka_kills,
        report.kafka_turns_skipped,
        gaps(&stalls.between_202s),
        gaps(&stalls.after_kafka_kills),
        stalls.unfinished,
    );
    for (kind, stall) in &stalls.after_kills {
        text.push_str(&format!("  after {kind}: {}\n", gaps(stall)));
    }
    text
}

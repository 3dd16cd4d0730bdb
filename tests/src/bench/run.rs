//! One benchmark run: Option B's sustained maximum, its latency at fixed fractions of that
//! maximum and projection lag; the same for Option A (baseline (a)) at the same rates; and
//! the ceilings of Kafka and NATS beneath both.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context, Result};
use runtime::kafka::ensure_topic;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::fault::cluster::{Cluster, ClusterOptions, ServiceTimings};

use super::{
    baselines::{self, Ceiling},
    client::{Edge, Workload, body},
    machine::Machine,
    open_loop::{self, LoadResult, Percentiles},
    processes::{self, ProcessUse},
    replay::{self, ReplayResult},
};

/// How long each phase runs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Offered rates tried in turn while searching the maximum (requests/s).
    pub rates: Vec<f64>,
    /// Length of each search step.
    pub step: Duration,
    /// Length of the sustained run at the maximum.
    pub sustain: Duration,
    /// Length of each fixed-rate latency run.
    pub latency_run: Duration,
    /// Length of each baseline.
    pub baseline: Duration,
    /// Events in the replay topic.
    pub replay_events: u64,
    /// Load at 200/s before each measurement, not counted.
    pub warm_up: Duration,
}

/// Where the system under test is.
#[derive(Debug, Clone)]
pub struct Target {
    /// The edge's base URL (Option B).
    pub edge: String,
    /// A second edge, measured with the catalog's direct command (`RecordObservation`,
    /// Option A, baseline (a)), if any.
    pub direct_edge: Option<String>,
    /// NATS, for the NATS ceiling.
    pub nats: String,
    /// Kafka, for the Kafka ceiling.
    pub kafka: String,
    /// The processes `(name, pid)` whose memory and CPU to sample (empty for a remote stack).
    pub processes: Vec<(String, u32)>,
}

impl Target {
    /// A stack started for the benchmark, with its processes (and this one) to sample.
    pub fn of(cluster: &Cluster) -> Self {
        let mut processes = cluster.service_pids();
        processes.extend(cluster.broker_pids());
        processes.push(("bench client".to_owned(), std::process::id()));
        Self {
            edge: cluster.edge_url(),
            direct_edge: cluster.direct_edge_url(),
            nats: cluster.nats.url(),
            kafka: cluster.kafka.bootstrap(),
            processes,
        }
    }
}

/// The stack the benchmark starts: Apache Kafka (one node, or a three-node cluster with
/// replication factor 3 and `min.insync.replicas=2`), read models in memory (so the
/// figures are the services' and the broker's, not PostgreSQL's), and a second edge for
/// Option A.
pub fn bench_cluster(bl_instances: usize, kafka_nodes: u32) -> ClusterOptions {
    ClusterOptions {
        bl_instances,
        timings: ServiceTimings {
            produce_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
        },
        kafka_nodes,
        store: projections::StoreKind::Memory,
        direct_edge: true,
    }
}

/// One way of accepting a command, measured: its maximum and its latency.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathReport {
    /// Each search step, in order.
    pub search: Vec<LoadResult>,
    /// The sustained run at the highest rate that held for the whole run with zero errors.
    pub sustained: Option<LoadResult>,
    /// Sustained runs at higher rates that did not hold.
    pub failed_sustained: Vec<LoadResult>,
    /// Fixed-rate runs at 25 %, 50 % and 75 % of Option B's maximum.
    pub latency: Vec<LoadResult>,
    /// Each process during the sustained run: peak memory and CPU time.
    pub processes_at_max: BTreeMap<String, ProcessUse>,
}

impl PathReport {
    /// Accepted commands per second held for the sustained run.
    pub fn max(&self) -> Option<f64> {
        self.sustained.as_ref().map(|s| s.achieved_rate)
    }

    /// Every run that passed, by offered rate: the points of the latency plot.
    pub fn passing_runs(&self) -> Vec<&LoadResult> {
        let mut runs: Vec<&LoadResult> = self
            .search
            .iter()
            .chain(&self.latency)
            .filter(|r| passes(r))
            .collect();
        runs.sort_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
        runs
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    /// Where it ran.
    pub machine: Machine,
    /// Option B: edge, NATS, officer service, Kafka's ack, reply.
    pub option_b: PathReport,
    /// Baseline (a), Option A: the edge checks the schema and produces itself.
    pub direct: Option<PathReport>,
    /// 202 to visible through the query API, at 50 % of Option B's maximum.
    pub projection_lag: Option<ProjectionLag>,
    /// Baseline (b): a bare producer.
    pub kafka_ceiling: Ceiling,
    /// Baseline (c): NATS request/reply with a trivial responder.
    pub nats_ceiling: Ceiling,
    /// Each stage alone at 50 % of Option B's maximum: where an accept's time goes.
    pub stages: Option<StageLatency>,
    /// Rebuilding an in-memory read model from a topic.
    pub replay: ReplayResult,
}

/// Where each measurement runs. The in-memory broker slows down as its partitions fill (see
/// BENCHMARKS.md), and the projections' polling of a full partition keeps it busy even when
/// no command arrives, so every measurement that can gets a stack of its own.
pub enum Stacks {
    /// A stack started here for each measurement, from this binary.
    Fresh {
        /// The binary whose hidden `service` subcommand runs each service.
        binary: PathBuf,
        /// Where each stack's services log (one folder per stack).
        logs: PathBuf,
        /// The stack's shape.
        options: ClusterOptions,
        /// The stack being measured, dropped (stopped) when the next starts.
        current: Option<Box<Cluster>>,
        /// Stacks started so far.
        started: usize,
    },
    /// A running stack, measured as it is.
    Running(Target),
}

impl Stacks {
    /// Fresh stacks started from `binary`, logging under `logs`.
    pub fn fresh(binary: PathBuf, logs: PathBuf, options: ClusterOptions) -> Self {
        Self::Fresh {
            binary,
            logs,
            options,
            current: None,
            started: 0,
        }
    }

    /// Whether the stacks have an edge for Option A.
    pub fn has_direct_edge(&self) -> bool {
        match self {
            Self::Fresh { options, .. } => options.direct_edge,
            Self::Running(target) => target.direct_edge.is_some(),
        }
    }

    /// The target of the next measurement: a new stack (the previous one stopped first), or
    /// the running one.
    pub async fn next(&mut self, what: &str) -> Result<Target> {
        match self {
            Self::Running(target) => Ok(target.clone()),
            Self::Fresh {
                binary,
                logs,
                options,
                current,
                started,
            } => {
                drop(current.take());
                *started += 1;
                let dir = logs.join(format!("{started:02}-{}", what.replace(' ', "-")));
                std::fs::create_dir_all(&dir)?;
                let cluster = Cluster::start(binary, &dir, options).await?;
                let target = Target::of(&cluster);
                *current = Some(Box::new(cluster));
                tracing::info!(what, logs = %dir.display(), "fresh stack started");
                Ok(target)
            }
        }
    }
}

/// Runs every phase, each on the stack `stacks` gives it.
pub async fn run(stacks: &mut Stacks, config: &BenchConfig) -> Result<BenchReport> {
    let option_b_edge = |t: &Target| Some((t.edge.clone(), Workload::Registrations));
    let mut option_b = measure_path("option B", stacks, config, option_b_edge).await?;
    let rates = option_b
        .max()
        .map(|max| [0.25, 0.5, 0.75].map(|f| (max * f).round()).to_vec())
        .unwrap_or_default();
    option_b.latency = latency_runs("option B", stacks, &rates, config, option_b_edge).await?;
    let (projection_lag, stages) = match option_b.max() {
        Some(max) => {
            let half = (max * 0.5).round();
            let (_, edge) = warm_edge(stacks, "projection lag", config, option_b_edge).await?;
            let lag = lag_at(&edge, half, config.latency_run).await;
            let target = stacks.next("stages").await?;
            (Some(lag), Some(stage_latency(&target, half, config).await?))
        }
        None => (None, None),
    };
    let direct_edge = |t: &Target| {
        let url = t.direct_edge.clone()?;
        Some((url, Workload::Observations))
    };
    let direct = if stacks.has_direct_edge() {
        let mut direct = measure_path("option A", stacks, config, direct_edge).await?;
        direct.latency = latency_runs("option A", stacks, &rates, config, direct_edge).await?;
        Some(direct)
    } else {
        None
    };
    let target = stacks.next("ceilings").await?;
    let payload = ceiling_payload();
    ensure_topic(&target.kafka, BASELINE_TOPIC, 3, -1).await?;
    let kafka_ceiling =
        baselines::raw_kafka(&target.kafka, BASELINE_TOPIC, &payload, config.baseline).await?;
    let nats_ceiling = baselines::nats_echo(&target.nats, &payload, config.baseline).await?;
    let target = stacks.next("replay").await?;
    let replay = replay::replay_rate(&target.kafka, config.replay_events).await?;
    Ok(BenchReport {
        machine: Machine::this(),
        option_b,
        direct,
        projection_lag,
        kafka_ceiling,
        nats_ceiling,
        stages,
        replay,
    })
}

/// One fixed-rate run against a running edge (`ackgate-bench load`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FixedRateRun {
    /// Acceptance: 202 latency from each request's scheduled start (without `lag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept: Option<LoadResult>,
    /// 202 to visible through read-your-writes queries (with `lag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_lag: Option<ProjectionLag>,
}

/// Warms the edge at `url` up, then offers `rate` registrations a second for `duration`,
/// measuring their acceptance or, with `lag`, their projection lag. `prefix` (two capitals)
/// keeps the badges of this run apart from earlier runs' on the same stack.
pub async fn fixed_rate(
    url: &str,
    prefix: &str,
    rate: f64,
    duration: Duration,
    lag: bool,
) -> Result<FixedRateRun> {
    let edge = Edge::new(url, prefix);
    first_acceptance(&edge).await?;
    accept_load(&edge, WARM_UP_RATE, Duration::from_secs(3)).await;
    Ok(if lag {
        FixedRateRun {
            accept: None,
            projection_lag: Some(lag_at(&edge, rate, duration).await),
        }
    } else {
        FixedRateRun {
            accept: Some(accept_load(&edge, rate, duration).await),
            projection_lag: None,
        }
    })
}

/// The body the baselines send: a registration, as the edge would get it.
fn ceiling_payload() -> Vec<u8> {
    body("BASE-000001", 1).into_bytes()
}

/// A fresh stack for `what`, and a client of the edge `url_of` picks on it, warmed up:
/// connections, and the idempotent producer's id (its first records wait for it, up to a
/// second), are start-up costs, not the path's, so a short load runs first, not counted.
async fn warm_edge(
    stacks: &mut Stacks,
    what: &str,
    config: &BenchConfig,
    url_of: impl Fn(&Target) -> Option<(String, Workload)>,
) -> Result<(Target, Edge)> {
    let target = stacks.next(what).await?;
    let (url, workload) = url_of(&target).context("the stack has no such edge")?;
    let edge = Edge::sending(&url, "BM", workload);
    first_acceptance(&edge).await?;
    let warm_up = accept_load(&edge, WARM_UP_RATE, config.warm_up).await;
    tracing::info!(what, ok = warm_up.ok, errors = warm_up.errors, "warmed up");
    Ok((target, edge))
}

/// Waits until the path accepts a command: a fresh stack's transactional producer and
/// consumer group take a few seconds to join Kafka's coordinators.
pub(crate) async fn first_acceptance(edge: &Edge) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match edge.register().await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("the stack accepted no command within 90 s: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Searches the highest rate a path answers without error (one stack), then holds it for
/// the sustained run (a fresh stack each try), stepping down until one holds, while the
/// processes are sampled.
async fn measure_path(
    name: &str,
    stacks: &mut Stacks,
    config: &BenchConfig,
    url_of: impl Fn(&Target) -> Option<(String, Workload)>,
) -> Result<PathReport> {
    let (_, edge) = warm_edge(stacks, &format!("{name} search"), config, &url_of).await?;
    let (search, mut passed_rates) = search_max(name, &edge, &config.rates, config.step).await;
    // A short step can pass at a rate that a long run cannot hold: step down until one does.
    let mut sustained = None;
    let mut failed_sustained = Vec::new();
    let mut processes_at_max = BTreeMap::new();
    while let Some(rate) = passed_rates.pop() {
        let (target, edge) =
            warm_edge(stacks, &format!("{name} sustained"), config, &url_of).await?;
        edge.wait_until_caught_up().await;
        let (run, sampled) = sampled_load(&edge, rate, config.sustain, &target.processes).await;
        tracing::info!(
            path = name,
            rate,
            ok = run.ok,
            errors = run.errors,
            "sustained run"
        );
        if passes(&run) {
            sustained = Some(run);
            processes_at_max = sampled;
            break;
        }
        failed_sustained.push(run);
    }
    Ok(PathReport {
        search,
        sustained,
        failed_sustained,
        latency: Vec::new(),
        processes_at_max,
    })
}

/// Offers each of `rates` in turn for `step`, stopping after the first that does not pass:
/// every step, and the rates that passed, lowest first.
pub(crate) async fn search_max(
    name: &str,
    edge: &Edge,
    rates: &[f64],
    step: Duration,
) -> (Vec<LoadResult>, Vec<f64>) {
    let (mut search, mut passed_rates) = (Vec::new(), Vec::new());
    for rate in rates {
        edge.wait_until_caught_up().await;
        let result = accept_load(edge, *rate, step).await;
        tracing::info!(
            path = name,
            rate,
            ok = result.ok,
            errors = result.errors,
            p99 = result.latency.p99,
            "search step"
        );
        let passed = passes(&result);
        search.push(result);
        if !passed {
            break;
        }
        passed_rates.push(*rate);
    }
    (search, passed_rates)
}

/// Offers `rate` for `duration` while sampling `processes`' memory and CPU.
pub(crate) async fn sampled_load(
    edge: &Edge,
    rate: f64,
    duration: Duration,
    processes: &[(String, u32)],
) -> (LoadResult, BTreeMap<String, ProcessUse>) {
    let stop_sampling = CancellationToken::new();
    let sampling = tokio::spawn(processes::sample(
        processes.to_vec(),
        Duration::from_millis(500),
        stop_sampling.clone(),
    ));
    let run = accept_load(edge, rate, duration).await;
    stop_sampling.cancel();
    (run, sampling.await.unwrap_or_default())
}

/// A fixed-rate run at each of `rates`, each on a fresh stack.
async fn latency_runs(
    name: &str,
    stacks: &mut Stacks,
    rates: &[f64],
    config: &BenchConfig,
    url_of: impl Fn(&Target) -> Option<(String, Workload)>,
) -> Result<Vec<LoadResult>> {
    let mut runs = Vec::new();
    for rate in rates {
        let (_, edge) =
            warm_edge(stacks, &format!("{name} latency {rate}"), config, &url_of).await?;
        edge.wait_until_caught_up().await;
        runs.push(accept_load(&edge, *rate, config.latency_run).await);
    }
    Ok(runs)
}

/// The latency of a bare produce and of a bare NATS round trip, each at `rate`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageLatency {
    /// A record acknowledged by Kafka (`acks=all`), as the services produce it.
    pub kafka_produce: LoadResult,
    /// A NATS request answered by a responder that does nothing.
    pub nats_round_trip: LoadResult,
}

async fn stage_latency(target: &Target, rate: f64, config: &BenchConfig) -> Result<StageLatency> {
    let (run, payload) = (config.latency_run, ceiling_payload());
    ensure_topic(&target.kafka, BASELINE_TOPIC, 3, -1).await?;
    let kafka_produce =
        baselines::kafka_latency(&target.kafka, BASELINE_TOPIC, &payload, rate, run).await?;
    let nats_round_trip = baselines::nats_latency(&target.nats, &payload, rate, run).await?;
    Ok(StageLatency {
        kafka_produce,
        nats_round_trip,
    })
}

/// The load that warms a path up before it is measured.
pub(crate) const WARM_UP_RATE: f64 = 200.0;

/// Where the Kafka baselines write.
const BASELINE_TOPIC: &str = "ackgate.bench.baseline";

/// Zero errors, and the answers kept up with the offer.
pub(crate) fn passes(result: &LoadResult) -> bool {
    result.errors == 0 && result.achieved_rate >= result.offered_rate * 0.95
}

/// Offers `rate` registrations a second for `duration` (open loop).
pub(crate) async fn accept_load(edge: &Edge, rate: f64, duration: Duration) -> LoadResult {
    open_loop::run(rate, duration, Duration::from_secs(15), |_| {
        let edge = edge.clone();
        async move { edge.register().await.map(|_| ()) }
    })
    .await
}

/// Projection lag under load: the percentiles of the lags measured, and the load run itself
/// (its errors are queries that found the position not applied within the wait).
async fn lag_at(edge: &Edge, rate: f64, duration: Duration) -> ProjectionLag {
    let lags = Arc::new(Mutex::new(open_loop::new_histogram()));
    let load = open_loop::run(rate, duration, Duration::from_secs(15), |_| {
        let (edge, lags) = (edge.clone(), Arc::clone(&lags));
        async move {
            let lag = edge.register_and_read().await?;
            let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).max(1);
            let _ = lags
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(micros);
            Ok(())
        }
    })
    .await;
    let lags = lags.lock().unwrap_or_else(PoisonError::into_inner);
    ProjectionLag {
        samples: lags.len(),
        lag: (!lags.is_empty()).then(|| Percentiles::of(&lags)),
        load,
    }
}

/// 202 to visible through the query API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionLag {
    /// Commands whose lag was measured.
    pub samples: u64,
    /// Their lag (milliseconds), if any was measured.
    pub lag: Option<Percentiles>,
    /// The load that carried them.
    pub load: LoadResult,
}

impl BenchReport {
    /// The report as Markdown tables, for BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut out = format!("Machine: {}\n\n", self.machine.describe());
        out.push_str(
            "| measure | Option B (`RegisterOfficer`) | (a) Option A (`RecordObservation`, direct produce) |\n| --- | --- | --- |\n",
        );
        let direct = self.direct.as_ref();
        let both = |f: &dyn Fn(&PathReport) -> String| {
            (
                f(&self.option_b),
                direct.map_or_else(|| "not measured".to_owned(), f),
            )
        };
        let mut row = |what: &str, (b, a): (String, String)| {
            out.push_str(&format!("| {what} | {b} | {a} |\n"));
        };
        row("sustained accepted/s, zero errors", both(&sustained_figure));
        let rates: Vec<f64> = self
            .option_b
            .latency
            .iter()
            .map(|r| r.offered_rate)
            .collect();
        for (i, rate) in rates.iter().enumerate() {
            let at =
                |path: &PathReport| path.latency.get(i).map_or_else(String::new, latency_figure);
            row(&format!("accept latency at {rate:.0}/s (ms)"), both(&at));
        }
        out.push_str("\n| measure | figure |\n| --- | --- |\n");
        let mut row =
            |what: &str, figure: String| out.push_str(&format!("| {what} | {figure} |\n"));
        if let Some(lag) = &self.projection_lag {
            let figure = match &lag.lag {
                Some(l) => format!(
                    "p50 {:.2}, p99 {:.2}, max {:.2} ({} samples)",
                    l.p50, l.p99, l.max, lag.samples
                ),
                None => "not measured".to_owned(),
            };
            row(
                &format!(
                    "projection lag at {:.0}/s (ms, 202 to visible)",
                    lag.load.offered_rate
                ),
                format!(
                    "{figure}; {} of {} not visible within the wait",
                    lag.load.errors, lag.load.sent
                ),
            );
        }
        row(
            "replay into the in-memory read model",
            format!(
                "{:.0} events/s ({} events)",
                self.replay.per_second, self.replay.events
            ),
        );
        row(
            "(b) raw producer, no HTTP (records/s)",
            format!("{:.0}", self.kafka_ceiling.per_second),
        );
        row(
            "(c) NATS request/reply, trivial responder (req/s)",
            format!("{:.0}", self.nats_ceiling.per_second),
        );
        if let Some(stages) = &self.stages {
            let at = stages.kafka_produce.offered_rate;
            row(
                &format!("stage alone at {at:.0}/s: Kafka produce, acks=all (ms)"),
                latency_figure(&stages.kafka_produce),
            );
            row(
                &format!("stage alone at {at:.0}/s: NATS request/reply (ms)"),
                latency_figure(&stages.nats_round_trip),
            );
        }
        let b = self.option_b.max();
        let a = direct.and_then(PathReport::max);
        if let (Some(b), Some(a)) = (b, a) {
            row("Option B / (a)", format!("{:.2}", b / a));
        }
        if let Some(a) = a {
            row(
                "(a) / (b)",
                format!("{:.3}", a / self.kafka_ceiling.per_second),
            );
        }
        if let Some(b) = b {
            row(
                "Option B / (c)",
                format!("{:.3}", b / self.nats_ceiling.per_second),
            );
        }
        out.push_str("\n| process at max | Option B: peak RSS (MiB), CPU per command (µs) | (a): peak RSS (MiB), CPU per command (µs) |\n| --- | --- | --- |\n");
        let names: std::collections::BTreeSet<&String> = self
            .option_b
            .processes_at_max
            .keys()
            .chain(direct.into_iter().flat_map(|d| d.processes_at_max.keys()))
            .collect();
        for name in names {
            let cell = |path: &PathReport| process_figure(path, name);
            let (b, a) = both(&cell);
            out.push_str(&format!("| {name} | {b} | {a} |\n"));
        }
        out
    }
}

fn sustained_figure(path: &PathReport) -> String {
    match &path.sustained {
        Some(s) => format!(
            "{:.0} ({} requests over {:.0} s, {} errors)",
            s.achieved_rate,
            s.sent,
            s.sent as f64 / s.offered_rate,
            s.errors
        ),
        None => "no search step passed".to_owned(),
    }
}

fn latency_figure(run: &LoadResult) -> String {
    let l = &run.latency;
    let failed = if run.errors > 0 {
        format!(" ({} errors)", run.errors)
    } else {
        String::new()
    };
    format!(
        "p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}{failed}",
        l.p50, l.p90, l.p99, l.p999, l.max
    )
}

fn process_figure(path: &PathReport, name: &str) -> String {
    let (Some(usage), Some(run)) = (path.processes_at_max.get(name), &path.sustained) else {
        return String::new();
    };
    let per_command_us = usage.cpu_ms * 1000.0 / run.ok.max(1) as f64;
    format!("{:.0} MiB, {per_command_us:.0} µs", usage.peak_rss_mib)
}

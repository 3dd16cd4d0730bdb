//! One benchmark run: Option B's sustained maximum, its latency at fixed fractions of that
//! maximum, projection lag, and the ceilings of Kafka and NATS beneath it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::Result;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    KafkaStorage,
    fault::cluster::{Cluster, ClusterOptions, ServiceTimings},
};

use super::{
    baselines::{self, Ceiling},
    memory,
    open_loop::{self, LoadResult, Percentiles},
    option_b::{Edge, body},
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
}

/// Where the system under test is.
#[derive(Debug, Clone)]
pub struct Target {
    /// The edge's base URL.
    pub edge: String,
    /// NATS, for the NATS ceiling.
    pub nats: String,
    /// Kafka, for the Kafka ceiling.
    pub kafka: String,
    /// The service processes `(name, pid)` whose memory to sample (empty for a remote stack).
    pub processes: Vec<(String, u32)>,
}

impl Target {
    /// A stack started for the benchmark, with its service processes to sample.
    pub fn of(cluster: &Cluster) -> Self {
        Self {
            edge: cluster.edge_url(),
            nats: cluster.nats.url(),
            kafka: cluster.kafka.bootstrap(),
            processes: cluster.service_pids(),
        }
    }
}

/// The stack the benchmark starts: memory storage for Kafka and the read models (the
/// fastest this machine offers, so the figures are the services', not the disk's).
pub fn bench_cluster(bl_instances: usize) -> ClusterOptions {
    ClusterOptions {
        bl_instances,
        timings: ServiceTimings {
            produce_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
        },
        kafka_storage: KafkaStorage::Memory,
        store: projections::StoreKind::Memory,
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    /// Each search step, in order.
    pub search: Vec<LoadResult>,
    /// The sustained run at the highest rate that held for the whole run with zero errors.
    pub sustained: Option<LoadResult>,
    /// Sustained runs at higher rates that did not hold.
    pub failed_sustained: Vec<LoadResult>,
    /// Runs at 25 %, 50 % and 75 % of the sustained maximum.
    pub latency: Vec<LoadResult>,
    /// 202 to visible through the query API, at 50 % of the maximum.
    pub projection_lag: Option<ProjectionLag>,
    /// Baseline (b): a bare producer.
    pub kafka_ceiling: Ceiling,
    /// Baseline (c): NATS request/reply with a trivial responder.
    pub nats_ceiling: Ceiling,
    /// Rebuilding an in-memory read model from a topic.
    pub replay: ReplayResult,
    /// Peak resident memory of each service process during the sustained run (MiB).
    pub rss_mib_at_max: BTreeMap<String, f64>,
}

/// Runs every phase against `target`.
pub async fn run(target: &Target, config: &BenchConfig) -> Result<BenchReport> {
    let edge = Edge::new(&target.edge, "BN");
    // The ceilings first, on an idle machine; then each load phase starts once the
    // projections have caught up with the previous one.
    let payload = body("BASE-000001", 1).into_bytes();
    let kafka_ceiling = baselines::raw_kafka(
        &target.kafka,
        "ackgate.bench.baseline",
        &payload,
        config.baseline,
    )
    .await?;
    let nats_ceiling = baselines::nats_echo(&target.nats, &payload, config.baseline).await?;
    let replay = replay::replay_rate(&target.kafka, config.replay_events).await?;
    let mut search = Vec::new();
    let mut passed_rates = Vec::new();
    for rate in &config.rates {
        edge.wait_until_caught_up().await;
        let result = accept_load(&edge, *rate, config.step).await;
        tracing::info!(
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
    let stop_sampling = CancellationToken::new();
    let sampling = tokio::spawn(memory::peak_rss(
        target.processes.clone(),
        Duration::from_millis(500),
        stop_sampling.clone(),
    ));
    // A short step can pass at a rate that a long run cannot hold: step down until one does.
    let mut sustained = None;
    let mut failed_sustained = Vec::new();
    while let Some(rate) = passed_rates.pop() {
        edge.wait_until_caught_up().await;
        let run = accept_load(&edge, rate, config.sustain).await;
        tracing::info!(rate, ok = run.ok, errors = run.errors, "sustained run");
        if passes(&run) {
            sustained = Some(run);
            break;
        }
        failed_sustained.push(run);
    }
    stop_sampling.cancel();
    let rss_mib_at_max = sampling.await.unwrap_or_default();
    let max = sustained
        .as_ref()
        .filter(|r| passes(r))
        .map(|r| r.offered_rate);
    let mut latency = Vec::new();
    let mut projection_lag = None;
    if let Some(max) = max {
        for fraction in [0.25, 0.5, 0.75] {
            edge.wait_until_caught_up().await;
            latency.push(accept_load(&edge, max * fraction, config.latency_run).await);
        }
        edge.wait_until_caught_up().await;
        projection_lag = Some(lag_at(&edge, max * 0.5, config.latency_run).await);
    }
    Ok(BenchReport {
        search,
        sustained,
        failed_sustained,
        latency,
        projection_lag,
        kafka_ceiling,
        nats_ceiling,
        replay,
        rss_mib_at_max,
    })
}

/// Zero errors, and the answers kept up with the offer.
fn passes(result: &LoadResult) -> bool {
    result.errors == 0 && result.achieved_rate >= result.offered_rate * 0.95
}

async fn accept_load(edge: &Edge, rate: f64, duration: Duration) -> LoadResult {
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
    /// The report as a Markdown table, for BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| measure | figure |\n| --- | --- |\n");
        let mut row =
            |what: &str, figure: String| out.push_str(&format!("| {what} | {figure} |\n"));
        match &self.sustained {
            Some(s) => row(
                "Option B sustained (202/s, errors)",
                format!(
                    "{:.0} offered, {:.0} achieved, {} errors over {} requests",
                    s.offered_rate, s.achieved_rate, s.errors, s.sent
                ),
            ),
            None => row("Option B sustained", "no search step passed".to_owned()),
        }
        for run in &self.latency {
            let l = &run.latency;
            row(
                &format!("accept latency at {:.0}/s (ms)", run.offered_rate),
                format!(
                    "p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
                    l.p50, l.p90, l.p99, l.p999, l.max
                ),
            );
        }
        if let Some(lag) = &self.projection_lag {
            let figure = match &lag.lag {
                Some(l) => format!(
                    "p50 {:.2}, p99 {:.2}, max {:.2} ({} samples)",
                    l.p50, l.p99, l.max, lag.samples
                ),
                None => "not measured".to_owned(),
            };
            let failed = format!(
                "{} of {} not visible within the wait",
                lag.load.errors, lag.load.sent
            );
            row(
                "projection lag at 50 % (ms, 202 to visible)",
                format!("{figure}; {failed}"),
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
        if let Some(s) = &self.sustained {
            row(
                "Option B / (b)",
                format!("{:.3}", s.achieved_rate / self.kafka_ceiling.per_second),
            );
            row(
                "Option B / (c)",
                format!("{:.3}", s.achieved_rate / self.nats_ceiling.per_second),
            );
        }
        for (process, mib) in &self.rss_mib_at_max {
            row(
                &format!("peak RSS of {process} at max (MiB)"),
                format!("{mib:.1}"),
            );
        }
        out
    }
}

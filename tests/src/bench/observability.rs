//! What observability costs Option B: `RegisterOfficer` measured with metrics, trace export
//! and the timeline all off, then all on, in alternating rounds on one set of brokers
//! (every second pair in reverse order, after a warm-up round that is not counted). Each
//! round restarts the services with its setting in a namespace of its own (fresh topics,
//! buckets, consumer groups and timeline stream), so rounds of the same setting show how far
//! this machine drifts, and the on/off difference can be read against that spread.

mod report;

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::Result;
use serde::Serialize;

pub use report::{ObservabilityReport, RateMeans, SettingMeans};

use super::{
    client::Edge,
    open_loop::LoadResult,
    processes::ProcessUse,
    run::{Target, WARM_UP_RATE, accept_load, first_acceptance, passes, sampled_load, search_max},
};
use crate::{
    fault::cluster::{Cluster, ClusterOptions, ExtraEnv},
    otel::{Collector, FileFormat},
};

/// How long each part of a round runs, and how many rounds.
#[derive(Debug, Clone)]
pub struct ObservabilityConfig {
    /// Rounds of each setting, run as off, on, on, off, off, on, ...
    pub pairs: usize,
    /// The settings of one pair, in order (off and on, or single switches to find which
    /// one costs).
    pub settings: Vec<Setting>,
    /// Offered rates tried in turn while searching the maximum (requests/s).
    pub rates: Vec<f64>,
    /// Length of each search step.
    pub step: Duration,
    /// Length of the sustained run at the highest rate that passed.
    pub sustain: Duration,
    /// Fixed rates (requests/s) whose latency is compared, below saturation.
    pub latency_rates: Vec<f64>,
    /// Length of each fixed-rate run.
    pub latency_run: Duration,
    /// Load at 200/s after each restart, not counted.
    pub warm_up: Duration,
    /// Load at the highest fixed rate before the first round, not counted: a fresh Kafka
    /// broker is still compiling its hot paths for minutes (see BENCHMARKS.md), which
    /// would otherwise count against the first round only.
    pub broker_warm_up: Duration,
    /// Whether a whole round of the first setting runs, and is reported but not counted,
    /// before the counted ones: after the broker warm-up the first round was still the
    /// slowest of its setting by up to a third (BENCHMARKS.md, run F).
    pub warm_up_round: bool,
}

/// The three observability switches: all off, all on, or one of them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// `ACKGATE_METRICS=off`, no `OTEL_EXPORTER_OTLP_ENDPOINT`, `ACKGATE_TIMELINE=off`.
    Off,
    /// `ACKGATE_METRICS=on`, traces exported to the collector, `ACKGATE_TIMELINE=on`: the
    /// shipped defaults with a collector configured (a tenth of new traces sampled).
    On,
    /// As [`Setting::On`], with every trace sampled (`OTEL_TRACES_SAMPLER=always_on`).
    Full,
    /// Metrics alone.
    Metrics,
    /// Trace export alone.
    Traces,
    /// The timeline alone.
    Timeline,
}

impl Setting {
    /// The setting's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Full => "full",
            Self::Metrics => "metrics",
            Self::Traces => "traces",
            Self::Timeline => "timeline",
        }
    }

    /// Which switches are on: metrics, traces, timeline.
    fn switches(self) -> (bool, bool, bool) {
        match self {
            Self::Off => (false, false, false),
            Self::On | Self::Full => (true, true, true),
            Self::Metrics => (true, false, false),
            Self::Traces => (false, true, false),
            Self::Timeline => (false, false, true),
        }
    }

    /// The services' environment for this setting.
    fn env(self, collector: &Collector) -> ExtraEnv {
        let (metrics, traces, timeline) = self.switches();
        let switch = |on: bool| if on { "on" } else { "off" }.to_owned();
        let set_switches = [
            ("ACKGATE_METRICS".to_owned(), switch(metrics)),
            ("ACKGATE_TIMELINE".to_owned(), switch(timeline)),
        ];
        let mut set = set_switches.to_vec();
        let mut unset = Vec::new();
        match traces {
            true => set.push((OTLP_ENDPOINT.to_owned(), collector.endpoint())),
            false => unset.push(OTLP_ENDPOINT.to_owned()),
        }
        match self {
            Self::Full => set.push((SAMPLER.to_owned(), "always_on".to_owned())),
            _ => unset.push(SAMPLER.to_owned()),
        }
        ExtraEnv { set, unset }
    }
}

const OTLP_ENDPOINT: &str = runtime::telemetry::trace::ENDPOINT_VARIABLE;
const SAMPLER: &str = runtime::telemetry::trace::SAMPLER_VARIABLE;

/// One fixed-rate run and what each process spent on it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FixedRateRun {
    /// The load and its acceptance latency.
    pub run: LoadResult,
    /// Each process over the run: peak memory and CPU time.
    pub processes: BTreeMap<String, ProcessUse>,
}

/// Proof that the round's setting took effect: what the switches leave behind.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Whether the edge served `/metrics` (it answers 404 with metrics off).
    pub metrics_served: bool,
    /// Bytes of spans the collector wrote during the round.
    pub trace_bytes: u64,
    /// Notices in the round's timeline stream (0 when the stream was never created).
    pub timeline_notices: u64,
}

/// One round: fresh services with one setting, measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Round {
    /// 1, 2, ... in the order run (0: the warm-up round, not counted).
    pub number: usize,
    /// All off or all on.
    pub setting: Setting,
    /// The round's deployment namespace.
    pub namespace: String,
    /// Runs at each of the fixed rates, in order.
    pub latency: Vec<FixedRateRun>,
    /// Each search step, in order.
    pub search: Vec<LoadResult>,
    /// The sustained run at the highest rate that held with zero errors.
    pub sustained: Option<LoadResult>,
    /// Sustained runs at higher rates that did not hold.
    pub failed_sustained: Vec<LoadResult>,
    /// Each process during the sustained run.
    pub processes_at_max: BTreeMap<String, ProcessUse>,
    /// What the switches left behind.
    pub evidence: Evidence,
}

/// Runs the rounds on one stack started from `binary` (services logging under `logs`).
pub async fn run(
    binary: &Path,
    logs: &Path,
    options: &ClusterOptions,
    config: &ObservabilityConfig,
) -> Result<ObservabilityReport> {
    let collector = Collector::start_writing(FileFormat::Proto).await?;
    let brokers_logs = logs.join("00-warm-up");
    std::fs::create_dir_all(&brokers_logs)?;
    let mut cluster = Cluster::start(binary, &brokers_logs, options).await?;
    warm_brokers(&cluster, config).await?;
    let warm_up = match config.settings.first() {
        Some(&setting) if config.warm_up_round => {
            Some(Round::measure(&mut cluster, &collector, 0, setting, logs, config).await?)
        }
        _ => None,
    };
    let mut rounds = Vec::new();
    let settings = round_order(&config.settings, config.pairs);
    for (i, setting) in settings.into_iter().enumerate() {
        let round = Round::measure(&mut cluster, &collector, i + 1, setting, logs, config).await?;
        rounds.push(round);
    }
    Ok(ObservabilityReport::new(warm_up, rounds))
}

/// The settings of `pairs` pairs, every second pair reversed (off, on, on, off, off, on,
/// ...): rounds got slower as a run went on (BENCHMARKS.md, run G), and in a fixed order
/// that drift counted against the setting that always came second.
fn round_order(settings: &[Setting], pairs: usize) -> Vec<Setting> {
    (0..pairs)
        .flat_map(|pair| {
            let mut order = settings.to_vec();
            if pair % 2 == 1 {
                order.reverse();
            }
            order
        })
        .collect()
}

/// Loads the first services (not measured) so the broker's JIT warms up before round 1.
async fn warm_brokers(cluster: &Cluster, config: &ObservabilityConfig) -> Result<()> {
    let edge = Edge::new(&cluster.edge_url(), "WB");
    first_acceptance(&edge).await?;
    let rate = config
        .latency_rates
        .iter()
        .copied()
        .fold(WARM_UP_RATE, f64::max);
    let warm = accept_load(&edge, rate, config.broker_warm_up).await;
    tracing::info!(
        rate,
        ok = warm.ok,
        errors = warm.errors,
        "brokers warmed up"
    );
    edge.wait_until_caught_up().await;
    Ok(())
}

impl Round {
    /// Restarts the services with `setting`, then measures the fixed rates, searches the
    /// maximum and holds it.
    async fn measure(
        cluster: &mut Cluster,
        collector: &Collector,
        number: usize,
        setting: Setting,
        logs: &Path,
        config: &ObservabilityConfig,
    ) -> Result<Self> {
        let namespace = format!("obs-{number}-{}", setting.name());
        let env = setting.env(collector);
        let (target, edge) = start_round(cluster, collector, &namespace, env, logs, config).await?;
        let trace_bytes_before = collector.received_bytes();
        let latency = fixed_rates(&edge, &target, config).await;
        let (search, passed) = search_max(&namespace, &edge, &config.rates, config.step).await;
        let held = hold_max(&edge, passed, &target, config.sustain).await;
        let mut evidence = Evidence::of(cluster, &target.edge).await;
        evidence.trace_bytes = collector
            .received_bytes()
            .saturating_sub(trace_bytes_before);
        let max = held.0.as_ref().map(|s| s.achieved_rate);
        tracing::info!(round = number, ?evidence, ?max, "round done");
        Ok(Self {
            number,
            setting,
            namespace,
            latency,
            search,
            sustained: held.0,
            failed_sustained: held.1,
            processes_at_max: held.2,
            evidence,
        })
    }
}

/// Restarts the services in `namespace` with `env` (logging in a folder named after it) and
/// warms them up: what to sample during the round, and a client of the new edge.
async fn start_round(
    cluster: &mut Cluster,
    collector: &Collector,
    namespace: &str,
    env: ExtraEnv,
    logs: &Path,
    config: &ObservabilityConfig,
) -> Result<(Target, Edge)> {
    let dir = logs.join(namespace);
    std::fs::create_dir_all(&dir)?;
    cluster.restart_services(namespace, env, &dir).await?;
    let mut target = Target::of(cluster);
    let collector_pid = collector
        .pid()
        .map(|pid| ("otel collector".to_owned(), pid));
    target.processes.extend(collector_pid);
    let edge = Edge::new(&target.edge, "OB");
    first_acceptance(&edge).await?;
    let warm = accept_load(&edge, WARM_UP_RATE, config.warm_up).await;
    tracing::info!(namespace, ok = warm.ok, errors = warm.errors, "warmed up");
    Ok((target, edge))
}

/// A sampled run at each fixed rate, the projections caught up before each.
async fn fixed_rates(
    edge: &Edge,
    target: &Target,
    config: &ObservabilityConfig,
) -> Vec<FixedRateRun> {
    let mut runs = Vec::new();
    for rate in &config.latency_rates {
        edge.wait_until_caught_up().await;
        let (run, processes) =
            sampled_load(edge, *rate, config.latency_run, &target.processes).await;
        tracing::info!(
            rate,
            ok = run.ok,
            errors = run.errors,
            p99 = run.latency.p99,
            "fixed rate"
        );
        runs.push(FixedRateRun { run, processes });
    }
    runs
}

/// What [`hold_max`] found: the run that held, the runs that did not, and each process
/// during the one that held.
type Held = (
    Option<LoadResult>,
    Vec<LoadResult>,
    BTreeMap<String, ProcessUse>,
);

/// Holds the highest of `passed` for `sustain`, stepping down until a run holds with zero
/// errors: a short search step can pass at a rate a long run cannot hold.
async fn hold_max(edge: &Edge, mut passed: Vec<f64>, target: &Target, sustain: Duration) -> Held {
    let mut failed = Vec::new();
    while let Some(rate) = passed.pop() {
        edge.wait_until_caught_up().await;
        let (run, processes) = sampled_load(edge, rate, sustain, &target.processes).await;
        tracing::info!(rate, ok = run.ok, errors = run.errors, "sustained run");
        if passes(&run) {
            return (Some(run), failed, processes);
        }
        failed.push(run);
    }
    (None, failed, BTreeMap::new())
}

impl Evidence {
    /// Whether the edge serves metrics, and how many notices the round's timeline stream holds.
    async fn of(cluster: &Cluster, edge: &str) -> Self {
        let metrics = reqwest::get(format!("{edge}/metrics")).await;
        Self {
            metrics_served: metrics.is_ok_and(|r| r.status().is_success()),
            trace_bytes: 0,
            timeline_notices: timeline_notices(cluster).await.unwrap_or(0),
        }
    }
}

/// Messages in the round's timeline stream; an error when the stream does not exist.
async fn timeline_notices(cluster: &Cluster) -> Result<u64> {
    let client = async_nats::connect(cluster.nats.url()).await?;
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream(&cluster.names.timeline_stream).await?;
    Ok(stream.info().await?.state.messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_second_pair_runs_in_reverse() {
        let order = round_order(&[Setting::Off, Setting::On], 3);
        let names: Vec<&str> = order.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["off", "on", "on", "off", "off", "on"]);
    }
}

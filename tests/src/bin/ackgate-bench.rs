//! `ackgate-bench`: the benchmark harness. Starts the stack on loopback (each service its
//! own process, run from this binary) or targets a running one, then measures Option B and
//! the baselines beneath it, and writes a JSON report.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use e2e_tests::{
    bench::{
        observability::{self, ObservabilityConfig, ObservabilityReport},
        run::{self, BenchConfig, Stacks, Target},
    },
    fault::cluster::{self, ClusterOptions},
};

#[derive(Parser)]
#[command(name = "ackgate-bench", about = "Ackgate benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the benchmark.
    Run(Box<RunArgs>),
    /// Measures Option B with metrics, trace export and the timeline all off, then all on,
    /// in alternating rounds on one set of brokers, and prints what turning them on costs.
    Observability(ObservabilityArgs),
    /// Offers one fixed rate of registrations to a running edge and prints the latency
    /// (or, with `--lag`, the projection lag) as JSON: for trying a setting quickly.
    Load(LoadArgs),
    /// Runs one service as its own binary would (used by `run`).
    #[command(hide = true)]
    Service {
        /// `bl-service`, `projections` or `ackgate-edge`.
        name: String,
    },
}

/// `ackgate-bench run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Seconds of each step of the search for the maximum rate.
    #[arg(long, default_value_t = 5)]
    step_secs: u64,
    /// Seconds of the sustained run at the maximum.
    #[arg(long, default_value_t = 60)]
    sustain_secs: u64,
    /// Seconds of each fixed-rate latency run and of the lag run.
    #[arg(long, default_value_t = 20)]
    latency_secs: u64,
    /// Seconds of each baseline.
    #[arg(long, default_value_t = 10)]
    baseline_secs: u64,
    /// Events in the topic the replay rate is measured on.
    #[arg(long, default_value_t = 1_000_000)]
    replay_events: u64,
    /// Offered rates tried while searching the maximum, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,3000,4000,5000,6000,8000,10000,12000,15000,18000,22000,26000,30000"
    )]
    rates: Vec<f64>,
    /// Officer-service instances of the stack started here.
    #[arg(long, default_value_t = 1)]
    bl_instances: usize,
    /// Apache Kafka nodes of the stack started here: 1, or 3 (replication factor 3,
    /// `min.insync.replicas=2`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3))]
    kafka_nodes: u32,
    /// A running edge to measure instead of starting a stack (with `--nats`, `--kafka`).
    #[arg(long, requires_all = ["nats", "kafka"])]
    edge: Option<String>,
    /// An edge of the running stack that accepts `RegisterOfficer` directly (Option A).
    #[arg(long, requires = "edge")]
    direct_edge: Option<String>,
    /// NATS of the running stack.
    #[arg(long)]
    nats: Option<String>,
    /// Kafka bootstrap of the running stack.
    #[arg(long)]
    kafka: Option<String>,
    /// Where to write the JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where to write the latency plot (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Where the started stack's services write their logs (kept after the run);
    /// a temporary directory, removed at the end, if not given.
    #[arg(long)]
    logs: Option<PathBuf>,
}

/// `ackgate-bench observability`.
#[derive(clap::Args)]
struct ObservabilityArgs {
    /// Rounds of each setting (run off, on, then on, off, and so on).
    #[arg(long, default_value_t = 3)]
    pairs: usize,
    /// The settings of each pair, in order: `off`, `on` (the default), `full` (on, every
    /// trace sampled), or `metrics`, `traces`, `timeline` alone.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "off,on")]
    settings: Vec<observability::Setting>,
    /// Offered rates tried while searching each round's maximum, comma-separated: steps of
    /// 50 to 100 (3-10 %) from 600/s to past this machine's maximum (1,000-2,600/s on
    /// different days), so a 10 % difference shows (steps of 200/s could only bound it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "600,700,800,900,1000,1050,1100,1150,1200,1250,1300,1350,1400,1450,1500,1550,1600,1650,1700,1750,1800,1850,1900,1950,2000,2100,2200,2300,2400,2600,2800,3000,3400,4000"
    )]
    rates: Vec<f64>,
    /// Seconds of each search step.
    #[arg(long, default_value_t = 5)]
    step_secs: u64,
    /// Seconds of the sustained run at each round's maximum.
    #[arg(long, default_value_t = 30)]
    sustain_secs: u64,
    /// Fixed rates whose latency and CPU are compared, comma-separated (below saturation).
    #[arg(long, value_delimiter = ',', default_value = "250,500")]
    latency_rates: Vec<f64>,
    /// Seconds of each fixed-rate run.
    #[arg(long, default_value_t = 15)]
    latency_secs: u64,
    /// Seconds of load before the first round, not counted, warming the broker up.
    #[arg(long, default_value_t = 30)]
    broker_warm_up_secs: u64,
    /// Skip the warm-up round (a whole round of the first setting, reported but not
    /// counted, run before the counted ones).
    #[arg(long)]
    no_warm_up_round: bool,
    /// Where to write the JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where the services write their logs (one folder per round; kept after the run);
    /// a temporary directory, removed at the end, if not given.
    #[arg(long)]
    logs: Option<PathBuf>,
}

/// `ackgate-bench load`.
#[derive(clap::Args)]
struct LoadArgs {
    /// The running edge.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    edge: String,
    /// Registrations offered per second (open loop).
    #[arg(long)]
    rate: f64,
    /// Seconds of the run (after a 3-second warm-up).
    #[arg(long, default_value_t = 15)]
    secs: u64,
    /// Measure 202 to visible through read-your-writes queries instead of acceptance.
    #[arg(long)]
    lag: bool,
    /// Two capitals that start every badge of this run: change it between runs on the
    /// same stack, or the badges are taken.
    #[arg(long, default_value = "LD", value_parser = two_capitals)]
    badge_prefix: String,
}

/// A badge prefix: exactly two capitals (a badge is 1-3 capitals, a dash and digits).
fn two_capitals(raw: &str) -> Result<String, String> {
    let valid = raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_uppercase());
    valid
        .then(|| raw.to_owned())
        .ok_or_else(|| format!("expected two capitals (A-Z), got {raw:?}"))
}

fn main() -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Service { name } => runtime.block_on(cluster::serve_from_env(&name))?,
        Command::Load(args) => {
            runtime::init_cli_telemetry("warn");
            let duration = Duration::from_secs(args.secs);
            let run = runtime.block_on(run::fixed_rate(
                &args.edge,
                &args.badge_prefix,
                args.rate,
                duration,
                args.lag,
            ))?;
            let json = serde_json::to_string_pretty(&run)? + "\n";
            std::io::Write::write_all(&mut std::io::stdout(), json.as_bytes())?;
        }
        Command::Observability(args) => {
            runtime::init_cli_telemetry("info,rdkafka=warn");
            let report = runtime.block_on(observe(&args))?;
            if let Some(path) = &args.report {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
            std::io::Write::write_all(&mut std::io::stdout(), report.markdown().as_bytes())?;
        }
        Command::Run(args) => {
            let RunArgs {
                step_secs,
                sustain_secs,
                latency_secs,
                baseline_secs,
                replay_events,
                rates,
                bl_instances,
                kafka_nodes,
                edge,
                direct_edge,
                nats,
                kafka,
                report,
                plot,
                logs,
            } = *args;
            runtime::init_cli_telemetry("info,rdkafka=warn");
            let config = BenchConfig {
                rates,
                step: Duration::from_secs(step_secs),
                sustain: Duration::from_secs(sustain_secs),
                latency_run: Duration::from_secs(latency_secs),
                baseline: Duration::from_secs(baseline_secs),
                replay_events,
                warm_up: Duration::from_secs(3),
            };
            let target = edge
                .zip(nats)
                .zip(kafka)
                .map(|((edge, nats), kafka)| Target {
                    edge,
                    direct_edge: direct_edge.clone(),
                    nats,
                    kafka,
                    processes: Vec::new(),
                });
            let shape = run::bench_cluster(bl_instances, kafka_nodes);
            let outcome = runtime.block_on(measure(target, shape, logs, &config))?;
            let json = serde_json::to_string_pretty(&outcome)?;
            if let Some(path) = report {
                std::fs::write(&path, &json)?;
            }
            if let Some(path) = plot {
                e2e_tests::bench::plot::latency_svg(&outcome, &path)?;
            }
            std::io::Write::write_all(&mut std::io::stdout(), outcome.markdown().as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the observability rounds on a stack started here (one Kafka node, no Option A edge).
async fn observe(args: &ObservabilityArgs) -> anyhow::Result<ObservabilityReport> {
    let secs = Duration::from_secs;
    let config = ObservabilityConfig {
        pairs: args.pairs,
        settings: args.settings.clone(),
        rates: args.rates.clone(),
        step: secs(args.step_secs),
        sustain: secs(args.sustain_secs),
        latency_rates: args.latency_rates.clone(),
        latency_run: secs(args.latency_secs),
        warm_up: secs(3),
        broker_warm_up: secs(args.broker_warm_up_secs),
        warm_up_round: !args.no_warm_up_round,
    };
    let temporary = tempfile::tempdir()?;
    let logs = args.logs.as_deref().unwrap_or(temporary.path());
    let options = ClusterOptions {
        direct_edge: false,
        ..run::bench_cluster(1, 1)
    };
    let binary = std::env::current_exe()?;
    // On Ctrl-C or SIGTERM the stack is dropped, which stops every process it started.
    tokio::select! {
        report = observability::run(&binary, logs, &options, &config) => report,
        () = runtime::shutdown_signal() => anyhow::bail!("interrupted; the stack is stopped"),
    }
}

/// Measures `target`, or stacks started here for the purpose.
async fn measure(
    target: Option<Target>,
    shape: cluster::ClusterOptions,
    logs: Option<PathBuf>,
    config: &BenchConfig,
) -> anyhow::Result<run::BenchReport> {
    let temporary = tempfile::tempdir()?;
    let logs = logs.unwrap_or_else(|| temporary.path().to_owned());
    let mut stacks = match target {
        Some(target) => Stacks::Running(target),
        None => Stacks::fresh(std::env::current_exe()?, logs, shape),
    };
    // On Ctrl-C or SIGTERM the stacks are dropped, which stops every process they started.
    tokio::select! {
        report = run::run(&mut stacks, config) => report,
        () = runtime::shutdown_signal() => anyhow::bail!("interrupted; the stack is stopped"),
    }
}

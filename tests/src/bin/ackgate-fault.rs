//! `ackgate-fault`: the fault suite (`run`), and the services it kills (`service <name>`),
//! started from this same binary so the suite needs nothing but itself and the brokers.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use e2e_tests::fault::{self, FaultConfig, cluster::ServiceTimings};
use runtime::millis;

#[derive(Parser)]
#[command(
    name = "ackgate-fault",
    about = "Ackgate fault suite: load, SIGKILLs, and the exactly-once checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the suite and exits non-zero on any violation. A flag given twice takes its last
    /// value, so wrappers can set defaults.
    #[command(args_override_self = true)]
    Run {
        /// Length of the chaos phase (seconds).
        #[arg(long, default_value_t = 60)]
        duration_secs: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Officer-service instances.
        #[arg(long, default_value_t = 2)]
        bl_instances: usize,
        /// Apache Kafka nodes: 1, or 3 for the cluster mode (replication factor 3,
        /// `min.insync.replicas=2`), whose Kafka turns kill, alternately, the leader of a
        /// partition of the officer topic and the active KRaft controller, one node at a time.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3))]
        kafka_nodes: u32,
        /// Mean time between kills (milliseconds).
        #[arg(long, default_value = "3000", value_parser = millis)]
        kill_every_ms: Duration,
        /// Longest downtime of a killed component (milliseconds).
        #[arg(long, default_value = "1500", value_parser = millis)]
        max_downtime_ms: Duration,
        /// Seed of every random choice (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write the JSON report.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Runs one service as its own binary would (used by `run`).
    #[command(hide = true)]
    Service {
        /// `bl-service`, `projections` or `ackgate-edge`.
        name: String,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Service { name } => runtime
            .block_on(fault::cluster::serve_from_env(&name))
            .map(|()| ExitCode::SUCCESS),
        Command::Run {
            duration_secs,
            clients,
            bl_instances,
            kafka_nodes,
            kill_every_ms,
            max_downtime_ms,
            seed,
            report,
        } => {
            runtime::init_cli_telemetry("info,rdkafka=warn");
            let config = FaultConfig {
                binary: std::env::current_exe()?,
                duration: Duration::from_secs(duration_secs),
                clients,
                bl_instances,
                kafka_nodes,
                kill_every: kill_every_ms,
                max_downtime: max_downtime_ms,
                seed: seed.unwrap_or_else(clock_seed),
                timings: ServiceTimings {
                    produce_timeout: Duration::from_secs(2),
                    command_timeout: Duration::from_secs(10),
                },
                settle_within: Duration::from_secs(120),
            };
            let outcome = runtime.block_on(fault::run(config))?;
            eprint!("{}", fault::summary(&outcome));
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_vec_pretty(&outcome)?)?;
            }
            Ok(if outcome.verdict.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

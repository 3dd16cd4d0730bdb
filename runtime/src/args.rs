//! Settings every service takes, flattened into each service's own clap `Settings`.

use std::{path::PathBuf, time::Duration};

use super::{LogFormat, Telemetry, init_telemetry};
use contracts::{Catalog, Names, Namespace, catalog::CatalogError};

/// Connection and logging settings shared by all services.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        global = true,
        env = "ACKGATE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Log format: `text` or `json`. Verbosity comes from `RUST_LOG`.
    #[arg(
        long,
        global = true,
        env = "ACKGATE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Deployment namespace prefixed to every topic, subject, bucket and group, so several
    /// environments share one Kafka cluster and one NATS server (empty: no prefix).
    #[arg(long, global = true, env = "ACKGATE_NAMESPACE", default_value = "")]
    pub namespace: Namespace,
    /// Longest graceful stop on SIGTERM or Ctrl-C: past it the service exits anyway, even
    /// with its brokers gone and work unfinished.
    #[arg(long, global = true, env = "ACKGATE_SHUTDOWN_GRACE_MS", default_value = "5000", value_parser = millis)]
    pub shutdown_grace: Duration,
    /// A directory of commands of your own, beside the shipped ones: `catalog/*.json`
    /// entries and their `schemas/*.json`. Every service of a deployment must load the same.
    #[arg(long, global = true, env = "ACKGATE_CATALOG_DIR")]
    pub catalog_dir: Option<PathBuf>,
    /// The command timeline.
    #[command(flatten)]
    pub timeline: crate::TimelineArgs,
    /// Record Prometheus metrics and serve them at `/metrics` (`on` or `off`).
    #[arg(long, global = true, env = "ACKGATE_METRICS", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// OTLP/HTTP collector to export traces to (`http://host:4318`); traces are off without it.
    #[arg(long, global = true, env = crate::telemetry::trace::ENDPOINT_VARIABLE)]
    pub otlp_endpoint: Option<String>,
}

impl CommonArgs {
    /// Every topic, subject, bucket and group name in this deployment's namespace.
    pub fn names(&self) -> Names {
        Names::new(self.namespace.clone())
    }

    /// Installs logging and, with an OTLP endpoint, trace export for `service` (its
    /// OpenTelemetry `service.name`); keep the guard for the life of the process.
    pub fn init_telemetry(&self, service: &'static str, default_filter: &str) -> Telemetry {
        init_telemetry(
            service,
            default_filter,
            self.log_format,
            self.otlp_endpoint.as_deref(),
        )
    }

    /// The shipped command catalog, plus the entries of [`Self::catalog_dir`], checked.
    pub fn catalog(&self) -> Result<Catalog, CatalogError> {
        Catalog::load(self.catalog_dir.as_deref())
    }
}

/// Kafka settings shared by the services that talk to Kafka.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port`, comma-separated).
    #[arg(
        long,
        global = true,
        env = "ACKGATE_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,
}

/// How a service produces events: shared by every path that accepts a command.
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    /// Longest wait for Kafka's acknowledgement before answering `kafka-unavailable`.
    #[arg(long, env = "ACKGATE_PRODUCE_TIMEOUT_MS", default_value = "5000", value_parser = millis)]
    pub produce_timeout: Duration,
    /// Producer batching delay (`linger.ms`): latency traded for throughput. 0 sends at
    /// once; records still batch while earlier requests are in flight. librdkafka's 1 ms
    /// costs about 2 ms at the median (see BENCHMARKS.md).
    #[arg(long, env = "ACKGATE_PRODUCE_LINGER_MS", default_value_t = 0)]
    pub linger_ms: u32,
}

/// Parses a switch: `on`/`off` (also `true`/`false`).
pub fn on_off(raw: &str) -> Result<bool, String> {
    match raw {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("expected on or off, got {other:?}")),
    }
}

/// Parses a duration in milliseconds (`--produce-timeout-ms 5000`).
pub fn millis(raw: &str) -> Result<Duration, String> {
    raw.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("expected milliseconds: {e}"))
}

/// Parses a duration in seconds (`--ledger-retention-secs 86400`).
pub fn secs(raw: &str) -> Result<Duration, String> {
    raw.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("expected seconds: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn the_namespace_and_the_grace_are_flags() {
        let argv = ["svc", "--namespace", "staging", "--shutdown-grace", "250"];
        let cli = Cli::try_parse_from(argv).expect("valid flags");
        assert_eq!(
            cli.common.names().officer_events,
            "staging.ackgate.officer.events"
        );
        assert_eq!(cli.common.shutdown_grace, Duration::from_millis(250));
    }

    #[test]
    fn an_invalid_namespace_is_refused_at_start() {
        let argv = ["svc", "--namespace", "Prod.1"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}

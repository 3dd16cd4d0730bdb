//! Prometheus metrics, served at `/metrics` beside `/health` and `/ready` on every service.
//!
//! The metric names and their labels are defined once, here (see [`families`]); each service
//! registers the groups it records at start ([`install`]). Labels are bounded sets (command
//! type, route template, outcome, stage, topic, partition), never an id. Recording can be
//! switched off (`ACKGATE_METRICS=off`): every recording call then returns at once, and
//! `/metrics` answers 404, so a benchmark can compare both in one run.

mod families;

use std::sync::{
    LazyLock, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::registry::Registry;

pub use families::{
    CommandMetrics, ConsumerMetrics, HttpMetrics, LedgerState, NatsMetrics, ProduceMetrics, Stage,
    command, consumer, http, nats, produce,
};

/// Whether metrics are recorded and served: on unless a service's settings turned them off.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// The process's registry: one per process, since a process is one service.
static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// The OpenMetrics text media type, for scrapers that ask for it (Prometheus does).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The classic Prometheus text format, for everything else (`promtool check metrics`, curl).
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which service a process is: decides the metric groups it registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The REST edge: HTTP requests, and produce for direct commands.
    Edge,
    /// A business-logic service: commands, their stages, produce, ledger and dead letters.
    BusinessLogic,
    /// The projections: consumer lag and applied events.
    Projections,
}

/// Turns recording on or off and registers `service`'s groups (so `/metrics` lists every
/// family the service records, even before its first sample).
pub fn install(service: Service, on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    nats();
    match service {
        Service::Edge => {
            http();
            produce();
        }
        Service::BusinessLogic => {
            command();
            produce();
        }
        Service::Projections => {
            consumer();
        }
    }
}

/// Whether metrics are recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Registers a group's families; called once per group.
fn with_registry<T>(register: impl FnOnce(&mut Registry) -> T) -> T {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    register(&mut registry)
}

/// The exposition of every registered family, in the OpenMetrics text format.
pub fn encode() -> Result<String, std::fmt::Error> {
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// The same exposition in the classic Prometheus text format: a counter family is named with
/// its `_total` suffix there (OpenMetrics names it without), and there is no `# EOF`.
pub fn to_classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut classic = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines().filter(|l| *l != "# EOF") {
        let family = ["# HELP ", "# TYPE ", "# UNIT "].iter().find_map(|prefix| {
            let name = line.strip_prefix(prefix)?.split(' ').next()?;
            counters.contains(&name).then_some((prefix, name))
        });
        match family {
            Some((prefix, name)) => {
                let rest = &line[prefix.len() + name.len()..];
                classic.push_str(&format!("{prefix}{name}_total{rest}"));
            }
            None => classic.push_str(line),
        }
        classic.push('\n');
    }
    classic
}

/// `GET /metrics`: the exposition (OpenMetrics when asked for, else the classic text
/// format), or 404 while metrics are off.
pub(crate) async fn scrape(headers: HeaderMap) -> Response {
    if !enabled() {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off (ACKGATE_METRICS=off)",
        )
            .into_response();
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    match encode() {
        Ok(text) if openmetrics => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Ok(text) => ([(header::CONTENT_TYPE, CLASSIC)], to_classic(&text)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics do not encode");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn recorded_samples_appear_in_the_exposition_with_their_labels() {
        install(Service::BusinessLogic, true);
        let command = "MetricsTestCommand";
        super::command().handled(command, "accepted", Duration::from_millis(3));
        super::command().stage(command, Stage::Produce, Duration::from_millis(2));
        super::command().ledger(LedgerState::Accepted);
        let text = encode().expect("encodes");
        let handled = format!(
            "ackgate_command_duration_seconds_count{{command=\"{command}\",outcome=\"accepted\"}} 1"
        );
        assert!(text.contains(&handled), "{text}");
        assert!(text.contains("stage=\"produce\""), "{text}");
        assert!(text.contains("ackgate_ledger_transitions_total{state=\"accepted\"}"));
        assert!(text.contains("# TYPE ackgate_nats_reconnects counter"));
        assert!(text.ends_with("# EOF\n"));
        let classic = to_classic(&text);
        assert!(classic.contains("# TYPE ackgate_ledger_transitions_total counter\n"));
        assert!(classic.contains("# HELP ackgate_ledger_transitions_total Idempotency"));
        assert!(!classic.contains("# EOF"));
    }
}

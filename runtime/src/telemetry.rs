//! Logging with `tracing`. Request spans carry `correlation_id`, and the formatter prints
//! span fields on every line, so one grep follows a request through all services.

use tracing_subscriber::{EnvFilter, fmt};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected text or json)"
            )),
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`. Calling it twice
/// (tests) keeps the first subscriber.
pub fn init_telemetry(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Installs a text subscriber writing to stderr, for operator commands whose results go to
/// stdout.
pub fn init_cli_telemetry(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _already_set = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

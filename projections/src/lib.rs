//! Projections: consume Kafka, build read models, answer queries over NATS.
//!
//! The read models live in memory and are rebuilt from the beginning of the topic on every
//! start. Each event is applied once (deduplicated by eventId), and its offset is stored for
//! the consumer group only after it was applied, so the group's committed offsets (and so its
//! lag, as operators see it) never run ahead of what queries can see.

pub mod config;
pub mod consumer;
pub mod error;
pub mod queries;
pub mod startup;
pub mod store;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

use contracts::runtime::{init_telemetry, spawn_signal_listener};

/// What the binary does: log, serve until SIGTERM or Ctrl-C, drain, exit.
pub async fn run_process(settings: Settings) -> Result<()> {
    init_telemetry("info,rdkafka=warn", settings.common.log_format);
    let app = Application::build(settings).await?;
    tracing::info!(health_port = app.http_port(), "projections started");
    app.run(spawn_signal_listener()).await?;
    tracing::info!("projections stopped");
    Ok(())
}

//! Projections: consume Kafka, build read models, answer queries over NATS.
//!
//! The read models live in a [`store`]: in memory (rebuilt from the beginning of the topic
//! on every start) or in PostgreSQL (durable, shared by every instance, rebuildable into a
//! new generation without query downtime). Each batch of records is applied together with
//! the partition offsets that pass it, and records below those offsets are skipped, so a
//! crash neither loses nor double-applies an event. An event that cannot be applied is
//! parked, with every later event of its key behind it, and published to the dead-letter
//! topic; operators re-drive it after a fix.

pub mod config;
pub mod consumer;
pub mod deadletters;
pub mod error;
pub mod event;
pub mod observe;
pub mod ops;
pub mod queries;
pub mod rebuild;
pub mod startup;
pub mod store;
pub mod timeline;
pub mod upcast;
pub mod watermarks;

pub use config::{Settings, StoreKind};
pub use error::{Error, Result};
pub use startup::Application;

use runtime::{init_cli_telemetry, run_until_stopped, spawn_signal_listener};

/// What the binary does: an operator command, or log, serve until SIGTERM or Ctrl-C,
/// drain within the shutdown grace, exit.
pub async fn run_process(settings: Settings) -> Result<()> {
    const LOG_FILTER: &str = "info,rdkafka=warn";
    if let Some(operation) = settings.operation.clone() {
        init_cli_telemetry(LOG_FILTER);
        return ops::run(&settings, operation, &mut std::io::stdout().lock()).await;
    }
    let _telemetry = settings.common.init_telemetry("projections", LOG_FILTER);
    let grace = settings.common.shutdown_grace;
    let namespace = settings.common.namespace.clone();
    let app = Application::build(settings).await?;
    tracing::info!(health_port = app.http_port(), %namespace, "projections started");
    let (shutdown, activity) = (spawn_signal_listener(), app.activity());
    run_until_stopped(app.run(shutdown.clone()), shutdown, grace, activity).await?;
    tracing::info!("projections stopped");
    Ok(())
}

//! Business-logic services: the NATS endpoints that validate commands, apply business rules
//! and write the resulting events to Kafka, replying only after Kafka acknowledged them.
//!
//! The first service is the officer service (`RegisterOfficer`). Several instances share the
//! load through a NATS queue group; the badge-uniqueness rule holds across all of them
//! because badges are claimed in a shared JetStream key/value bucket. Every command goes
//! through the idempotency ledger (one 202 reply and one event per commandId), and a
//! command Kafka does not take is parked in the command dead-letter queue for re-drive.

pub mod config;
pub mod dlq;
pub mod error;
pub mod kafka;
pub mod ledger;
pub mod notices;
pub mod officer;
pub mod ops;
pub mod rebuild;
pub mod registry;
pub mod service;
pub mod startup;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

use runtime::{init_cli_telemetry, init_telemetry, run_until_stopped, spawn_signal_listener};

/// What the `officer-service` binary does: serve until SIGTERM (then drain within the
/// shutdown grace), or run the operator command given on the command line.
pub async fn run_process(settings: Settings) -> Result<()> {
    const LOG_FILTER: &str = "info,rdkafka=warn";
    if let Some(operation) = settings.operation.clone() {
        init_cli_telemetry(LOG_FILTER);
        return ops::run(&settings, operation, &mut std::io::stdout().lock()).await;
    }
    init_telemetry(LOG_FILTER, settings.common.log_format);
    let grace = settings.common.shutdown_grace;
    let namespace = settings.common.namespace.clone();
    let app = Application::build(settings).await?;
    tracing::info!(health_port = app.http_port(), %namespace, "officer service started");
    let (shutdown, activity) = (spawn_signal_listener(), app.activity());
    run_until_stopped(app.run(shutdown.clone()), shutdown, grace, activity).await?;
    tracing::info!("officer service stopped");
    Ok(())
}

//! Business-logic services: the NATS endpoints that validate commands, apply business rules
//! and write the resulting events to Kafka, replying only after Kafka acknowledged them.
//!
//! One binary, `bl-service`, serves the business-logic commands of the catalog: a NATS
//! service per domain (aggregate type), an endpoint per command version. Every command takes
//! the same [`pipeline`]: schema, idempotency ledger (one 202 reply and one event per
//! commandId), a [`decision`] on its aggregate's current state (shared by all instances in a
//! JetStream key/value bucket, one command at a time per aggregate), the event in Kafka. A
//! command Kafka does not take is parked in the command dead-letter queue for re-drive.
//! Domain rules live in [`domains`], one [`domain::Rules`] implementation per command.

pub mod aggregates;
pub mod config;
pub mod decision;
pub mod dlq;
pub mod domain;
pub mod domains;
pub mod error;
pub mod kafka;
pub mod ledger;
pub mod notices;
pub mod observe;
pub mod ops;
pub mod pipeline;
pub mod rebuild;
pub mod service;
pub mod startup;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

use runtime::{init_cli_telemetry, run_until_stopped, spawn_signal_listener};

/// What the `bl-service` binary does: serve until SIGTERM (then drain within the
/// shutdown grace), or run the operator command given on the command line.
pub async fn run_process(settings: Settings) -> Result<()> {
    const LOG_FILTER: &str = "info,rdkafka=warn";
    if let Some(operation) = settings.operation.clone() {
        init_cli_telemetry(LOG_FILTER);
        return ops::run(&settings, operation, &mut std::io::stdout().lock()).await;
    }
    let _telemetry = settings.common.init_telemetry("bl-service", LOG_FILTER);
    let grace = settings.common.shutdown_grace;
    let namespace = settings.common.namespace.clone();
    let app = Application::build(settings).await?;
    let domains = app.domains().join(",");
    tracing::info!(health_port = app.http_port(), %namespace, domains, "business-logic service started");
    let (shutdown, activity) = (spawn_signal_listener(), app.activity());
    run_until_stopped(app.run(shutdown.clone()), shutdown, grace, activity).await?;
    tracing::info!("business-logic service stopped");
    Ok(())
}

//! The REST edge: turns HTTP commands into NATS requests to the business-logic services and
//! HTTP queries into NATS requests to the projections. It holds no state and no business
//! rules: it assigns ids, checks that a body is JSON of an acceptable size, and maps replies
//! to HTTP statuses and RFC 9457 problem bodies. Commands an operator configures as direct
//! (Option A) it validates against their schema and produces to Kafka itself.

pub mod config;
pub mod context;
pub mod direct;
pub mod error;
pub mod observe;
pub mod problem;
pub mod requester;
pub mod routes;
pub mod startup;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

use runtime::{run_until_stopped, spawn_signal_listener};

/// What the binary does: log, serve until SIGTERM or Ctrl-C, drain within the shutdown
/// grace, exit.
pub async fn run_process(settings: Settings) -> Result<()> {
    let _telemetry = settings.common.init_telemetry("ackgate-edge", "info");
    let grace = settings.common.shutdown_grace;
    let namespace = settings.common.namespace.clone();
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), %namespace, "edge listening");
    let (shutdown, activity) = (spawn_signal_listener(), app.activity());
    run_until_stopped(app.run(shutdown.clone()), shutdown, grace, activity).await?;
    tracing::info!("edge stopped");
    Ok(())
}

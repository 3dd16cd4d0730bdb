//! `officer-service`: the officer business-logic service.

use bl_services::{Application, Settings};
use clap::Parser;
use contracts::runtime::{init_telemetry, spawn_signal_listener};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    init_telemetry("info,rdkafka=warn", settings.common.log_format);
    let app = Application::build(settings).await?;
    tracing::info!(health_port = app.http_port(), "officer service started");
    app.run(spawn_signal_listener()).await?;
    tracing::info!("officer service stopped");
    Ok(())
}

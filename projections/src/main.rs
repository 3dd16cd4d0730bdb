//! `projections`: Kafka consumers, read models and query responders.

use clap::Parser;
use contracts::runtime::{init_telemetry, spawn_signal_listener};
use projections::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    init_telemetry("info,rdkafka=warn", settings.common.log_format);
    let app = Application::build(settings).await?;
    tracing::info!(health_port = app.http_port(), "projections started");
    app.run(spawn_signal_listener()).await?;
    tracing::info!("projections stopped");
    Ok(())
}

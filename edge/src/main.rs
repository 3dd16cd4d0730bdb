//! `ackgate-edge`: the REST edge.

use clap::Parser;
use contracts::runtime::{init_telemetry, spawn_signal_listener};
use edge::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    init_telemetry("info", settings.common.log_format);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "edge listening");
    app.run(spawn_signal_listener()).await?;
    tracing::info!("edge stopped");
    Ok(())
}

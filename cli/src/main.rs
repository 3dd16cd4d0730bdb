//! `ackgate`: the support and operator tool.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_cli_telemetry("warn");
    let cli = ackgate_cli::Cli::parse();
    ackgate_cli::run(cli, &mut std::io::stdout().lock()).await?;
    Ok(())
}

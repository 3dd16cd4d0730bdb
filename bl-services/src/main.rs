//! `officer-service`: the officer business-logic service, and its operator commands.

use bl_services::Settings;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bl_services::run_process(Settings::parse()).await?;
    Ok(())
}

//! `bl-service`: the business-logic service of the catalog's commands, and its operator
//! commands.

use bl_services::Settings;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bl_services::run_process(Settings::parse()).await?;
    Ok(())
}

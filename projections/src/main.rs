//! `projections`: Kafka consumers, read models and query responders.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    projections::run_process(projections::Settings::parse()).await?;
    Ok(())
}

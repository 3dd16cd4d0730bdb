//! `ackgate-edge`: the REST edge.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    edge::run_process(edge::Settings::parse()).await?;
    Ok(())
}

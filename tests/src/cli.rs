//! Running `ackgate` commands against a test stack, in process, as an operator would.

use anyhow::Result;
use clap::Parser;

use crate::TestStack;

/// Runs `ackgate <args>` on the stack's NATS, namespace, Kafka and PostgreSQL; returns
/// what it printed.
pub async fn ackgate(stack: &TestStack, args: &[&str]) -> Result<String> {
    let nats = stack.nats.url();
    let namespace = stack.names.namespace.to_string();
    let kafka = stack.kafka.bootstrap();
    let mut argv = vec![
        "ackgate",
        "--nats-url",
        &nats,
        "--namespace",
        &namespace,
        "--kafka-bootstrap",
        &kafka,
    ];
    if let Some(url) = &stack.database_url {
        argv.extend(["--database-url", url.as_str()]);
    }
    argv.extend_from_slice(args);
    let cli = ackgate_cli::Cli::try_parse_from(argv)?;
    let mut out = Vec::new();
    ackgate_cli::run(cli, &mut out).await?;
    Ok(String::from_utf8(out)?)
}

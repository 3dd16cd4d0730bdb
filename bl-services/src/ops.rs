//! Operator commands of `bl-service`: list, inspect and re-drive the command
//! dead-letter queue; inspect and rebuild the idempotency ledger. Output is one JSON object
//! per line on stdout (logs go to stderr), so it pipes into `jq`.
//!
//! A re-drive sends the parked command to the BL services over NATS, exactly as the edge
//! would, with its original commandId and correlationId: it goes through the same
//! idempotency rules, so it cannot add a second event when the client already retried.

use std::{io::Write, time::Duration};

use async_nats::{HeaderMap, RequestErrorKind, client::Request};
use contracts::{ErrorCode, headers::message};
use runtime::nats;
use serde::Serialize;

use crate::{
    Error, Result, Settings,
    dlq::{ParkedCommand, Resend},
    ledger::ledger_key,
    rebuild,
    startup::open_buckets,
};

/// An operator command.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Operation {
    /// The command dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The idempotency ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

/// Dead-letter queue commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// List parked commands, oldest first.
    List,
    /// Show parked commands in full, found by commandId, correlationId or key.
    Show {
        /// commandId, correlationId or key.
        id: String,
    },
    /// Send parked commands again, with their original ids. A command leaves the queue when
    /// it gets a final answer (accepted, or refused); otherwise it stays parked.
    Redrive {
        /// commandIds, correlationIds or keys to re-drive.
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
        /// Re-drive every parked command.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// How long to wait for each answer (milliseconds).
        #[arg(long, default_value = "10000", value_parser = runtime::millis)]
        timeout_ms: Duration,
    },
}

/// Ledger commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LedgerCommand {
    /// Show the ledger entry of a command.
    Show {
        /// The command's name in the catalog, e.g. `RegisterOfficer`.
        command: String,
        /// The commandId (the client's Idempotency-Key).
        command_id: String,
    },
    /// Rebuild the ledger (events within its retention) and the aggregate state (every
    /// event) from the business-logic topics, e.g. after a bucket was lost. Safe to run
    /// while serving.
    Rebuild,
}

/// What became of one re-driven command.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    /// The idempotency key.
    pub command_id: String,
    /// The tracing key.
    pub correlation_id: String,
    /// `accepted`, `refused`, `still-parked` or `not-delivered`.
    pub outcome: RedriveOutcome,
    /// The reply: the accepted reply or the problem.
    pub reply: serde_json::Value,
}

/// The outcome of a re-drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedriveOutcome {
    /// Accepted (now, or before: the reply is the stored one). Out of the queue.
    Accepted,
    /// Refused with a 4xx (the rules or the aggregate's state changed). Out of the queue.
    Refused,
    /// Failed again (5xx); still parked.
    StillParked,
    /// No BL service answered; still parked.
    NotDelivered,
}

/// Runs `operation` on the buckets and topic of the settings' namespace, writing its
/// results to `out`.
pub async fn run(settings: &Settings, operation: Operation, out: &mut impl Write) -> Result<()> {
    let names = settings.common.names();
    let client = nats::connect(&settings.common.nats_url, "ackgate-bl-ops").await?;
    // The buckets only: an operator command produces nothing, so it needs no producer.
    let stores = open_buckets(settings, &names, client.clone()).await?;
    let failed = |e: &dyn std::fmt::Display| Error::Operation(e.to_string());
    match operation {
        Operation::Dlq(DlqCommand::List) => {
            for (key, parked) in stores.dlq.list().await.map_err(|e| failed(&e))? {
                write_line(out, &summary(&key, &parked))?;
            }
        }
        Operation::Dlq(DlqCommand::Show { id }) => {
            for (key, parked) in select(&stores.dlq, &[id], false).await? {
                write_line(out, &serde_json::json!({ "key": key, "parked": parked }))?;
            }
        }
        Operation::Dlq(DlqCommand::Redrive {
            ids,
            all,
            timeout_ms,
        }) => {
            for (_, parked) in select(&stores.dlq, &ids, all).await? {
                write_line(out, &redrive(&client, &parked.resend(), timeout_ms).await)?;
            }
        }
        Operation::Ledger(LedgerCommand::Show {
            command,
            command_id,
        }) => {
            let key = ledger_key(&command, &command_id);
            let entry = stores.ledger.get(&key).await.map_err(|e| failed(&e))?;
            write_line(out, &serde_json::json!({ "key": key, "entry": entry }))?;
        }
        Operation::Ledger(LedgerCommand::Rebuild) => {
            let bootstrap = &settings.kafka.kafka_bootstrap;
            let retention = settings.ledger_retention;
            let catalog = settings.common.catalog().map_err(|e| failed(&e))?;
            let report = rebuild::rebuild(bootstrap, &names, &catalog, retention, &stores).await?;
            write_line(out, &report)?;
        }
    }
    client.flush().await.map_err(|e| failed(&e))?;
    Ok(())
}

fn summary(key: &str, parked: &ParkedCommand) -> serde_json::Value {
    serde_json::json!({
        "key": key,
        "commandType": parked.command_type,
        "commandId": parked.command_id,
        "correlationId": parked.correlation_id,
        "aggregateId": parked.aggregate_id,
        "code": parked.code,
        "attempts": parked.attempts,
        "firstParkedAt": parked.first_parked_at.to_string(),
        "reason": parked.reason,
    })
}

/// The parked commands named by `ids` (or all), oldest first.
async fn select(
    dlq: &crate::dlq::CommandDlq,
    ids: &[String],
    all: bool,
) -> Result<Vec<(String, ParkedCommand)>> {
    let parked = dlq
        .list()
        .await
        .map_err(|e| Error::Operation(e.to_string()))?;
    Ok(parked
        .into_iter()
        .filter(|(key, p)| {
            all || ids
                .iter()
                .any(|id| [key, &p.command_id, &p.correlation_id].contains(&id))
        })
        .collect())
}

/// Sends one command again with its original ids and reports its answer.
pub async fn redrive(
    client: &async_nats::Client,
    parked: &Resend,
    timeout: Duration,
) -> RedriveReport {
    let mut headers = HeaderMap::new();
    headers.insert(message::COMMAND_ID, parked.command_id.as_str());
    headers.insert(message::CORRELATION_ID, parked.correlation_id.as_str());
    headers.insert(message::REDRIVE, "true");
    if let Some(traceparent) = &parked.traceparent {
        headers.insert(message::TRACEPARENT, traceparent.as_str());
    }
    let body = match serde_json::to_vec(&parked.body) {
        Ok(body) => body,
        Err(e) => {
            let why = serde_json::json!(format!("the parked command does not serialize: {e}"));
            return report(parked, RedriveOutcome::NotDelivered, why);
        }
    };
    let request = Request::new()
        .headers(headers)
        .payload(body.into())
        .timeout(Some(timeout));
    let answer = client.send_request(parked.subject.clone(), request).await;
    let (outcome, reply) = match answer {
        Ok(reply) => classify(&reply),
        Err(e) => {
            let why = match e.kind() {
                RequestErrorKind::NoResponders => "no BL service is listening",
                RequestErrorKind::TimedOut => "no answer in time",
                _ => "the request could not be sent",
            };
            (RedriveOutcome::NotDelivered, serde_json::json!(why))
        }
    };
    report(parked, outcome, reply)
}

fn report(parked: &Resend, outcome: RedriveOutcome, reply: serde_json::Value) -> RedriveReport {
    tracing::info!(command_id = %parked.command_id, correlation_id = %parked.correlation_id, ?outcome, "re-driven");
    RedriveReport {
        command_id: parked.command_id.clone(),
        correlation_id: parked.correlation_id.clone(),
        outcome,
        reply,
    }
}

fn classify(reply: &async_nats::Message) -> (RedriveOutcome, serde_json::Value) {
    let body = serde_json::from_slice(&reply.payload).unwrap_or(serde_json::Value::Null);
    let Some(problem) = nats::refusal(reply) else {
        return (RedriveOutcome::Accepted, body);
    };
    let status = problem.map_or(ErrorCode::Internal.status(), |p| p.status);
    let outcome = if status < 500 {
        RedriveOutcome::Refused
    } else {
        RedriveOutcome::StillParked
    };
    (outcome, body)
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(|e| Error::Operation(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

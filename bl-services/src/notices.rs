//! Fire-and-forget notices to the command-status read model: "accepted" (so a command shows
//! before its event is projected) and "parked" (so support staff see a dead-lettered command).
//! Kafka and the dead-letter queue are the records of truth; a lost notice only delays what
//! the status shows.

use std::sync::Arc;

use async_nats::Subject;
use contracts::{
    CommandAccepted, ErrorCode, Names,
    status::{CommandAcceptedNotice, CommandParkedNotice},
};
use time::OffsetDateTime;

use crate::pipeline::CommandContext;

/// Publishes notices on core NATS, on the notice subjects of one namespace.
#[derive(Clone)]
pub struct Notifier {
    client: async_nats::Client,
    names: Arc<Names>,
}

impl Notifier {
    /// Publishes with `client`, on the subjects in `names`.
    pub fn new(client: async_nats::Client, names: Arc<Names>) -> Self {
        Self { client, names }
    }

    /// Kafka acknowledged the command's event.
    pub async fn accepted(
        &self,
        reply: &CommandAccepted,
        command_type: &str,
        aggregate_id: &str,
        accepted_at: OffsetDateTime,
    ) {
        let notice = CommandAcceptedNotice {
            reply: reply.clone(),
            command_type: command_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            accepted_at,
        };
        self.publish(&self.names.command_accepted, &notice).await;
    }

    /// The command was parked in the dead-letter queue.
    pub async fn parked(
        &self,
        ctx: &CommandContext,
        command_type: &str,
        aggregate_id: &str,
        code: ErrorCode,
        parked_at: OffsetDateTime,
    ) {
        let notice = CommandParkedNotice {
            correlation_id: ctx.correlation_id.clone(),
            command_id: ctx.command_id.clone(),
            command_type: command_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            code,
            parked_at,
        };
        self.publish(&self.names.command_parked, &notice).await;
    }

    async fn publish(&self, subject: &str, notice: &impl serde::Serialize) {
        let Ok(body) = serde_json::to_vec(notice) else {
            return;
        };
        let sent = self.client.publish(Subject::from(subject), body.into());
        if let Err(e) = sent.await {
            tracing::debug!(subject, error = %e, "notice not published");
        }
    }
}

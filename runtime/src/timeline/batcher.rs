//! Notices leave in batches: a busy service gathers what its requests published over a few
//! milliseconds into one message, so NATS and the JetStream stream handle one message per
//! batch rather than one per request (the timeline cost Option B 39 % of its throughput
//! when each request was a message of its own; BENCHMARKS.md). The queue is bounded and a
//! full one drops notices: the accept path never waits for the timeline.

use std::time::Duration;

use contracts::timeline::{TimelineBatch, TimelineNotice};
use tokio::sync::mpsc;

/// Most notices in one message (a notice is well under 2 KB; NATS takes 1 MB by default).
const BATCH_MAX: usize = 200;
/// Longest a notice waits for others to share its message.
const LINGER: Duration = Duration::from_millis(20);
/// Notices waiting to be published before new ones are dropped.
const QUEUE: usize = 20_000;

/// The sending side; the batches are published by a task of their own.
pub(super) struct Batcher {
    notices: mpsc::Sender<TimelineNotice>,
}

impl Batcher {
    /// Starts the task publishing on `subject` with `client`.
    pub(super) fn spawn(client: async_nats::Client, subject: async_nats::Subject) -> Self {
        let (notices, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(publish_batches(client, subject, waiting));
        Self { notices }
    }

    /// Queues `notice`, or drops it when the queue is full.
    pub(super) fn send(&self, notice: TimelineNotice) {
        if self.notices.try_send(notice).is_err() {
            tracing::debug!("timeline queue full; notice dropped");
        }
    }
}

async fn publish_batches(
    client: async_nats::Client,
    subject: async_nats::Subject,
    mut waiting: mpsc::Receiver<TimelineNotice>,
) {
    let mut notices = Vec::with_capacity(BATCH_MAX);
    while waiting.recv_many(&mut notices, BATCH_MAX).await > 0 {
        fill_for_a_moment(&mut waiting, &mut notices).await;
        let batch = TimelineBatch {
            notices: std::mem::take(&mut notices),
        };
        match serde_json::to_vec(&batch) {
            Ok(body) => {
                if let Err(e) = client.publish(subject.clone(), body.into()).await {
                    tracing::debug!(error = %e, "timeline batch not published");
                }
            }
            Err(e) => tracing::warn!(error = %e, "timeline batch does not serialize"),
        }
    }
}

/// Takes more notices until the batch is full or [`LINGER`] has passed.
async fn fill_for_a_moment(
    waiting: &mut mpsc::Receiver<TimelineNotice>,
    notices: &mut Vec<TimelineNotice>,
) {
    let deadline = tokio::time::sleep(LINGER);
    tokio::pin!(deadline);
    while notices.len() < BATCH_MAX {
        tokio::select! {
            () = &mut deadline => return,
            taken = waiting.recv_many(notices, BATCH_MAX - notices.len()) => {
                if taken == 0 {
                    return;
                }
            }
        }
    }
}

//! A bounded graceful stop. After SIGTERM a service drains: it finishes in-flight work,
//! commits offsets, flushes its clients. With its brokers gone some of that never finishes,
//! and an orchestrator would have to SIGKILL a process that should have exited on its own;
//! so the drain gets a grace period, and past it the process gives up and exits, naming
//! what was still running.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

/// The named parts of a service still running, so that a stop which runs out of grace can
/// say what it gave up on. Clones share one list.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    running: Arc<Mutex<Vec<&'static str>>>,
}

impl Activity {
    /// `part`, listed under `name` from now until it finishes or is dropped.
    pub fn track<F: Future>(
        &self,
        name: &'static str,
        part: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        let listed = self.enter(name);
        async move {
            let output = part.await;
            drop(listed);
            output
        }
    }

    /// Lists `name` until the returned guard is dropped.
    pub fn enter(&self, name: &'static str) -> Entered {
        self.lock().push(name);
        Entered {
            activity: self.clone(),
            name,
        }
    }

    /// What is running now, in the order it started.
    pub fn running(&self) -> Vec<&'static str> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A part listed in an [`Activity`]; dropping it takes the part off the list.
#[derive(Debug)]
pub struct Entered {
    activity: Activity,
    name: &'static str,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut running = self.activity.lock();
        if let Some(at) = running.iter().position(|name| *name == self.name) {
            running.remove(at);
        }
    }
}

/// Runs a service until it ends by itself or `shutdown` is cancelled; then gives its
/// graceful stop at most `grace`. Past that it logs a warning naming what `activity` still
/// lists, abandons the rest and returns `Ok`, so the process exits.
///
/// `run` gets a task of its own, so that a part that blocks its thread cannot also block
/// the clock that bounds it. A panic in `run` is resumed here.
pub async fn run_until_stopped<E: Send + 'static>(
    run: impl Future<Output = Result<(), E>> + Send + 'static,
    shutdown: CancellationToken,
    grace: Duration,
    activity: Activity,
) -> Result<(), E> {
    let mut task = tokio::spawn(run);
    tokio::select! {
        ended = &mut task => return joined(ended),
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(grace, &mut task).await {
        Ok(ended) => joined(ended),
        Err(_) => {
            task.abort();
            tracing::warn!(
                grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                still_running = ?activity.running(),
                "graceful stop did not finish within the grace period; exiting without it"
            );
            Ok(())
        }
    }
}

fn joined<E>(ended: Result<Result<(), E>, JoinError>) -> Result<(), E> {
    match ended {
        Ok(outcome) => outcome,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only `run_until_stopped` aborts the task, and then it does not join it.
            Err(_) => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn a_run_that_ends_by_itself_returns_its_outcome() {
        let run = async { Err::<(), _>("broken") };
        let outcome = run_until_stopped(run, CancellationToken::new(), GRACE, Activity::default());
        assert_eq!(outcome.await, Err("broken"));
    }

    #[tokio::test]
    async fn a_stop_within_the_grace_returns_the_outcome_of_the_stop() {
        let shutdown = CancellationToken::new();
        let stopping = shutdown.clone();
        let run = async move {
            stopping.cancelled().await;
            tokio::time::sleep(GRACE / 4).await;
            Err::<(), _>("stopped with an error")
        };
        shutdown.cancel();
        let outcome = run_until_stopped(run, shutdown, GRACE, Activity::default()).await;
        assert_eq!(outcome, Err("stopped with an error"));
    }

    #[tokio::test]
    async fn a_stop_that_hangs_is_abandoned_after_the_grace() {
        let (shutdown, activity) = (CancellationToken::new(), Activity::default());
        let hung = activity.track("offset commit", std::future::pending::<()>());
        assert_eq!(activity.running(), ["offset commit"]);
        let run = async move {
            hung.await;
            Ok::<(), ()>(())
        };
        shutdown.cancel();
        let started = std::time::Instant::now();
        let outcome = run_until_stopped(run, shutdown, GRACE, activity.clone()).await;
        assert_eq!(outcome, Ok(()));
        assert!(
            started.elapsed() < GRACE * 10,
            "took {:?}",
            started.elapsed()
        );
        tokio::task::yield_now().await; // the aborted task drops its parts
    }

    #[tokio::test]
    async fn activity_lists_parts_until_they_end_or_are_dropped() {
        let activity = Activity::default();
        let consumer = activity.enter("kafka consumer");
        let flush = activity.track("nats flush", async {});
        assert_eq!(activity.running(), ["kafka consumer", "nats flush"]);
        flush.await;
        assert_eq!(activity.running(), ["kafka consumer"]);
        drop(consumer);
        assert!(activity.running().is_empty());
    }

    #[tokio::test]
    #[should_panic(expected = "bug")]
    async fn a_panic_in_the_run_is_not_swallowed() {
        async fn buggy() -> Result<(), ()> {
            panic!("bug")
        }
        let _ = run_until_stopped(
            buggy(),
            CancellationToken::new(),
            GRACE,
            Activity::default(),
        )
        .await;
    }
}

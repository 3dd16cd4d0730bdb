//! Work that must give way to the accept path when the cores are busy: it runs on a thread
//! of its own, at a lower scheduling priority, on a single-threaded runtime of its own, so
//! under saturation it lags instead of slowing commands (the issue's "the timeline never
//! blocks or slows the accept path"). Only for work whose input waits durably while it lags:
//! the timeline's notices wait in their JetStream stream.
#![allow(unsafe_code)]

use std::future::Future;

/// How much lower than the services' other threads (a Linux nice value: 0 normal, 19
/// lowest). At 10 a busy thread gets about a tenth of the share of a normal one.
const NICENESS: libc::c_int = 10;

/// Runs `work` on a low-priority thread named `name`; the future returned resolves when the
/// work has ended (await it where the work would have been awaited, for a graceful stop).
pub fn run_at_low_priority<F>(name: &str, work: F) -> impl Future<Output = ()> + use<F>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_threads_priority();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(work),
                Err(e) => {
                    tracing::error!(error = %e, "no runtime for low-priority work; it does not run")
                }
            }
            let _ = done.send(());
        });
    if let Err(e) = &spawned {
        tracing::error!(error = %e, "no thread for low-priority work; it does not run");
    }
    async move {
        if spawned.is_ok() {
            let _ = finished.await;
        }
    }
}

fn lower_this_threads_priority() {
    // SAFETY: setpriority reads its three integer arguments and nothing else; on Linux,
    // `PRIO_PROCESS` with id 0 names the calling thread alone.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS) } != 0;
    if failed {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "low-priority work keeps the normal priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn niceness_of_this_thread() -> libc::c_int {
        // SAFETY: as above; getpriority only reads its arguments.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[tokio::test]
    async fn the_work_runs_to_its_end_at_a_lower_priority() {
        let (seen, saw) = tokio::sync::oneshot::channel();
        let normal = niceness_of_this_thread();
        run_at_low_priority("test-background", async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let _ = seen.send(niceness_of_this_thread());
        })
        .await;
        let niceness = saw.await.expect("the work ran");
        assert_eq!(niceness, (normal + NICENESS).min(19));
    }
}

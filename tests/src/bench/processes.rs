//! What each process of the stack costs under load: its peak resident memory, and the CPU
//! time it spent, which divided by the commands accepted says where a command's time goes.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// One process over one load run.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessUse {
    /// Largest `VmRSS` seen (MiB).
    pub peak_rss_mib: f64,
    /// User plus system CPU time spent during the run (ms, all threads).
    pub cpu_ms: f64,
}

/// Samples each `(name, pid)` every `every` until `stop`: the peak resident set, and the CPU
/// time from the first sample to the last.
pub async fn sample(
    processes: Vec<(String, u32)>,
    every: Duration,
    stop: CancellationToken,
) -> BTreeMap<String, ProcessUse> {
    let ticks_per_ms = clock_ticks_per_second() / 1000.0;
    let started: BTreeMap<&str, u64> = processes
        .iter()
        .filter_map(|(name, pid)| Some((name.as_str(), cpu_ticks(*pid)?)))
        .collect();
    let mut uses: BTreeMap<String, ProcessUse> = BTreeMap::new();
    loop {
        let stopping = stop.is_cancelled();
        for (name, pid) in &processes {
            let entry = uses.entry(name.clone()).or_default();
            if let Some(kib) = rss_kib(*pid) {
                entry.peak_rss_mib = entry.peak_rss_mib.max(kib as f64 / 1024.0);
            }
            if let (Some(now), Some(then)) = (cpu_ticks(*pid), started.get(name.as_str())) {
                entry.cpu_ms = now.saturating_sub(*then) as f64 / ticks_per_ms;
            }
        }
        if stopping {
            return uses;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// `VmRSS` of a process, in KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` of a process and all its threads, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space-separated.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `CLK_TCK`, from `getconf` (100 on every mainstream Linux build).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn this_process_uses_memory_and_cpu() {
        let stop = CancellationToken::new();
        let me = vec![("bench".to_owned(), std::process::id())];
        let sampling = tokio::spawn(sample(me, Duration::from_millis(10), stop.clone()));
        // Let the sampler take its first reading, then spend CPU on another thread.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::task::spawn_blocking(|| {
            let spin = std::time::Instant::now();
            let mut x = 0_u64;
            while spin.elapsed() < Duration::from_millis(200) {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            std::hint::black_box(x);
        })
        .await
        .expect("spins");
        stop.cancel();
        let uses = sampling.await.expect("sampler");
        let bench = &uses["bench"];
        assert!(bench.peak_rss_mib > 0.0);
        assert!(bench.cpu_ms >= 100.0, "{bench:?}");
    }
}

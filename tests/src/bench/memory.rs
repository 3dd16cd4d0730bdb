//! Resident memory of the service processes, sampled while the load runs.

use std::{collections::BTreeMap, time::Duration};

use tokio_util::sync::CancellationToken;

/// Samples the resident set (`VmRSS`) of each `(name, pid)` every `every` until `stop`,
/// and returns the largest seen per process, in MiB.
pub async fn peak_rss(
    processes: Vec<(String, u32)>,
    every: Duration,
    stop: CancellationToken,
) -> BTreeMap<String, f64> {
    let mut peaks = BTreeMap::new();
    loop {
        for (name, pid) in &processes {
            if let Some(kib) = rss_kib(*pid) {
                let peak = peaks.entry(name.clone()).or_insert(0.0_f64);
                *peak = peak.max(kib as f64 / 1024.0);
            }
        }
        tokio::select! {
            () = stop.cancelled() => return peaks,
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

//! The machine a run was measured on, for the report: figures mean little without it.

use serde::Serialize;

/// CPU, cores, memory and kernel (Linux `/proc`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// `model name` of the first CPU.
    pub cpu: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// Total memory (GiB).
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = field(&cpuinfo, "model name")
            .unwrap_or("unknown")
            .to_owned();
        let meminfo = read("/proc/meminfo");
        let memory_kib: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: memory_kib / (1024.0 * 1024.0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        }
    }

    /// One line, e.g. `AMD EPYC 7B13, 2 cores, 23.4 GiB, Linux 6.1.0`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} cores, {:.1} GiB, Linux {}",
            self.cpu, self.cores, self.memory_gib, self.kernel
        )
    }
}

/// The value of the first `name: value` line.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|line| line.split(':').next().is_some_and(|k| k.trim() == name))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim())
}

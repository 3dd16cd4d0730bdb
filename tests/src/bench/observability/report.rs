//! The observability benchmark's report: every round, the mean of each setting, and the cost
//! of turning everything on, as JSON and as Markdown tables for BENCHMARKS.md.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{FixedRateRun, Round, Setting};
use crate::bench::{machine::Machine, open_loop::LoadResult, processes::ProcessUse};

/// Everything one observability run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservabilityReport {
    /// Where it ran.
    pub machine: Machine,
    /// The round run before the counted ones to warm the stack up, if any: reported, not
    /// counted.
    pub warm_up_round: Option<Round>,
    /// Every counted round, in the order run.
    pub rounds: Vec<Round>,
    /// The means of the rounds with everything off.
    pub off: SettingMeans,
    /// The means of the rounds with everything on.
    pub on: SettingMeans,
}

/// The mean of one setting's rounds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingMeans {
    /// Rounds averaged.
    pub rounds: usize,
    /// Sustained accepted/s (rounds whose sustained run held).
    pub accepted_per_second: Option<f64>,
    /// Latency at each fixed rate, in order.
    pub latency: Vec<RateMeans>,
}

/// The mean latency and CPU of one fixed rate.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateMeans {
    /// Offered requests/s.
    pub rate: f64,
    /// Median acceptance latency (ms).
    pub p50: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// CPU time each process spent per accepted command (µs).
    pub cpu_per_command_us: BTreeMap<String, f64>,
}

impl ObservabilityReport {
    /// The report of `rounds` (after `warm_up_round`, if one ran), with each setting's means.
    pub fn new(warm_up_round: Option<Round>, rounds: Vec<Round>) -> Self {
        let off = SettingMeans::of(&rounds, Setting::Off);
        let on = SettingMeans::of(&rounds, Setting::On);
        Self {
            machine: Machine::this(),
            warm_up_round,
            rounds,
            off,
            on,
        }
    }

    /// What turning everything on cost in accepted/s (%; positive is fewer with it on).
    pub fn accepted_cost_pct(&self) -> Option<f64> {
        let (off, on) = (self.off.accepted_per_second?, self.on.accepted_per_second?);
        Some((off - on) / off * 100.0)
    }

    /// The report as Markdown tables, for BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut out = format!("Machine: {}\n\n", self.machine.describe());
        out.push_str(&self.rounds_table());
        out.push('\n');
        out.push_str(&self.means_table());
        out.push('\n');
        out.push_str(&self.cpu_table());
        out
    }

    fn rates(&self) -> Vec<f64> {
        self.off.latency.iter().map(|r| r.rate).collect()
    }

    fn rounds_table(&self) -> String {
        let rates = self.rates();
        let mut out = "| round | setting | sustained accepted/s |".to_owned();
        for rate in &rates {
            out.push_str(&format!(" p50 / p99 at {rate:.0}/s (ms) |"));
        }
        out.push_str(" `/metrics` | span bytes at the collector | timeline notices |\n|");
        out.push_str(&" --- |".repeat(rates.len() + 6));
        for round in self.warm_up_round.iter().chain(&self.rounds) {
            let max = round.sustained.as_ref().map_or_else(
                || "none held".to_owned(),
                |s| format!("{:.0}", s.achieved_rate),
            );
            let number = match round.number {
                0 => "warm-up, not counted".to_owned(),
                n => n.to_string(),
            };
            out.push_str(&format!(
                "\n| {number} | {} | {max} |",
                round.setting.name()
            ));
            for fixed in &round.latency {
                out.push_str(&format!(" {} |", p50_p99(&fixed.run)));
            }
            let e = &round.evidence;
            let metrics = if e.metrics_served { "200" } else { "404" };
            out.push_str(&format!(
                " {metrics} | {} | {} |",
                e.trace_bytes, e.timeline_notices
            ));
        }
        out + "\n"
    }

    fn means_table(&self) -> String {
        let mut out = format!(
            "| measure | off (mean of {}) | on (mean of {}) | cost of on |\n| --- | --- | --- | --- |\n",
            self.off.rounds, self.on.rounds
        );
        let (off, on) = (self.off.accepted_per_second, self.on.accepted_per_second);
        out.push_str(&format!(
            "| sustained accepted/s | {} | {} | {} |\n",
            figure(off),
            figure(on),
            self.accepted_cost_pct()
                .map_or_else(String::new, |c| format!("{c:.1} % fewer"))
        ));
        for (off, on) in self.off.latency.iter().zip(&self.on.latency) {
            for (name, a, b) in [("p50", off.p50, on.p50), ("p99", off.p99, on.p99)] {
                out.push_str(&format!(
                    "| {name} at {:.0}/s (ms) | {a:.1} | {b:.1} | {:+.1} % |\n",
                    off.rate,
                    (b - a) / a * 100.0
                ));
            }
        }
        out
    }

    fn cpu_table(&self) -> String {
        let (Some(off), Some(on)) = (self.off.latency.last(), self.on.latency.last()) else {
            return String::new();
        };
        let mut out = format!(
            "| process: CPU per command at {:.0}/s (µs, mean) | off | on | on − off |\n| --- | --- | --- | --- |\n",
            off.rate
        );
        let (mut total_off, mut total_on) = (0.0, 0.0);
        for (name, a) in &off.cpu_per_command_us {
            let b = on.cpu_per_command_us.get(name).copied().unwrap_or_default();
            (total_off, total_on) = (total_off + a, total_on + b);
            out.push_str(&format!("| {name} | {a:.0} | {b:.0} | {:+.0} |\n", b - a));
        }
        out.push_str(&format!(
            "| all processes | {total_off:.0} | {total_on:.0} | {:+.0} ({:+.1} %) |\n",
            total_on - total_off,
            (total_on - total_off) / total_off * 100.0
        ));
        out
    }
}

impl SettingMeans {
    fn of(rounds: &[Round], setting: Setting) -> Self {
        let rounds: Vec<&Round> = rounds.iter().filter(|r| r.setting == setting).collect();
        let accepted = mean(
            rounds
                .iter()
                .filter_map(|r| Some(r.sustained.as_ref()?.achieved_rate)),
        );
        let fixed_rates = rounds.first().map_or(0, |r| r.latency.len());
        let latency = (0..fixed_rates)
            .map(|i| RateMeans::of(rounds.iter().filter_map(|r| r.latency.get(i))))
            .collect();
        Self {
            rounds: rounds.len(),
            accepted_per_second: accepted,
            latency,
        }
    }
}

impl RateMeans {
    fn of<'a>(runs: impl Iterator<Item = &'a FixedRateRun> + Clone) -> Self {
        let rate = runs.clone().next().map_or(0.0, |r| r.run.offered_rate);
        let of = |f: fn(&LoadResult) -> f64| mean(runs.clone().map(|r| f(&r.run)));
        let mut per_process: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for run in runs.clone() {
            for (name, usage) in &run.processes {
                let per_command = cpu_per_command_us(usage, run.run.ok);
                per_process
                    .entry(name.clone())
                    .or_default()
                    .push(per_command);
            }
        }
        Self {
            rate,
            p50: of(|r| r.latency.p50).unwrap_or_default(),
            p99: of(|r| r.latency.p99).unwrap_or_default(),
            cpu_per_command_us: per_process
                .into_iter()
                .map(|(name, values)| (name, mean(values.into_iter()).unwrap_or_default()))
                .collect(),
        }
    }
}

fn cpu_per_command_us(usage: &ProcessUse, commands: u64) -> f64 {
    usage.cpu_ms * 1000.0 / commands.max(1) as f64
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0_u32), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / f64::from(count))
}

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "none held".to_owned(), |v| format!("{v:.0}"))
}

fn p50_p99(run: &LoadResult) -> String {
    let errors = if run.errors > 0 {
        format!(" ({} errors)", run.errors)
    } else {
        String::new()
    };
    format!("{:.1} / {:.1}{errors}", run.latency.p50, run.latency.p99)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_of_nothing_is_none() {
        assert_eq!(mean(std::iter::empty()), None);
        assert_eq!(mean([1.0, 2.0, 6.0].into_iter()), Some(3.0));
    }

    #[test]
    fn cpu_per_command_never_divides_by_zero() {
        let usage = ProcessUse {
            peak_rss_mib: 1.0,
            cpu_ms: 2.0,
        };
        assert_eq!(cpu_per_command_us(&usage, 4), 500.0);
        assert_eq!(cpu_per_command_us(&usage, 0), 2000.0);
    }
}

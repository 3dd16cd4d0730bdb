//! Acceptance stalls: how long the clients went without a 202 to a new command, between any
//! two and after each kill. Duplicates are left out: the ledger answers them without Kafka,
//! so they would hide a stall of the event store.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

use super::chaos::Kill;

/// How far after a kill its stall is looked for (or until the next kill, if sooner).
pub const WINDOW: Duration = Duration::from_secs(30);

/// A distribution of gaps, in milliseconds (nearest-rank percentiles).
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gaps {
    /// How many gaps.
    pub count: usize,
    /// The median.
    pub p50_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The longest.
    pub max_ms: f64,
}

impl Gaps {
    fn of(mut gaps: Vec<f64>) -> Self {
        gaps.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let at = (p * gaps.len() as f64).ceil() as usize;
            gaps.get(at.saturating_sub(1)).copied().unwrap_or_default()
        };
        Self {
            count: gaps.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        }
    }
}

/// The stalls of a run.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stalls {
    /// 202s to new commands during the chaos.
    pub acceptances: usize,
    /// Every gap between two consecutive 202s during the chaos.
    pub between_202s: Gaps,
    /// For each Kafka kill, the longest gap between 202s in its window.
    pub after_kafka_kills: Gaps,
    /// The same per kind of kill (`kafka-partition-leader`, `kafka-controller`, `nats`, ...).
    pub after_kills: BTreeMap<String, Gaps>,
    /// Kills whose stall had not ended when the clients stopped, left out of the above.
    pub unfinished: usize,
}

/// Measures the stalls, given the time of every 202 and when the clients stopped (both since
/// the chaos began), and sets each kill's stall. Stalls the clients did not see end are left
/// out of the figures.
pub fn measure(mut accepted: Vec<Duration>, end: Duration, kills: &mut [Kill]) -> Stalls {
    accepted.sort();
    let gaps = accepted.windows(2).map(|w| millis(w[1] - w[0])).collect();
    let starts: Vec<Duration> = kills
        .iter()
        .map(|k| Duration::from_secs_f64(k.at_secs))
        .collect();
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, kill) in kills.iter_mut().enumerate() {
        let next = starts.get(i + 1).copied().unwrap_or(end);
        let until = (starts[i] + WINDOW).min(next).min(end);
        (kill.stall_ms, kill.stall_unfinished) = longest_gap(&accepted, starts[i], until, end);
        if !kill.stall_unfinished {
            by_kind.entry(kill.kind()).or_default().push(kill.stall_ms);
        }
    }
    let kafka = kills
        .iter()
        .filter(|k| k.kafka.is_some() && !k.stall_unfinished)
        .map(|k| k.stall_ms);
    Stalls {
        unfinished: kills.iter().filter(|k| k.stall_unfinished).count(),
        acceptances: accepted.len(),
        between_202s: Gaps::of(gaps),
        after_kafka_kills: Gaps::of(kafka.collect()),
        after_kills: by_kind
            .into_iter()
            .map(|(kind, stalls)| (kind, Gaps::of(stalls)))
            .collect(),
    }
}

/// The longest gap between consecutive 202s within `[from, until]`: the one spanning `from`
/// counts from the 202 before it (from `from` if there was none), one running past `until`
/// only up to `until` (the next kill's window has the rest). `true` when the gap was still open
/// when the clients stopped at `end`: its length is then unknown.
fn longest_gap(
    accepted: &[Duration],
    from: Duration,
    until: Duration,
    end: Duration,
) -> (f64, bool) {
    let first_after = accepted.partition_point(|t| *t <= from);
    let mut previous = first_after.checked_sub(1).map_or(from, |i| accepted[i]);
    let mut longest = Duration::ZERO;
    for at in &accepted[first_after..] {
        if previous >= until {
            return (millis(longest), false);
        }
        longest = longest.max((*at).min(until) - previous);
        previous = *at;
    }
    // No 202 came after `previous`.
    let open = previous < until;
    if open {
        longest = longest.max(until - previous);
    }
    (millis(longest), open && until >= end)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn secs(values: &[f64]) -> Vec<Duration> {
        values.iter().map(|s| Duration::from_secs_f64(*s)).collect()
    }

    #[test]
    fn a_stall_spans_the_kill_and_ends_with_the_next_202() {
        let accepted = secs(&[1.0, 2.0, 2.5, 7.5, 8.0, 9.5, 10.5, 20.0]);
        let gap = longest_gap(&accepted, at(3.0), at(10.0), at(30.0));
        assert_eq!(gap, (5000.0, false));
    }

    #[test]
    fn a_gap_that_runs_past_the_window_counts_up_to_its_end() {
        let accepted = secs(&[1.0, 4.0, 20.0]);
        let gap = longest_gap(&accepted, at(3.5), at(8.0), at(30.0));
        assert_eq!(gap, (4000.0, false));
    }

    #[test]
    fn without_a_202_before_the_kill_the_stall_counts_from_the_kill() {
        let accepted = secs(&[5.0, 5.5, 9.0, 12.0]);
        let gap = longest_gap(&accepted, at(1.0), at(10.0), at(30.0));
        assert_eq!(gap, (4000.0, false));
    }

    #[test]
    fn a_stall_still_open_when_the_clients_stop_is_unfinished() {
        let accepted = secs(&[1.0, 2.0]);
        assert_eq!(
            longest_gap(&accepted, at(3.0), at(12.0), at(12.0)),
            (10000.0, true)
        );
        assert_eq!(
            longest_gap(&accepted, at(3.0), at(8.0), at(12.0)),
            (6000.0, false)
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let gaps = Gaps::of((1..=200).map(f64::from).collect());
        assert_eq!(
            (gaps.p50_ms, gaps.p99_ms, gaps.max_ms),
            (100.0, 198.0, 200.0)
        );
    }
}

//! Open-loop load: requests start on a fixed schedule whatever the answers do, and each
//! latency is measured from the request's *scheduled* start. A slow answer therefore shows
//! in the histogram instead of quietly lowering the offered rate (no coordinated omission).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Reads a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// What one open-loop run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadResult {
    /// Requests per second offered.
    pub offered_rate: f64,
    /// Successful answers per second over the run (until the last answer).
    pub achieved_rate: f64,
    /// Requests sent.
    pub sent: u64,
    /// Successful answers.
    pub ok: u64,
    /// Failed requests (error answers, timeouts, transport errors).
    pub errors: u64,
    /// Latency of successful answers, from the scheduled start.
    pub latency: Percentiles,
    /// The first few distinct errors, for the report.
    pub error_samples: Vec<String>,
    #[serde(skip)]
    histogram: Histogram<u64>,
}

impl LoadResult {
    /// The raw histogram (microseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    samples: Vec<String>,
}

/// Offers `rate` requests per second for `duration`. `request(n)` performs request number
/// `n` and says whether it succeeded. Requests still running `grace` after the schedule
/// ends count as errors.
pub async fn run<F, Fut>(rate: f64, duration: Duration, grace: Duration, request: F) -> LoadResult
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let histogram = Arc::new(Mutex::new(new_histogram()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let total = (duration.as_secs_f64() * rate).round() as u64;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled).await;
        let (histogram, tally) = (Arc::clone(&histogram), Arc::clone(&tally));
        let answer = request(n);
        tasks.spawn(async move {
            let outcome = answer.await;
            let micros = u64::try_from(scheduled.elapsed().as_micros()).unwrap_or(u64::MAX);
            record(&histogram, &tally, outcome, micros);
        });
        while tasks.try_join_next().is_some() {}
    }
    let deadline = Instant::now() + grace;
    while !tasks.is_empty() {
        if tokio::time::timeout_at(deadline, tasks.join_next())
            .await
            .is_err()
        {
            break;
        }
    }
    let unfinished = tasks.len() as u64;
    tasks.abort_all();
    let elapsed = start.elapsed().as_secs_f64();
    let histogram = lock(&histogram).clone();
    let tally = std::mem::take(&mut *lock(&tally));
    LoadResult {
        offered_rate: rate,
        achieved_rate: tally.ok as f64 / elapsed.max(f64::EPSILON),
        sent: total,
        ok: tally.ok,
        errors: tally.errors + unfinished,
        latency: Percentiles::of(&histogram),
        error_samples: tally.samples,
        histogram,
    }
}

fn record(
    histogram: &Mutex<Histogram<u64>>,
    tally: &Mutex<Tally>,
    outcome: Result<(), String>,
    micros: u64,
) {
    match outcome {
        Ok(()) => {
            lock(tally).ok += 1;
            let _ = lock(histogram).record(micros.max(1));
        }
        Err(error) => {
            let mut tally = lock(tally);
            tally.errors += 1;
            if tally.samples.len() < 5 && !tally.samples.contains(&error) {
                tally.samples.push(error);
            }
        }
    }
}

/// Microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_answer_counts_from_its_scheduled_start() {
        let stalled = std::sync::atomic::AtomicBool::new(false);
        let stalled = Arc::new(stalled);
        let result = run(100.0, Duration::from_secs(1), Duration::from_secs(5), |n| {
            let stalled = Arc::clone(&stalled);
            async move {
                if n == 10 && !stalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(())
            }
        })
        .await;
        assert_eq!((result.sent, result.ok, result.errors), (100, 100, 0));
        assert!(result.latency.max >= 500.0, "{:?}", result.latency);
        assert!(result.latency.p50 < 1.0, "{:?}", result.latency);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_and_unfinished_requests_are_errors() {
        let result = run(
            10.0,
            Duration::from_secs(1),
            Duration::from_millis(100),
            |n| async move {
                match n {
                    0 => Err("refused".to_owned()),
                    1 => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            },
        )
        .await;
        assert_eq!((result.ok, result.errors), (8, 2));
        assert_eq!(result.error_samples, ["refused"]);
    }
}

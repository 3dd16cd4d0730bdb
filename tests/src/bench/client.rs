//! A client of the edge sending one of two workloads, each command with a unique commandId
//! and badge and a realistic body, where success is a 202 (the event is in Kafka):
//! registrations (`POST /v1/officers`, Option B through the business-logic service) or
//! observations (`POST /v1/observations`, the catalog's Option A command, accepted by the
//! edge itself). The projection lag of a command is the time from its 202 until a
//! read-your-writes query for its position answers.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use contracts::headers::http;
use reqwest::StatusCode;

/// Badges handed out so far in this process: every command of every run is new.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// What a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `RegisterOfficer` (Option B), read back as the officer.
    Registrations,
    /// `RecordObservation` (Option A), read back as the officer's observation list.
    Observations,
}

/// The edge as a client sees it.
#[derive(Clone)]
pub struct Edge {
    http: reqwest::Client,
    url: String,
    run: String,
    workload: Workload,
}

impl Edge {
    /// A client of the edge at `url` sending registrations; `run` (two capitals) makes this
    /// run's ids unique.
    pub fn new(url: &str, run: &str) -> Self {
        Self::sending(url, run, Workload::Registrations)
    }

    /// A client of the edge at `url` sending `workload`.
    pub fn sending(url: &str, run: &str, workload: Workload) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(2048)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            http,
            url: url.to_owned(),
            run: run.to_owned(),
            workload,
        }
    }

    /// Sends one new command of the workload; `Ok` with the event position token and the
    /// badge on a 202.
    pub async fn register(&self) -> Result<(String, String), String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Badges are 1-3 capitals and 3-6 digits: a letter more per million commands.
        let million = char::from(b'A' + u8::try_from((n / 1_000_000) % 26).unwrap_or_default());
        let badge = format!("{}{million}-{:06}", self.run, n % 1_000_000);
        let (path, body) = match self.workload {
            Workload::Registrations => ("/v1/officers", body(&badge, n)),
            Workload::Observations => ("/v1/observations", observation_body(&badge, n)),
        };
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header("idempotency-key", format!("bench-{badge}"))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        if response.status() != StatusCode::ACCEPTED {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(format!(
                "{status}: {}",
                text.chars().take(120).collect::<String>()
            ));
        }
        let position = response
            .headers()
            .get(http::EVENT_POSITION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| "202 without a position".to_owned())?;
        Ok((position, badge))
    }

    /// Sends a command, then asks for what it changed with its position; returns the time
    /// from the 202 to the answer (the projection lag, plus one query round trip).
    pub async fn register_and_read(&self) -> Result<Duration, String> {
        let (position, badge) = self.register().await?;
        let accepted = Instant::now();
        let path = match self.workload {
            Workload::Registrations => format!("/v1/officers/{badge}"),
            Workload::Observations => format!("/v1/officers/{badge}/observations"),
        };
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header(http::MIN_POSITION, &position)
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let problem: serde_json::Value = response.json().await.unwrap_or_default();
            return Err(format!(
                "query: {status} {}",
                problem["code"].as_str().unwrap_or("?")
            ));
        }
        Ok(accepted.elapsed())
    }
}

impl Edge {
    /// Waits (up to [`CATCH_UP_MAX`]) until the projections report no lag, so the next phase
    /// does not pay for the previous one's backlog. Past that the phase starts anyway, and
    /// says so: on the in-memory broker a large backlog drains slowly (see BENCHMARKS.md).
    pub async fn wait_until_caught_up(&self) {
        let started = Instant::now();
        while started.elapsed() < CATCH_UP_MAX {
            let stats = self.http.get(format!("{}/v1/stats", self.url)).send().await;
            if let Ok(response) = stats {
                let lag = response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|s| s["lagRecords"].as_i64());
                if lag == Some(0) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::warn!(
            waited = ?CATCH_UP_MAX,
            "the projections have not caught up; starting the next phase anyway"
        );
    }
}

/// Longest wait for the projections between phases.
pub const CATCH_UP_MAX: Duration = Duration::from_secs(120);

/// A registration body of realistic size (about 200 bytes), varied per command.
pub fn body(badge: &str, n: u64) -> String {
    const FIRST: [&str; 6] = ["Ana", "Bo", "Chidi", "Dana", "Emeka", "Fiona"];
    const LAST: [&str; 6] = [
        "Reyes",
        "Okafor",
        "Lindqvist",
        "Nakamura",
        "Moreau",
        "Kowalski",
    ];
    const RANKS: [&str; 4] = ["officer", "corporal", "sergeant", "lieutenant"];
    let i = usize::try_from(n).unwrap_or_default();
    let (first, last) = (FIRST[i % FIRST.len()], LAST[(i / 7) % LAST.len()]);
    serde_json::json!({
        "badgeNumber": badge,
        "firstName": first,
        "lastName": last,
        "rank": RANKS[i % RANKS.len()],
        "email": format!("{}.{}@example.org", first.to_lowercase(), last.to_lowercase()),
        "hireDate": format!("20{:02}-{:02}-{:02}", 10 + i % 15, 1 + i % 12, 1 + i % 28),
    })
    .to_string()
}

/// An observation body of realistic size (about 250 bytes), varied per command.
pub fn observation_body(badge: &str, n: u64) -> String {
    const PLACES: [&str; 4] = [
        "Market St & 14th St",
        "Forest Park",
        "Union Station",
        "Soulard",
    ];
    let i = usize::try_from(n).unwrap_or_default();
    serde_json::json!({
        "badgeNumber": badge,
        "observedAt": format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60),
        "location": {
            "latitude": 38.6 + (i % 100) as f64 / 1000.0,
            "longitude": -90.2 + (i % 100) as f64 / 1000.0,
            "label": PLACES[i % PLACES.len()],
        },
        "text": format!("Routine patrol note {n}: streetlight out, reported to the city."),
    })
    .to_string()
}

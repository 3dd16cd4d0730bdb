//! The clients: each sends commands through the edge and retries on 5xx or timeout with the
//! same Idempotency-Key, like a well-behaved client, mixing valid registrations, invalid ones,
//! deliberate duplicates, reused keys with another body, badge conflicts and lifecycle
//! changes (rank, suspension, reinstatement) of officers registered earlier. Every answer is
//! logged per commandId for the verification.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use contracts::headers::http;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::stack::officer;

/// What a client meant a request to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// A new, valid command.
    Valid,
    /// A new command that violates the schema.
    Invalid,
    /// An accepted command sent again, same key and body.
    Duplicate,
    /// An accepted command's key with a different body.
    KeyReuse,
    /// A new command for a badge already registered.
    BadgeConflict,
    /// A change to an officer registered earlier (judged on its current state).
    Lifecycle,
}

/// The lifecycle commands the clients send: name, route, and a body for a badge.
const LIFECYCLE: [(&str, &str); 3] = [
    ("ChangeOfficerRank", "/v1/officers/rank-changes"),
    ("SuspendOfficer", "/v1/officers/suspensions"),
    ("ReinstateOfficer", "/v1/officers/reinstatements"),
];

/// Ranks a rank change picks from.
const RANKS: [&str; 4] = ["officer", "sergeant", "lieutenant", "captain"];

/// A lifecycle command on `badge`: its name, route and body.
fn lifecycle(rng: &mut fastrand::Rng, badge: &str) -> (&'static str, &'static str, Value) {
    let (command, path) = LIFECYCLE[rng.usize(..LIFECYCLE.len())];
    let body = match command {
        "ChangeOfficerRank" => {
            serde_json::json!({ "badgeNumber": badge, "rank": RANKS[rng.usize(..RANKS.len())] })
        }
        "SuspendOfficer" => serde_json::json!({ "badgeNumber": badge, "reason": "Fault run." }),
        _ => serde_json::json!({ "badgeNumber": badge }),
    };
    (command, path, body)
}

/// One answer (status 0: no HTTP answer, e.g. a client timeout).
#[derive(Debug, Clone)]
pub struct Answer {
    /// What the request was.
    pub intent: Intent,
    /// HTTP status.
    pub status: u16,
    /// Problem code, for refusals.
    pub code: Option<String>,
    /// Body, byte for byte.
    pub body: Bytes,
}

/// Everything sent and received for one commandId.
#[derive(Debug, Clone)]
pub struct CommandTrace {
    /// Why the command was first sent.
    pub intent: Intent,
    /// The command's name (`RegisterOfficer`, `SuspendOfficer`, ...).
    pub command: &'static str,
    /// Its route.
    pub path: &'static str,
    /// The badge it registers.
    pub badge: String,
    /// The body the key is bound to.
    pub body: Value,
    /// Every answer, in order.
    pub answers: Vec<Answer>,
}

impl CommandTrace {
    /// The answers to requests carrying the command's own body (not key reuses).
    pub fn own_answers(&self) -> impl Iterator<Item = &Answer> {
        self.answers.iter().filter(|a| a.intent != Intent::KeyReuse)
    }

    /// Whether any answer was a 202.
    pub fn accepted(&self) -> bool {
        self.own_answers().any(|a| a.status == 202)
    }

    /// The last answer to the command's own body.
    pub fn last_status(&self) -> Option<u16> {
        self.own_answers().last().map(|a| a.status)
    }
}

/// A command's name and route.
type Target = (&'static str, &'static str);

/// Registrations.
const REGISTER: Target = ("RegisterOfficer", "/v1/officers");

/// The shared log of every command.
#[derive(Default, Clone)]
pub struct CommandLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Default)]
struct LogInner {
    traces: HashMap<String, CommandTrace>,
    accepted: Vec<String>,
    /// When each 202 to a new command arrived, for the acceptance stalls.
    accepted_at: Vec<Instant>,
}

impl CommandLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self, command_id: &str, intent: Intent, target: Target, badge: &str, body: &Value) {
        self.lock()
            .traces
            .entry(command_id.to_owned())
            .or_insert_with(|| CommandTrace {
                intent,
                command: target.0,
                path: target.1,
                badge: badge.to_owned(),
                body: body.clone(),
                answers: Vec::new(),
            });
    }

    fn record(&self, command_id: &str, answer: Answer) {
        let mut log = self.lock();
        let newly_accepted = answer.status == 202 && answer.intent == Intent::Valid;
        if newly_accepted {
            log.accepted_at.push(Instant::now());
        }
        if let Some(trace) = log.traces.get_mut(command_id) {
            let first_202 = newly_accepted && !trace.accepted();
            trace.answers.push(answer);
            if first_202 {
                log.accepted.push(command_id.to_owned());
            }
        }
    }

    fn pick_accepted(&self, rng: &mut fastrand::Rng) -> Option<(String, CommandTrace)> {
        let log = self.lock();
        if log.accepted.is_empty() {
            return None;
        }
        let id = &log.accepted[rng.usize(..log.accepted.len())];
        log.traces.get(id).map(|t| (id.clone(), t.clone()))
    }

    /// When each 202 to a new command (not a duplicate) arrived, in order.
    pub fn acceptance_times(&self) -> Vec<Instant> {
        self.lock().accepted_at.clone()
    }

    /// A copy of every trace.
    pub fn snapshot(&self) -> HashMap<String, CommandTrace> {
        self.lock().traces.clone()
    }
}

/// A client of the edge.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    edge: String,
    log: CommandLog,
}

impl Client {
    /// A client of the edge at `edge`, logging into `log`.
    pub fn new(edge: String, log: CommandLog) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        Self { http, edge, log }
    }

    /// Sends commands until `until`; client `n` uses badges of its own.
    pub async fn drive(&self, n: usize, seed: u64, until: Instant) {
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(n as u64));
        let mut sequence = 0u64;
        while Instant::now() < until {
            sequence += 1;
            let fresh = badge(n, sequence);
            let roll = rng.u8(..100);
            let picked = if roll >= 80 {
                self.log.pick_accepted(&mut rng)
            } else {
                None
            };
            let picked = if roll >= 60 && picked.is_none() {
                self.log.pick_accepted(&mut rng)
            } else {
                picked
            };
            let (id, intent, target, badge, body) = match (roll, picked) {
                (80..=89, Some((id, trace))) => {
                    (id, Intent::Duplicate, REGISTER, trace.badge, trace.body)
                }
                (90..=94, Some((id, trace))) => {
                    let mut body = trace.body;
                    body["firstName"] = "Changed".into();
                    (id, Intent::KeyReuse, REGISTER, trace.badge, body)
                }
                (95..=99, Some((_, trace))) => {
                    let id = format!("conflict-{fresh}");
                    let body = officer(&trace.badge);
                    (id, Intent::BadgeConflict, REGISTER, trace.badge, body)
                }
                (60..=69, Some((_, trace))) => {
                    let (command, path, body) = lifecycle(&mut rng, &trace.badge);
                    let id = format!("change-{fresh}");
                    (id, Intent::Lifecycle, (command, path), trace.badge, body)
                }
                (70..=79, _) => {
                    let mut body = officer(&fresh);
                    body["rank"] = "general".into();
                    (
                        format!("invalid-{fresh}"),
                        Intent::Invalid,
                        REGISTER,
                        fresh,
                        body,
                    )
                }
                _ => {
                    let body = officer(&fresh);
                    (format!("cmd-{fresh}"), Intent::Valid, REGISTER, fresh, body)
                }
            };
            self.log.open(&id, intent, target, &badge, &body);
            self.send_until_final(&id, intent, target.1, &body, until)
                .await;
        }
    }

    /// Sends `body` with key `command_id` until a final (non-5xx) answer or `until`.
    pub async fn send_until_final(
        &self,
        command_id: &str,
        intent: Intent,
        path: &str,
        body: &Value,
        until: Instant,
    ) -> u16 {
        let mut pause = Duration::from_millis(100);
        loop {
            let answer = self.send(command_id, intent, path, body).await;
            let status = answer.status;
            self.log.record(command_id, answer);
            if (1..500).contains(&status) || Instant::now() >= until {
                return status;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn send(&self, command_id: &str, intent: Intent, path: &str, body: &Value) -> Answer {
        let sent = self
            .http
            .post(format!("{}{path}", self.edge))
            .header(http::IDEMPOTENCY_KEY, command_id)
            .json(body)
            .send()
            .await;
        let Ok(response) = sent else {
            return Answer {
                intent,
                status: 0,
                code: None,
                body: Bytes::new(),
            };
        };
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        let code = (status >= 400)
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten()
            .and_then(|p| p["code"].as_str().map(str::to_owned));
        Answer {
            intent,
            status,
            code,
            body,
        }
    }
}

/// A badge number of client `n` (`FAB-000042`), unique across clients and runs of one client.
fn badge(client: usize, sequence: u64) -> String {
    let letter = |i: usize| char::from(b'A' + u8::try_from(i % 26).unwrap_or(0));
    format!("F{}{}-{sequence:06}", letter(client / 26), letter(client))
}

//! The checks after the chaos: what the clients were told against what Kafka and the read
//! models hold. Each failed check names the offending ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use contracts::{CommandAccepted, headers::message, ids, status::ProjectionStats};
use serde::Serialize;
use serde_json::Value;

use super::load::{CommandTrace, Intent};
use crate::kafka::Record;

/// Counts and violations.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Commands (distinct commandIds) by first intent.
    pub commands: BTreeMap<String, u64>,
    /// commandIds that received a 202.
    pub accepted_commands: u64,
    /// Registrations among them: the officers the read models must hold.
    pub accepted_registrations: u64,
    /// Lifecycle changes among them.
    pub accepted_changes: u64,
    /// commandIds whose final answer was a refusal.
    pub refused_commands: u64,
    /// Records in the topic.
    pub records: u64,
    /// Distinct eventIds in the topic.
    pub events: u64,
    /// Records repeating an eventId (re-produced in a crash window).
    pub duplicate_records: u64,
    /// Violations, each naming its ids.
    pub violations: Vec<String>,
}

/// What Kafka holds, grouped by commandId.
struct TopicIndex<'a> {
    by_command: HashMap<&'a str, Vec<&'a Record>>,
    positions: HashMap<(i32, i64), &'a Record>,
}

impl<'a> TopicIndex<'a> {
    fn new(records: &'a [Record]) -> Self {
        let mut by_command: HashMap<&str, Vec<&Record>> = HashMap::new();
        let mut positions = HashMap::new();
        for record in records {
            let command_id = record
                .headers
                .get(message::COMMAND_ID)
                .map_or("", String::as_str);
            by_command.entry(command_id).or_default().push(record);
            positions.insert((record.partition, record.offset), record);
        }
        Self {
            by_command,
            positions,
        }
    }

    fn event_ids(&self, command_id: &str) -> BTreeSet<&'a str> {
        self.by_command
            .get(command_id)
            .into_iter()
            .flatten()
            .map(|r| r.headers[message::EVENT_ID].as_str())
            .collect()
    }
}

/// Checks every trace against the topic.
pub fn check_topic(traces: &HashMap<String, CommandTrace>, records: &[Record]) -> Verdict {
    let topic = TopicIndex::new(records);
    let mut verdict = Verdict {
        records: records.len() as u64,
        ..Verdict::default()
    };
    let all_events: BTreeSet<&str> = records
        .iter()
        .map(|r| r.headers[message::EVENT_ID].as_str())
        .collect();
    verdict.events = all_events.len() as u64;
    verdict.duplicate_records = verdict.records - verdict.events;
    for (command_id, trace) in traces {
        *verdict
            .commands
            .entry(format!("{:?}", trace.intent).to_lowercase())
            .or_default() += 1;
        check_command(command_id, trace, &topic, &mut verdict);
    }
    for command_id in topic.by_command.keys() {
        if !traces.get(*command_id).is_some_and(CommandTrace::accepted) {
            verdict.violations.push(format!(
                "event in Kafka for {command_id}, which never got a 202"
            ));
        }
    }
    verdict
}

fn check_command(command_id: &str, trace: &CommandTrace, topic: &TopicIndex<'_>, v: &mut Verdict) {
    let mut violation = |what: String| v.violations.push(format!("{command_id}: {what}"));
    let bodies: BTreeSet<&[u8]> = trace
        .own_answers()
        .filter(|a| a.status == 202)
        .map(|a| a.body.as_ref())
        .collect();
    if bodies.len() > 1 {
        violation(format!("{} different 202 replies", bodies.len()));
    }
    for reuse in trace
        .answers
        .iter()
        .filter(|a| a.intent == Intent::KeyReuse)
    {
        let refused = reuse.code.as_deref() == Some("idempotency-key-reused");
        if !refused && reuse.status < 500 && reuse.status != 0 {
            violation(format!(
                "a reused key answered {} {:?}",
                reuse.status, reuse.code
            ));
        }
    }
    let event_ids = topic.event_ids(command_id);
    match trace.last_status() {
        Some(202) => {
            let expected = ids::event_id(trace.command, command_id).to_string();
            if event_ids.len() != 1 || !event_ids.contains(expected.as_str()) {
                violation(format!(
                    "accepted, but its events in Kafka are {event_ids:?}"
                ));
            }
            if let Some(body) = bodies.first() {
                check_reply_position(command_id, body, topic, &mut violation);
            }
        }
        Some(status) if (400..500).contains(&status) => {
            if !event_ids.is_empty() {
                violation(format!(
                    "refused with {status}, yet has events {event_ids:?}"
                ));
            }
        }
        other => violation(format!("never reached a final answer (last {other:?})")),
    }
    match trace.last_status() {
        Some(202) => {
            v.accepted_commands += 1;
            match trace.intent {
                Intent::Lifecycle => v.accepted_changes += 1,
                _ => v.accepted_registrations += 1,
            }
        }
        Some(400..=499) => v.refused_commands += 1,
        _ => {}
    }
}

/// The position a 202 names must hold this command's event: the reply does not lie.
fn check_reply_position(
    command_id: &str,
    body: &[u8],
    topic: &TopicIndex<'_>,
    violation: &mut impl FnMut(String),
) {
    let Ok(reply) = serde_json::from_slice::<CommandAccepted>(body) else {
        return violation("a 202 body is not an accepted reply".to_owned());
    };
    let at = (reply.event.partition, reply.event.offset);
    let holder = topic
        .positions
        .get(&at)
        .map(|r| &r.headers[message::COMMAND_ID]);
    if holder.map(String::as_str) != Some(command_id) {
        violation(format!(
            "the 202 names position {at:?}, which holds {holder:?}"
        ));
    }
}

/// The read models must hold exactly the accepted set, each event applied once.
pub fn check_projection_stats(stats: &ProjectionStats, verdict: &mut Verdict) {
    if stats.applied_events != verdict.events {
        verdict.violations.push(format!(
            "projections applied {} events, the topic holds {}",
            stats.applied_events, verdict.events
        ));
    }
    if stats.duplicate_records != verdict.duplicate_records {
        verdict.violations.push(format!(
            "projections skipped {} duplicates, the topic holds {}",
            stats.duplicate_records, verdict.duplicate_records
        ));
    }
    if stats.unreadable != 0 || stats.superseded != 0 {
        verdict.violations.push(format!(
            "projections: {} unreadable and {} superseded events",
            stats.unreadable, stats.superseded
        ));
    }
    if stats.officers != verdict.accepted_registrations {
        verdict.violations.push(format!(
            "projections hold {} officers for {} accepted registrations",
            stats.officers, verdict.accepted_registrations
        ));
    }
}

/// What a query answered for one command: its status view (or 404) and its officer.
pub struct Queried {
    /// `GET /v1/commands/{correlationId}`: status and body.
    pub status: (u16, Value),
    /// `GET /v1/officers/{badge}`: status and body.
    pub officer: (u16, Value),
}

/// An accepted command is projected under its own ids; a refused one is unknown.
pub fn check_queried(command_id: &str, trace: &CommandTrace, queried: &Queried) -> Option<String> {
    let (status, view) = &queried.status;
    let (officer_status, officer) = &queried.officer;
    if trace.last_status() == Some(202) {
        let projected =
            *status == 200 && view["status"] == "projected" && view["commandId"] == command_id;
        // A change keeps the officer of its registration; a registration is that officer.
        let registered = *officer_status == 200
            && (trace.intent == Intent::Lifecycle || officer["commandId"] == command_id);
        (!projected || !registered).then(|| {
            format!(
                "{command_id}: accepted but read as {status} {view} / {officer_status} {officer}"
            )
        })
    } else {
        (*status != 404)
            .then(|| format!("{command_id}: refused but its status reads {status} {view}"))
    }
}

/// No lost update: per officer, the events in topic order carry versions 1, 2, 3, ... with
/// no gap and no version twice, and each change was allowed on the state the events before
/// it leave (a rank it did not hold; a suspension of an active officer; a reinstatement of a
/// suspended one). Re-produced duplicates (one eventId twice) count once.
pub fn check_versions(records: &[Record], verdict: &mut Verdict) {
    let mut by_officer: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for record in records {
        if seen.insert(record.headers[message::EVENT_ID].as_str()) {
            by_officer
                .entry(record.key.as_str())
                .or_default()
                .push(record);
        }
    }
    for (badge, mut events) in by_officer {
        events.sort_by_key(|r| r.offset);
        let mut state = (String::new(), false);
        for (n, event) in events.iter().enumerate() {
            let value = &event.value;
            if value["aggregateVersion"].as_u64() != Some(n as u64 + 1) {
                verdict.violations.push(format!(
                    "{badge}: event {} of {} carries version {}, not {}",
                    n + 1,
                    events.len(),
                    value["aggregateVersion"],
                    n + 1
                ));
                break;
            }
            if let Err(why) = apply_change(&mut state, value) {
                verdict
                    .violations
                    .push(format!("{badge}: lost update: {why}"));
                break;
            }
        }
    }
}

/// The officer's (rank, suspended) after `event`, or why the event should have been refused.
fn apply_change(state: &mut (String, bool), event: &Value) -> Result<(), String> {
    let payload = &event["payload"];
    let (rank, suspended) = state;
    match event["eventType"].as_str().unwrap_or_default() {
        "RegisterOfficerRequested" => {
            *rank = payload["rank"].as_str().unwrap_or_default().to_owned();
        }
        "ChangeOfficerRankRequested" if payload["rank"] == rank.as_str() => {
            return Err(format!("a rank change to the rank it held ({rank})"));
        }
        "ChangeOfficerRankRequested" => {
            *rank = payload["rank"].as_str().unwrap_or_default().to_owned();
        }
        "SuspendOfficerRequested" if *suspended => return Err("suspended twice".to_owned()),
        "SuspendOfficerRequested" => *suspended = true,
        "ReinstateOfficerRequested" if !*suspended => {
            return Err("reinstated while active".to_owned());
        }
        "ReinstateOfficerRequested" => *suspended = false,
        other => return Err(format!("an event the run never sends: {other}")),
    }
    Ok(())
}

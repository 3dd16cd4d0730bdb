//! `ackgate trace`: one command's timeline, as a table support staff can read aloud.

use std::{io::Write, time::Duration};

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use contracts::{
    ErrorCode, Names,
    timeline::{CommandTimeline, StepKind, TimelineQuery, TimelineStep},
};
use runtime::nats::{self, AskError};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::{Error, Result};

/// The timeline of the command `id` names: a correlationId, else a commandId.
pub(crate) async fn find(
    client: &async_nats::Client,
    names: &Names,
    id: &str,
    timeout: Duration,
) -> Result<CommandTimeline> {
    let subject = &names.query_timeline;
    for query in [
        TimelineQuery::CorrelationId(id.to_owned()),
        TimelineQuery::CommandId(id.to_owned()),
    ] {
        match nats::ask(client, subject, &query, timeout).await {
            Ok(timeline) => return Ok(timeline),
            Err(AskError::Refused { problem, .. }) if problem.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::NotFound(format!(
        "no command with correlationId or commandId {id} (in the timeline's retention)"
    )))
}

/// Prints `timeline` as a heading and a table of its steps, or as JSON.
pub(crate) fn print(timeline: &CommandTimeline, json: bool, out: &mut impl Write) -> Result<()> {
    if json {
        return crate::print_json(out, timeline);
    }
    writeln!(out, "{}", heading(timeline))?;
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header([
        "#",
        "at (UTC)",
        "+ms",
        "component",
        "instance",
        "step",
        "details",
    ]);
    for step in &timeline.steps {
        table.add_row(row(step));
    }
    writeln!(out, "{table}")?;
    Ok(())
}

fn heading(timeline: &CommandTimeline) -> String {
    let command = &timeline.command;
    let known = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".to_owned());
    let started = timeline.steps.first().map(|s| s.at.format(&Rfc3339));
    format!(
        "{} {} (commandId {}) on {}: {} after {} request(s); correlationId {}, started {}",
        known(&command.command_type),
        "command",
        known(&command.command_id),
        known(&command.aggregate_id),
        kebab(&timeline.outcome).to_uppercase(),
        timeline.attempts,
        timeline.correlation_id,
        started.and_then(|s| s.ok()).unwrap_or_default(),
    )
}

fn row(step: &TimelineStep) -> Vec<String> {
    let mut name = step.kind.name().to_owned();
    if let Some(failure) = &step.failure {
        name = format!("{name} ✗ {failure}");
    }
    vec![
        step.attempt.to_string(),
        clock(step.at),
        step.since_previous_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}")),
        step.component.as_str().to_owned(),
        step.instance.clone(),
        name,
        details(&step.kind),
    ]
}

fn clock(at: OffsetDateTime) -> String {
    let format = format_description!("[hour]:[minute]:[second].[subsecond digits:3]");
    at.format(&format).unwrap_or_default()
}

/// What a step says, in words.
pub(crate) fn details(kind: &StepKind) -> String {
    match kind {
        StepKind::Received {
            method,
            route,
            principal,
            client_correlation_id,
            client_command_id,
        } => {
            let mut chosen = Vec::new();
            if *client_correlation_id {
                chosen.push("correlationId");
            }
            if *client_command_id {
                chosen.push("Idempotency-Key");
            }
            let by = principal
                .as_deref()
                .map(|p| format!(" by {p}"))
                .unwrap_or_default();
            match chosen.is_empty() {
                true => format!("{method} {route}{by}"),
                false => format!("{method} {route}{by}; client chose {}", chosen.join(", ")),
            }
        }
        StepKind::Requested { subject, redrive } => match redrive {
            true => format!("{subject} (sent again)"),
            false => subject.clone(),
        },
        StepKind::Ledger { outcome } => kebab(outcome),
        StepKind::Decided { version, code } => match (version, code) {
            (Some(version), _) => format!("accepted as version {version}"),
            (None, Some(code)) => format!("refused: {code}"),
            (None, None) => "not decided".to_owned(),
        },
        StepKind::Appended { position } => format!("in Kafka at {}", position.token()),
        StepKind::DeadLettered { code } => {
            format!("parked in the command dead-letter queue: {code}")
        }
        StepKind::Answered {
            status,
            code,
            replayed,
        } => {
            let code = code.map(|c| format!(" {c}")).unwrap_or_default();
            let replayed = if *replayed {
                " (stored reply of an earlier attempt)"
            } else {
                ""
            };
            format!("{status}{code}{replayed}")
        }
        StepKind::Applied {
            position,
            read_models,
            lag_ms,
        } => format!(
            "{} visible ({lag_ms} ms after Kafka took {})",
            read_models.join(", "),
            position.token()
        ),
        StepKind::Superseded { position } => {
            format!(
                "another command took the aggregate first; {} changed nothing",
                position.token()
            )
        }
        StepKind::Parked {
            position,
            code,
            detail,
        } => format!("{} parked: {code}: {detail}", position.token()),
        StepKind::Discarded { position, reason } => {
            format!("{} discarded by an operator: {reason}", position.token())
        }
    }
}

/// The kebab-case name a unit enum serializes to.
pub(crate) fn kebab(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => format!("{other:?}"),
    }
}

//! From stored steps to what support staff read: steps in order with the time between them,
//! attempts numbered, and where the command stands. Pure functions, shared by both stores.

use contracts::timeline::{
    CommandIds, CommandTimeline, Component, StepKind, TimelineOutcome, TimelineStep,
    TimelineSummary,
};

use super::StoredStep;

/// The timeline of the command whose steps are `steps` (every request of it), as asked for
/// by `correlation_id`; `None` when there are no steps.
pub fn timeline(correlation_id: &str, mut steps: Vec<StoredStep>) -> Option<CommandTimeline> {
    if steps.is_empty() {
        return None;
    }
    sort(&mut steps);
    let command = identity(&steps);
    let numbered = number_attempts(&steps);
    let attempts = count_attempts(&numbered);
    let mut previous = None;
    let shown = numbered
        .into_iter()
        .map(|(attempt, stored)| {
            let at = stored.step.at;
            let since_previous_ms =
                previous.map(|before: time::OffsetDateTime| (at - before).as_seconds_f64() * 1e3);
            previous = Some(at);
            TimelineStep {
                at,
                since_previous_ms,
                attempt,
                correlation_id: stored.correlation_id.clone(),
                component: stored.component,
                instance: stored.instance.clone(),
                failure: stored.step.kind.failure(),
                kind: stored.step.kind.clone(),
            }
        })
        .collect();
    Some(CommandTimeline {
        correlation_id: correlation_id.to_owned(),
        command,
        outcome: outcome(&steps),
        attempts,
        steps: shown,
    })
}

/// A search result's line for the command whose steps are `steps`.
pub fn summary(mut steps: Vec<StoredStep>) -> Option<TimelineSummary> {
    sort(&mut steps);
    let first = steps.first()?;
    let last = steps.last()?;
    let command = identity(&steps);
    let attempts = count_attempts(&number_attempts(&steps));
    Some(TimelineSummary {
        correlation_id: first.correlation_id.clone(),
        command,
        outcome: outcome(&steps),
        failure: steps.iter().rev().find_map(|s| s.step.kind.failure()),
        attempts,
        started_at: first.step.at,
        last_at: last.step.at,
    })
}

/// Oldest first; steps stamped at the same instant in the order a command takes them.
pub fn sort(steps: &mut [StoredStep]) {
    steps.sort_by(|a, b| {
        (a.step.at, rank(&a.step.kind), component_rank(a.component)).cmp(&(
            b.step.at,
            rank(&b.step.kind),
            component_rank(b.component),
        ))
    });
}

fn rank(kind: &StepKind) -> u8 {
    match kind {
        StepKind::Received { .. } => 0,
        StepKind::Requested { .. } => 1,
        StepKind::Ledger { .. } => 2,
        StepKind::Decided { .. } => 3,
        StepKind::Appended { .. } => 4,
        StepKind::DeadLettered { .. } => 5,
        StepKind::Answered { .. } => 6,
        StepKind::Applied { .. } | StepKind::Superseded { .. } | StepKind::Parked { .. } => 7,
        StepKind::Discarded { .. } => 8,
    }
}

/// The business-logic service answers before the edge does.
fn component_rank(component: Component) -> u8 {
    match component {
        Component::BlService => 0,
        Component::Edge => 1,
        Component::Projections => 2,
        Component::Operator => 3,
    }
}

/// The command's ids, from the first step that knows each.
fn identity(steps: &[StoredStep]) -> CommandIds {
    steps.iter().fold(CommandIds::default(), |mut known, step| {
        known.learn(&step.command);
        known
    })
}

/// Each sorted step with the request it belongs to: a new request starts at the edge's
/// `received`, and at every re-drive (sent by an operator or by a later command, never by
/// the edge). What happened to the event (applied, parked, ...) belongs to the request
/// that appended it, even when a retry came in between.
fn number_attempts(steps: &[StoredStep]) -> Vec<(u32, &StoredStep)> {
    let mut attempt = 0;
    let mut appended_by: std::collections::HashMap<String, u32> = Default::default();
    steps
        .iter()
        .map(|stored| {
            let starts = match &stored.step.kind {
                StepKind::Received { .. } | StepKind::Requested { redrive: true, .. } => true,
                _ => attempt == 0,
            };
            if starts {
                attempt += 1;
            }
            let number = match event_position(&stored.step.kind) {
                Some(position) => *appended_by.entry(position).or_insert(attempt),
                None => attempt,
            };
            (number, stored)
        })
        .collect()
}

/// The event a step is about, as its position token.
fn event_position(kind: &StepKind) -> Option<String> {
    match kind {
        StepKind::Appended { position }
        | StepKind::Applied { position, .. }
        | StepKind::Superseded { position }
        | StepKind::Parked { position, .. }
        | StepKind::Discarded { position, .. } => Some(position.token()),
        _ => None,
    }
}

fn count_attempts(numbered: &[(u32, &StoredStep)]) -> u32 {
    numbered
        .iter()
        .map(|(attempt, _)| *attempt)
        .max()
        .unwrap_or(1)
}

/// Where a command stands after `steps` (sorted). What happened to its event, once one
/// exists, outranks what its requests were answered: a retry refused as `in progress`
/// does not un-accept a command.
pub fn outcome(steps: &[StoredStep]) -> TimelineOutcome {
    let mut request = TimelineOutcome::InFlight;
    let mut event = None;
    let mut appended = false;
    for stored in steps {
        let dead_lettered = request == TimelineOutcome::DeadLettered;
        match &stored.step.kind {
            StepKind::Appended { .. } | StepKind::Answered { status: 202, .. } => appended = true,
            StepKind::DeadLettered { .. } => request = TimelineOutcome::DeadLettered,
            // A dead-lettered command stays so through its 503 and later requests, until
            // one of them is answered for good.
            StepKind::Answered { status, .. } if *status >= 500 && !dead_lettered => {
                request = TimelineOutcome::Failed;
            }
            StepKind::Answered { status, .. } if (400..500).contains(status) => {
                request = TimelineOutcome::Refused;
            }
            StepKind::Received { .. } | StepKind::Requested { .. } if !dead_lettered => {
                request = TimelineOutcome::InFlight;
            }
            StepKind::Applied { .. } => event = Some(TimelineOutcome::Projected),
            StepKind::Superseded { .. } => event = Some(TimelineOutcome::Superseded),
            StepKind::Parked { .. } => event = Some(TimelineOutcome::Parked),
            StepKind::Discarded { .. } => event = Some(TimelineOutcome::Discarded),
            _ => {}
        }
    }
    match (event, appended) {
        (Some(event), _) => event,
        (None, true) => TimelineOutcome::Accepted,
        (None, false) => request,
    }
}

#[cfg(test)]
mod tests;

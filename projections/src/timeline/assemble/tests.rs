use contracts::{
    ErrorCode, EventPosition,
    deadletter::PoisonCode,
    timeline::{CommandIds, Component, LedgerOutcome, Step, StepKind, TimelineOutcome},
};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::*;

const T0: OffsetDateTime = datetime!(2026-12-02 10:14:00 UTC);

fn position() -> EventPosition {
    EventPosition {
        topic: "ackgate.officer.events".to_owned(),
        partition: 1,
        offset: 42,
    }
}

fn at(ms: i64, correlation_id: &str, component: Component, kind: StepKind) -> StoredStep {
    StoredStep {
        correlation_id: correlation_id.to_owned(),
        command: CommandIds {
            command_id: Some("cmd-1".to_owned()),
            command_type: Some("RegisterOfficer".to_owned()),
            aggregate_id: None,
        },
        component,
        instance: "host:1".to_owned(),
        step: Step::once(
            &format!("{correlation_id}:{ms}"),
            T0 + Duration::milliseconds(ms),
            kind,
        ),
    }
}

fn received() -> StepKind {
    StepKind::Received {
        method: "POST".to_owned(),
        route: "/v1/officers".to_owned(),
        principal: None,
        client_correlation_id: false,
        client_command_id: true,
    }
}

fn answered(status: u16, code: Option<ErrorCode>) -> StepKind {
    StepKind::Answered {
        status,
        code,
        replayed: false,
    }
}

fn accepted_request(start: i64, correlation_id: &str) -> Vec<StoredStep> {
    vec![
        at(start, correlation_id, Component::Edge, received()),
        at(
            start + 1,
            correlation_id,
            Component::BlService,
            StepKind::Ledger {
                outcome: LedgerOutcome::New,
            },
        ),
        at(
            start + 9,
            correlation_id,
            Component::BlService,
            StepKind::Appended {
                position: position(),
            },
        ),
        at(
            start + 10,
            correlation_id,
            Component::Edge,
            answered(202, None),
        ),
    ]
}

#[test]
fn a_plain_accept_is_ordered_and_timed_and_becomes_projected_once_applied() {
    let mut steps = accepted_request(0, "c-1");
    steps.reverse();
    let shown = timeline("c-1", steps.clone()).expect("steps");
    assert_eq!(shown.outcome, TimelineOutcome::Accepted);
    let names: Vec<&str> = shown.steps.iter().map(|s| s.kind.name()).collect();
    assert_eq!(names, ["received", "ledger", "appended", "answered"]);
    let gaps: Vec<Option<f64>> = shown.steps.iter().map(|s| s.since_previous_ms).collect();
    assert_eq!(gaps, [None, Some(1.0), Some(8.0), Some(1.0)]);

    steps.push(at(
        30,
        "c-1",
        Component::Projections,
        StepKind::Applied {
            position: position(),
            read_models: vec!["officers".to_owned()],
            lag_ms: 20,
        },
    ));
    let shown = timeline("c-1", steps).expect("steps");
    assert_eq!(shown.outcome, TimelineOutcome::Projected);
}

#[test]
fn a_retry_is_a_second_attempt_and_a_late_refusal_does_not_unaccept() {
    let mut steps = accepted_request(0, "c-1");
    steps.push(at(100, "c-2", Component::Edge, received()));
    steps.push(at(
        101,
        "c-2",
        Component::Edge,
        answered(409, Some(ErrorCode::CommandInProgress)),
    ));
    let shown = timeline("c-2", steps).expect("steps");
    assert_eq!(shown.attempts, 2);
    assert_eq!(shown.outcome, TimelineOutcome::Accepted);
    let last = shown.steps.last().expect("a step");
    assert_eq!((last.attempt, last.correlation_id.as_str()), (2, "c-2"));
    assert_eq!(last.failure.as_deref(), Some("command-in-progress"));
}

#[test]
fn a_refusal_is_refused_and_a_dead_letter_stays_until_a_later_answer() {
    let refused = vec![
        at(0, "c-1", Component::Edge, received()),
        at(
            2,
            "c-1",
            Component::Edge,
            answered(422, Some(ErrorCode::SchemaViolation)),
        ),
    ];
    assert_eq!(outcome(&refused), TimelineOutcome::Refused);

    let mut parked = vec![
        at(0, "c-1", Component::Edge, received()),
        at(
            5,
            "c-1",
            Component::BlService,
            StepKind::DeadLettered {
                code: ErrorCode::KafkaUnavailable,
            },
        ),
        at(
            6,
            "c-1",
            Component::Edge,
            answered(503, Some(ErrorCode::KafkaUnavailable)),
        ),
    ];
    assert_eq!(outcome(&parked), TimelineOutcome::DeadLettered);
    parked.extend(accepted_request(1000, "c-1"));
    sort(&mut parked);
    assert_eq!(outcome(&parked), TimelineOutcome::Accepted);
}

#[test]
fn a_parked_event_shows_parked_until_it_is_applied_or_discarded() {
    let mut steps = accepted_request(0, "c-1");
    steps.push(at(
        20,
        "c-1",
        Component::Projections,
        StepKind::Parked {
            position: position(),
            code: PoisonCode::HandlerFailed,
            detail: "no officer".to_owned(),
        },
    ));
    assert_eq!(outcome(&steps), TimelineOutcome::Parked);
    steps.push(at(
        90,
        "c-1",
        Component::Operator,
        StepKind::Discarded {
            position: position(),
            reason: "duplicate import".to_owned(),
        },
    ));
    assert_eq!(outcome(&steps), TimelineOutcome::Discarded);
}

#[test]
fn a_summary_names_the_first_request_and_the_latest_failure() {
    let mut steps = accepted_request(0, "c-1");
    steps.push(at(
        50,
        "c-2",
        Component::Edge,
        answered(409, Some(ErrorCode::CommandInProgress)),
    ));
    let summary = summary(steps).expect("steps");
    assert_eq!(summary.correlation_id, "c-1");
    assert_eq!(summary.failure.as_deref(), Some("command-in-progress"));
    assert_eq!(
        summary.last_at - summary.started_at,
        Duration::milliseconds(50)
    );
}

#[test]
fn steps_round_trip_through_their_json() {
    let step = accepted_request(0, "c-1").remove(2).step;
    let json = serde_json::to_value(&step).expect("serializes");
    assert_eq!(json["step"], "appended");
    assert_eq!(json["offset"], 42);
    let back: Step = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, step);
}

#[test]
fn an_event_applied_after_a_retry_arrived_stays_with_the_request_that_wrote_it() {
    let mut steps = accepted_request(0, "c-1");
    steps.push(at(20, "c-2", Component::Edge, received()));
    steps.push(at(
        21,
        "c-1",
        Component::Projections,
        StepKind::Applied {
            position: position(),
            read_models: vec!["officers".to_owned()],
            lag_ms: 20,
        },
    ));
    steps.push(at(22, "c-2", Component::Edge, answered(202, None)));
    let shown = timeline("c-2", steps).expect("steps");
    let applied = shown
        .steps
        .iter()
        .find(|s| s.kind.name() == "applied")
        .expect("applied");
    assert_eq!(applied.attempt, 1);
    assert_eq!(shown.attempts, 2);
}

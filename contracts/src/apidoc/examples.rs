//! Example query answers for the OpenAPI document, built from the Rust types the projections
//! answer with, so a test that checks the examples against the schemas also checks that the
//! schemas describe the types.

use serde_json::Value;
use time::macros::{date, datetime};

use crate::{
    EventPosition,
    observation::{Location, ObservationPage, ObservationView, RecordObservation},
    officer::{
        HistoryOutcome, OfficerDetail, OfficerHistoryEntry, OfficerStatus, OfficerView, Rank,
        RegisterOfficer,
    },
    status::{CommandState, CommandStatusView},
    timeline::{
        CommandIds, CommandTimeline, Component, LedgerOutcome, StepKind, TimelineOutcome,
        TimelineStep,
    },
};

fn position(offset: i64) -> EventPosition {
    EventPosition {
        topic: "ackgate.officer.events".to_owned(),
        partition: 2,
        offset,
    }
}

fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x6f1c_1f62_4a8e_4c55_9d4e_1c2f_8a9b_0c00 + n)
}

/// `GET /v1/officers/{badgeNumber}`.
pub(super) fn officer_detail() -> Option<Value> {
    let officer = OfficerView {
        officer: RegisterOfficer {
            badge_number: "B-1042".to_owned(),
            first_name: "Ana".to_owned(),
            last_name: "Reyes".to_owned(),
            rank: Rank::Lieutenant,
            email: "ana.reyes@example.org".to_owned(),
            hire_date: date!(2019 - 04 - 01),
            phone: Some("+1 314 555 0100".to_owned()),
            precinct: None,
        },
        status: OfficerStatus::Active,
        version: 2,
        suspension_reason: None,
        retired_on: None,
        registered_at: datetime!(2026-11-30 09:00 UTC),
        updated_at: Some(datetime!(2026-11-30 10:00 UTC)),
        correlation_id: "corr-1".to_owned(),
        command_id: "reg-1".to_owned(),
        event: position(0),
    };
    let entry = |n: u128, event_type: &str, outcome| OfficerHistoryEntry {
        event_id: id(n),
        event_type: event_type.to_owned(),
        correlation_id: format!("corr-{n}"),
        command_id: format!("cmd-{n}"),
        occurred_at: datetime!(2026-11-30 09:00 UTC),
        event: position(i64::try_from(n).unwrap_or_default() * 2),
        outcome,
    };
    let detail = OfficerDetail {
        officer,
        history: vec![
            entry(0, "RegisterOfficerRequested", HistoryOutcome::Registered),
            entry(1, "ChangeOfficerRankRequested", HistoryOutcome::Changed),
        ],
    };
    serde_json::to_value(detail).ok()
}

/// `GET /v1/officers/{badgeNumber}/observations`.
pub(super) fn observation_page() -> Option<Value> {
    let view = ObservationView {
        event_id: id(7),
        observation: RecordObservation {
            badge_number: "B-1042".to_owned(),
            observed_at: datetime!(2026-11-30 21:14 -6),
            location: Location {
                latitude: 38.627,
                longitude: -90.1994,
                label: Some("Market St & 14th St".to_owned()),
            },
            text: "Streetlight out at the north-east corner.".to_owned(),
        },
        recorded_at: datetime!(2026-12-01 03:14:02 UTC),
        correlation_id: "corr-7".to_owned(),
        command_id: "obs-7".to_owned(),
        event: EventPosition {
            topic: "ackgate.observation.events".to_owned(),
            partition: 0,
            offset: 41,
        },
    };
    let page = ObservationPage {
        items: vec![view],
        next_cursor: None,
    };
    serde_json::to_value(page).ok()
}

/// `GET /v1/commands/{correlationId}`.
pub(super) fn command_status() -> Option<Value> {
    let status = CommandStatusView {
        correlation_id: "corr-1".to_owned(),
        command_id: "reg-1".to_owned(),
        command_type: "RegisterOfficer".to_owned(),
        aggregate_id: "B-1042".to_owned(),
        status: CommandState::Projected,
        event: Some(position(0)),
        accepted_at: Some(datetime!(2026-11-30 09:00 UTC)),
        dead_letter: None,
        parked: None,
        projected_at: Some(datetime!(2026-11-30 09:00:00.012 UTC)),
    };
    serde_json::to_value(status).ok()
}

/// `GET /v1/commands/{correlationId}/timeline`: a plain accept, as support staff see it.
pub(super) fn command_timeline() -> Option<Value> {
    let start = datetime!(2026-11-30 09:00 UTC);
    let step = |ms: i64, component, kind| TimelineStep {
        at: start + time::Duration::milliseconds(ms),
        since_previous_ms: None,
        attempt: 1,
        correlation_id: "corr-1".to_owned(),
        component,
        instance: format!("{}-1:4242", component.as_str()),
        failure: None,
        kind,
    };
    let mut steps = vec![
        step(
            0,
            Component::Edge,
            StepKind::Received {
                method: "POST".to_owned(),
                route: "/v1/officers".to_owned(),
                principal: None,
                client_correlation_id: true,
                client_command_id: true,
            },
        ),
        step(
            1,
            Component::BlService,
            StepKind::Requested {
                subject: "ackgate.cmd.officer.register".to_owned(),
                redrive: false,
            },
        ),
        step(
            2,
            Component::BlService,
            StepKind::Ledger {
                outcome: LedgerOutcome::New,
            },
        ),
        step(
            3,
            Component::BlService,
            StepKind::Decided {
                version: Some(1),
                code: None,
            },
        ),
        step(
            9,
            Component::BlService,
            StepKind::Appended {
                position: position(0),
            },
        ),
        step(
            9,
            Component::BlService,
            StepKind::Answered {
                status: 202,
                code: None,
                replayed: false,
            },
        ),
        step(
            10,
            Component::Edge,
            StepKind::Answered {
                status: 202,
                code: None,
                replayed: false,
            },
        ),
        step(
            21,
            Component::Projections,
            StepKind::Applied {
                position: position(0),
                read_models: vec!["officers".to_owned(), "command-status".to_owned()],
                lag_ms: 12,
            },
        ),
    ];
    for i in 1..steps.len() {
        let gap = steps[i].at - steps[i - 1].at;
        steps[i].since_previous_ms = Some(gap.as_seconds_f64() * 1e3);
    }
    let timeline = CommandTimeline {
        correlation_id: "corr-1".to_owned(),
        command: CommandIds {
            command_id: Some("reg-1".to_owned()),
            command_type: Some("RegisterOfficer".to_owned()),
            aggregate_id: Some("B-1042".to_owned()),
        },
        outcome: TimelineOutcome::Projected,
        attempts: 1,
        steps,
    };
    serde_json::to_value(timeline).ok()
}

//! The shipped schemas accept what they should, refuse what they should, and agree with the
//! Rust types that produce and consume the same messages.

use contracts::{
    Catalog, CommandAccepted, ErrorCode, EventPosition, Problem, Violation,
    envelope::{CommandOrigin, EventEnvelope},
    ids,
    officer::{REGISTER_OFFICER, REGISTER_OFFICER_REQUESTED, RegisterOfficer},
    reply::AcceptedStatus,
    schema::{self, SchemaValidator},
};
use serde_json::{Value, json};

fn valid_command() -> Value {
    json!({
        "badgeNumber": "B-1042",
        "firstName": "Ana",
        "lastName": "Reyes",
        "rank": "sergeant",
        "email": "ana.reyes@example.org",
        "hireDate": "2019-04-01"
    })
}

fn command_validator() -> SchemaValidator {
    SchemaValidator::compile(schema::REGISTER_OFFICER_V1).expect("schema compiles")
}

fn with(field: &str, value: Value) -> Value {
    let mut command = valid_command();
    command[field] = value;
    command
}

fn pointers(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.pointer.as_str()).collect()
}

#[test]
fn every_shipped_schema_compiles() {
    for doc in schema::ALL {
        SchemaValidator::compile(doc).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_complete_registration_is_valid_and_deserializes() {
    let validator = command_validator();
    assert_eq!(validator.violations(&valid_command()), vec![]);
    let typed: RegisterOfficer = serde_json::from_value(valid_command()).expect("deserializes");
    assert_eq!(
        serde_json::to_value(&typed).expect("serializes"),
        valid_command()
    );
}

#[test]
fn each_invalid_field_is_reported_at_its_pointer() {
    let validator = command_validator();
    let cases = [
        ("badgeNumber", json!("b-1042"), "pattern"),
        ("badgeNumber", json!("B-12"), "pattern"),
        ("badgeNumber", json!(1042), "type"),
        ("firstName", json!(""), "minLength"),
        ("firstName", json!("x".repeat(101)), "maxLength"),
        ("firstName", json!(" Ana"), "pattern"),
        ("lastName", json!("Re\u{0007}yes"), "pattern"),
        ("rank", json!("general"), "enum"),
        ("email", json!("not-an-email"), "format"),
        ("hireDate", json!("2019-13-01"), "format"),
        ("hireDate", json!("1850-01-01"), "pattern"),
    ];
    for (field, value, keyword) in cases {
        let violations = validator.violations(&with(field, value.clone()));
        let expected_pointer = format!("/{field}");
        assert!(
            violations
                .iter()
                .any(|v| v.pointer == expected_pointer && v.keyword == keyword),
            "{field}={value}: expected {keyword} at {expected_pointer}, got {violations:?}"
        );
    }
}

#[test]
fn all_violations_are_listed_at_once_including_missing_members() {
    let body = json!({ "badgeNumber": "nope", "rank": "general", "extra": true });
    let violations = command_validator().violations(&body);
    let found = pointers(&violations);
    for expected in [
        "/badgeNumber",
        "/rank",
        "/firstName",
        "/lastName",
        "/email",
        "/hireDate",
    ] {
        assert!(
            found.contains(&expected),
            "{expected} missing from {found:?}"
        );
    }
    assert!(
        violations
            .iter()
            .any(|v| v.keyword == "additionalProperties")
    );
}

#[test]
fn a_non_object_body_is_one_violation_at_the_root() {
    let violations = command_validator().violations(&json!([1, 2]));
    assert_eq!(pointers(&violations), vec![""]);
}

#[test]
fn an_event_matches_the_envelope_schema_and_its_payload_the_command_schema() {
    let catalog = Catalog::built_in().expect("catalog");
    let entry = catalog.get(REGISTER_OFFICER, 1).expect("entry");
    let command: RegisterOfficer = serde_json::from_value(valid_command()).expect("valid");
    let origin = CommandOrigin {
        command_id: "cmd-1",
        correlation_id: "corr-1",
        occurred_at: time::OffsetDateTime::now_utc(),
    };
    let event = EventEnvelope::of_command(&entry.spec, origin, "B-1042", Some(1), &command);
    assert_eq!(event.event_id, ids::event_id(REGISTER_OFFICER, "cmd-1"));
    assert_eq!(event.event_type, REGISTER_OFFICER_REQUESTED);
    let json = serde_json::to_value(&event).expect("serializes");
    let validator = SchemaValidator::compile(schema::EVENT_ENVELOPE_V1).expect("ok");
    assert_eq!(validator.violations(&json), vec![]);
    assert_eq!(entry.validator.violations(&json["payload"]), vec![]);

    let mut wrong_type = json.clone();
    wrong_type["eventType"] = json!("officer deleted");
    assert_eq!(
        pointers(&validator.violations(&wrong_type)),
        vec!["/eventType"]
    );
}

#[test]
fn the_accepted_reply_type_matches_its_schema() {
    let reply = CommandAccepted {
        correlation_id: "corr-1".to_owned(),
        command_id: "cmd-1".to_owned(),
        status: AcceptedStatus::Accepted,
        event: EventPosition {
            topic: "t".to_owned(),
            partition: 2,
            offset: 41,
        },
    };
    let json = serde_json::to_value(&reply).expect("serializes");
    assert_eq!(json["status"], "accepted");
    let validator = SchemaValidator::compile(schema::COMMAND_ACCEPTED_V1).expect("ok");
    assert_eq!(validator.violations(&json), vec![]);
    assert!(
        !validator
            .violations(&json!({ "status": "accepted" }))
            .is_empty()
    );
}

#[test]
fn every_error_code_yields_a_schema_valid_problem() {
    let validator = SchemaValidator::compile(schema::PROBLEM_V1).expect("ok");
    for code in ErrorCode::ALL {
        let problem = Problem::new(code, "detail", "corr-1").with_command_id("cmd-1");
        let json = serde_json::to_value(&problem).expect("serializes");
        assert_eq!(validator.violations(&json), vec![], "{code:?}");
        assert_eq!(json["status"], code.status());
    }
    let without_correlation = json!({
        "type": "urn:ackgate:error:internal", "title": "t", "status": 500,
        "detail": "d", "code": "internal"
    });
    assert_eq!(
        pointers(&validator.violations(&without_correlation)),
        vec!["/correlationId"]
    );
}

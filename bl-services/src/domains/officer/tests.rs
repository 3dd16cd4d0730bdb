//! The officer rules, judged on states the way the service judges them: through the
//! catalog's examples and the JSON handlers.

use contracts::{Catalog, ErrorCode};
use serde_json::{Value, json};

use crate::domain::Handlers;

fn decide(command: &str, body: Value, state: Option<&Value>) -> Result<Value, ErrorCode> {
    let handlers = Handlers::shipped();
    let handler = handlers.get(command).expect("a handler");
    handler.decide(&body, state).map_err(|r| r.code)
}

fn registered() -> Value {
    let catalog = Catalog::built_in().expect("catalog");
    let example = catalog
        .get("RegisterOfficer", 1)
        .and_then(|e| e.spec.example.clone());
    decide("RegisterOfficer", example.expect("example"), None).expect("registers")
}

fn with_status(status: &str) -> Value {
    // The state a registration leaves, moved to `status`.
    let mut state = registered();
    state["status"] = json!(status);
    state
}

#[test]
fn the_shipped_handlers_match_the_catalog_and_read_every_example() {
    let catalog = Catalog::built_in().expect("catalog");
    let handlers = Handlers::shipped();
    handlers
        .check(&catalog)
        .expect("handlers and catalog agree");
    let registered = registered();
    let mut suspended = registered.clone();
    suspended["status"] = json!("suspended");
    for entry in catalog.entries() {
        let example = entry
            .spec
            .example
            .clone()
            .expect("every shipped entry has an example");
        let Some(handler) = handlers.get(&entry.spec.command) else {
            assert!(entry.spec.rules.is_empty(), "{}", entry.spec.label());
            continue;
        };
        let on = match entry.spec.command.as_str() {
            "RegisterOfficer" => None,
            "ReinstateOfficer" => Some(&suspended),
            _ => Some(&registered),
        };
        let outcome = handler.decide(&example, on);
        assert!(outcome.is_ok(), "{}: {outcome:?}", entry.spec.label());
    }
}

#[test]
fn a_badge_is_registered_once() {
    let state = registered();
    assert_eq!(state["status"], "active");
    let again = json!({ "badgeNumber": "B-1042", "firstName": "X", "lastName": "Y",
        "rank": "officer", "email": "x@example.org", "hireDate": "2020-01-01" });
    assert_eq!(
        decide("RegisterOfficer", again, Some(&state)),
        Err(ErrorCode::BadgeAlreadyRegistered)
    );
}

#[test]
fn lifecycle_commands_need_an_officer_who_is_not_retired() {
    let suspend = json!({ "badgeNumber": "B-1042", "reason": "Review." });
    assert_eq!(
        decide("SuspendOfficer", suspend.clone(), None),
        Err(ErrorCode::AggregateNotFound)
    );
    let retired = with_status("retired");
    for (command, body) in [
        ("SuspendOfficer", suspend),
        ("ReinstateOfficer", json!({ "badgeNumber": "B-1042" })),
        (
            "ChangeOfficerRank",
            json!({ "badgeNumber": "B-1042", "rank": "chief" }),
        ),
        (
            "RetireOfficer",
            json!({ "badgeNumber": "B-1042", "retiredOn": "2026-01-01" }),
        ),
    ] {
        assert_eq!(
            decide(command, body, Some(&retired)),
            Err(ErrorCode::TransitionNotAllowed),
            "{command}"
        );
    }
}

#[test]
fn suspension_and_reinstatement_alternate() {
    let active = registered();
    let suspend = json!({ "badgeNumber": "B-1042", "reason": "Review." });
    let suspended = decide("SuspendOfficer", suspend.clone(), Some(&active)).expect("suspends");
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(
        decide("SuspendOfficer", suspend, Some(&suspended)),
        Err(ErrorCode::NoChange)
    );
    let reinstate = json!({ "badgeNumber": "B-1042" });
    assert_eq!(
        decide("ReinstateOfficer", reinstate.clone(), Some(&active)),
        Err(ErrorCode::NoChange)
    );
    let back = decide("ReinstateOfficer", reinstate, Some(&suspended)).expect("reinstates");
    assert_eq!(back, active);
}

#[test]
fn a_change_to_what_is_already_there_is_refused() {
    let active = registered();
    let same_rank = json!({ "badgeNumber": "B-1042", "rank": active["rank"] });
    assert_eq!(
        decide("ChangeOfficerRank", same_rank, Some(&active)),
        Err(ErrorCode::NoChange)
    );
    let same_email = json!({ "badgeNumber": "B-1042", "email": active["email"] });
    assert_eq!(
        decide("UpdateOfficerContact", same_email, Some(&active)),
        Err(ErrorCode::NoChange)
    );
    let new_phone = json!({ "badgeNumber": "B-1042", "phone": "+1 555 0100 22" });
    let changed = decide("UpdateOfficerContact", new_phone, Some(&active)).expect("changes");
    assert_eq!(changed["phone"], "+1 555 0100 22");
    assert_eq!(changed["email"], active["email"]);
}

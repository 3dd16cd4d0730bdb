//! The catalog loads what ships, takes an operator's entries from a directory, and refuses an
//! entry it cannot serve with a message naming that entry.

use std::path::Path;

use contracts::{Catalog, catalog::CommandPath};
use serde_json::{Value, json};

fn entry(command: &str, route: &str, subject: &str) -> Value {
    json!({
        "command": command,
        "version": 1,
        "description": "Notes a parking permit.",
        "schema": "note-permit.v1.json",
        "http": { "method": "POST", "path": route },
        "subject": subject,
        "topic": "ackgate.permit.events",
        "event": format!("{command}Requested"),
        "aggregate": { "type": "permit", "idPointer": "/permitId" },
        "path": "business-logic",
        "roles": ["clerk"],
        "example": { "permitId": "P-1", "plate": "ABC123" }
    })
}

fn permit_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:test:note-permit:v1",
        "type": "object",
        "additionalProperties": false,
        "required": ["permitId", "plate"],
        "properties": {
            "permitId": { "type": "string", "minLength": 1 },
            "plate": { "type": "string" },
            "note": { "type": "string" }
        }
    })
}

fn write(dir: &Path, folder: &str, file: &str, json: &Value) {
    let folder = dir.join(folder);
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join(file), json.to_string()).expect("write");
}

/// A catalog directory holding `entries` and the permit schema.
fn catalog_dir(entries: &[(&str, Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "schemas",
        "note-permit.v1.json",
        &permit_schema(),
    );
    for (file, entry) in entries {
        write(dir.path(), "catalog", file, entry);
    }
    dir
}

fn refusal(entries: &[(&str, Value)]) -> String {
    let dir = catalog_dir(entries);
    Catalog::load(Some(dir.path()))
        .expect_err("the catalog must be refused")
        .to_string()
}

#[test]
fn the_shipped_catalog_loads_and_serves_register_officer_through_its_service() {
    let catalog = Catalog::built_in().unwrap_or_else(|e| panic!("{e}"));
    let register = catalog
        .get("RegisterOfficer", 1)
        .expect("RegisterOfficer v1");
    assert_eq!(register.spec.path, CommandPath::BusinessLogic);
    assert_eq!(register.spec.aggregate.id_pointer, "/badgeNumber");
    let example = register.spec.example.as_ref().expect("an example");
    assert_eq!(register.spec.aggregate_id(example), Some("B-1042"));
}

#[test]
fn an_operator_adds_a_command_with_a_schema_and_an_entry() {
    let dir = catalog_dir(&[(
        "note-permit.v1.json",
        entry("NotePermit", "/v1/permits", "ackgate.cmd.permit.note"),
    )]);
    let catalog = Catalog::load(Some(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let permit = catalog.get("NotePermit", 1).expect("loaded");
    assert!(
        catalog
            .topics()
            .contains(&"ackgate.permit.events".to_owned())
    );
    assert!(
        catalog.get("RegisterOfficer", 1).is_some(),
        "shipped entries stay"
    );
    assert!(permit.validator.violations(&json!({ "plate": 7 })).len() >= 2);
}

#[test]
fn a_schema_that_does_not_compile_is_refused_naming_the_entry() {
    let dir = catalog_dir(&[(
        "note-permit.v1.json",
        entry("NotePermit", "/v1/permits", "ackgate.cmd.permit.note"),
    )]);
    let broken = json!({ "type": "object", "properties": { "permitId": { "type": 12 } } });
    write(dir.path(), "schemas", "note-permit.v1.json", &broken);
    let error = Catalog::load(Some(dir.path()))
        .expect_err("refused")
        .to_string();
    assert!(error.contains("note-permit.v1.json"), "{error}");
    assert!(error.contains("does not compile"), "{error}");
}

#[test]
fn a_route_or_subject_taken_by_another_command_is_refused() {
    let taken_route = entry("NotePermit", "/v1/officers", "ackgate.cmd.permit.note");
    let error = refusal(&[("note-permit.v1.json", taken_route)]);
    assert!(
        error.contains("NotePermit v1") && error.contains("/v1/officers"),
        "{error}"
    );

    let taken_subject = entry("NotePermit", "/v1/permits", "ackgate.cmd.officer.register");
    let error = refusal(&[("note-permit.v1.json", taken_subject)]);
    assert!(
        error.contains("subject ackgate.cmd.officer.register"),
        "{error}"
    );
}

#[test]
fn an_aggregate_pointer_the_schema_does_not_guarantee_is_refused() {
    for (pointer, why) in [
        ("/permitNumber", "is not a property"),
        ("/note", "does not require"),
        ("permitId", "must start with /"),
    ] {
        let mut bad = entry("NotePermit", "/v1/permits", "ackgate.cmd.permit.note");
        bad["aggregate"]["idPointer"] = json!(pointer);
        let error = refusal(&[("note-permit.v1.json", bad)]);
        assert!(
            error.contains("note-permit.v1.json") && error.contains(why),
            "{error}"
        );
    }
}

#[test]
fn a_missing_schema_an_invalid_example_and_unknown_members_are_refused() {
    let mut no_schema = entry("NotePermit", "/v1/permits", "ackgate.cmd.permit.note");
    no_schema["schema"] = json!("nowhere.json");
    assert!(refusal(&[("a.json", no_schema)]).contains("not found"));

    let mut bad_example = entry("NotePermit", "/v1/permits", "ackgate.cmd.permit.note");
    bad_example["example"] = json!({ "permitId": "P-1" });
    assert!(refusal(&[("a.json", bad_example)]).contains("example"));

    let mut unknown = entry("NotePermit", "/v1/permits", "ackgate.cmd.permit.note");
    unknown["priority"] = json!(1);
    assert!(refusal(&[("a.json", unknown)]).contains("unknown field"));
}

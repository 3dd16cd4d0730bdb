//! The catalog on real brokers: a command added by an entry and a schema alone, two versions
//! of `RegisterOfficer` side by side, a catalog that cannot be served refused at start, and
//! a command whose aggregate state cannot be read refused with 503 and nothing written.

use std::path::Path;

use contracts::headers::http;
use e2e_tests::{
    StackOptions, TestStack,
    stack::{event_position, officer},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PERMITS: &str = "/v1/permits";

/// A catalog directory with one schema-only command, `NotePermit`, on a topic of its own.
fn permit_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |folder: &str, file: &str, json: &Value| {
        let folder = dir.path().join(folder);
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join(file), json.to_string()).expect("write");
    };
    write(
        "schemas",
        "note-permit.v1.json",
        &json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "urn:example:note-permit:v1",
            "type": "object",
            "additionalProperties": false,
            "required": ["permitId", "plate"],
            "properties": {
                "permitId": { "type": "string", "pattern": "^P-[0-9]{1,8}$" },
                "plate": { "type": "string", "minLength": 2, "maxLength": 10 }
            }
        }),
    );
    write(
        "catalog",
        "note-permit.v1.json",
        &json!({
            "command": "NotePermit",
            "version": 1,
            "description": "Notes a parking permit.",
            "schema": "note-permit.v1.json",
            "http": { "method": "POST", "path": PERMITS },
            "subject": "example.cmd.permit.note",
            "topic": "example.permit.events",
            "event": "NotePermitRequested",
            "aggregate": { "type": "permit", "idPointer": "/permitId" },
            "path": "business-logic",
            "roles": ["clerk"]
        }),
    );
    dir
}

#[tokio::test]
async fn a_command_added_by_a_catalog_entry_alone_is_served_end_to_end() {
    let catalog = permit_catalog();
    let stack = TestStack::start(StackOptions {
        catalog_dir: Some(catalog.path().to_owned()),
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let body = json!({ "permitId": "P-17", "plate": "KX 4410" });
    let key = [
        (http::IDEMPOTENCY_KEY, "permit-1"),
        (http::CORRELATION_ID, "corr-permit-1"),
    ];
    let first = stack.send(PERMITS, &body, &key).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let position = event_position(&first);
    let reply = first.bytes().await.expect("body");
    let retry = stack.send(PERMITS, &body, &key).await;
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    assert_eq!(retry.headers()[http::IDEMPOTENT_REPLAYED], "true");
    assert_eq!(
        retry.bytes().await.expect("body"),
        reply,
        "the ledger serves it too"
    );

    let topic = stack.names.namespace.dotted("example.permit.events");
    let records = stack.read_topic_named(&topic).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, "P-17");
    assert_eq!(records[0].value["eventType"], "NotePermitRequested");
    assert_eq!(records[0].value["aggregateVersion"], 1);
    assert_eq!(records[0].value["payload"], body);

    let invalid = stack.send(PERMITS, &json!({ "permitId": "X" }), &[]).await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let status = stack.get_at("/v1/commands/corr-permit-1", &position).await;
    let status: Value = status.json().await.expect("status");
    assert_eq!(
        status["status"], "projected",
        "the projections know its event: {status}"
    );
    assert_eq!(status["commandType"], "NotePermit");
    assert_eq!(
        stack.read_topic_named(&topic).await.len(),
        1,
        "no event for the refusal"
    );
}

#[tokio::test]
async fn both_versions_of_register_officer_are_served_side_by_side() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");
    let mut v2 = officer("V-2001");
    v2["phone"] = json!("+1 314 555 0123");
    v2["precinct"] = json!("District 3");
    let as_v1 = stack.send("/v1/officers", &v2, &[]).await;
    assert_eq!(
        as_v1.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "v1 has no phone"
    );
    let bytes = serde_json::to_vec(&v2).expect("json");
    let version_2 = "application/json; version=2";
    let accepted = stack
        .post_raw("/v1/officers", bytes.clone(), version_2, &[])
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let v2_position = event_position(&accepted);
    let v1 = stack.send("/v1/officers", &officer("V-2002"), &[]).await;
    assert_eq!(v1.status(), StatusCode::ACCEPTED);
    let position = event_position(&v1);

    let unknown = stack
        .post_raw("/v1/officers", bytes, "application/json; version=3", &[])
        .await;
    assert_eq!(unknown.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let problem: Value = unknown.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1, 2")),
        "{problem}"
    );

    let versions: Vec<i64> = stack
        .read_topic()
        .await
        .iter()
        .map(|r| r.value["schemaVersion"].as_i64().expect("version"))
        .collect();
    assert_eq!(versions.iter().filter(|v| **v == 2).count(), 1);
    assert_eq!(versions.iter().filter(|v| **v == 1).count(), 1);
    let view: Value = stack
        .get_at("/v1/officers/V-2001", &v2_position)
        .await
        .json()
        .await
        .expect("officer");
    assert_eq!(view["precinct"], "District 3");
    assert_eq!(view["phone"], "+1 314 555 0123");
    let view: Value = stack
        .get_at("/v1/officers/V-2002", &position)
        .await
        .json()
        .await
        .expect("officer");
    assert_eq!(view["badgeNumber"], "V-2002", "{view}");
    assert!(view.get("precinct").is_none(), "{view}");
}

#[tokio::test]
async fn a_catalog_entry_that_cannot_be_served_stops_every_service_at_start() {
    let catalog = permit_catalog();
    let entry = catalog.path().join("catalog/note-permit.v1.json");
    let mut broken: Value =
        serde_json::from_slice(&std::fs::read(&entry).expect("read")).expect("json");
    broken["aggregate"]["idPointer"] = json!("/ownerName");
    std::fs::write(&entry, broken.to_string()).expect("write");
    let started = TestStack::start(StackOptions {
        catalog_dir: Some(catalog.path().to_owned()),
        ..StackOptions::default()
    })
    .await;
    let error = format!("{:#}", started.err().expect("refused"));
    assert!(
        error.contains("note-permit.v1.json") && error.contains("/ownerName"),
        "{error}"
    );
    edge_and_projections_refuse_it_too(catalog.path()).await;
}

async fn edge_and_projections_refuse_it_too(dir: &Path) {
    use clap::Parser;
    let mut edge = edge::Settings::parse_from(["ackgate-edge"]);
    edge.common.catalog_dir = Some(dir.to_owned());
    let error = edge::Application::build(edge)
        .await
        .err()
        .expect("edge refuses")
        .to_string();
    assert!(error.contains("note-permit.v1.json"), "{error}");
    let mut projections = projections::Settings::parse_from(["projections"]);
    projections.common.catalog_dir = Some(dir.to_owned());
    let error = projections::Application::build(projections)
        .await
        .err()
        .expect("projections refuse")
        .to_string();
    assert!(error.contains("note-permit.v1.json"), "{error}");
}

#[tokio::test]
async fn a_command_whose_aggregate_state_cannot_be_read_gets_503_and_writes_nothing() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");
    let jetstream = async_nats::jetstream::new(stack.nats_client.clone());
    jetstream
        .delete_key_value(&stack.names.aggregates_bucket)
        .await
        .expect("the state store is gone");
    let response = stack
        .register(
            &officer("S-5001"),
            &[(http::CORRELATION_ID, "corr-store-down")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "aggregate-store-unavailable");
    assert_eq!(problem["correlationId"], "corr-store-down");
    assert_eq!(stack.topic_end_offsets().await, 0, "nothing written");
}

#[tokio::test]
async fn the_edge_describes_its_catalog_including_an_operators_commands() {
    let catalog = permit_catalog();
    let stack = TestStack::start(StackOptions {
        catalog_dir: Some(catalog.path().to_owned()),
        bl_instances: 0,
        projections: false,
        ..StackOptions::default()
    })
    .await
    .expect("stack starts");
    let openapi: Value = stack.get("/openapi.json").await.json().await.expect("json");
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(
        openapi["paths"][PERMITS]["post"].is_object(),
        "the operator's command"
    );
    let register = &openapi["paths"]["/v1/officers"]["post"]["requestBody"]["content"];
    assert!(
        register["application/json; version=2"].is_object(),
        "{register}"
    );
    let asyncapi: Value = stack
        .get("/asyncapi.json")
        .await
        .json()
        .await
        .expect("json");
    let addresses: Vec<&str> = asyncapi["channels"]
        .as_object()
        .expect("channels")
        .values()
        .filter_map(|c| c["address"].as_str())
        .collect();
    assert!(
        addresses.contains(&"example.permit.events"),
        "{addresses:?}"
    );

    let page = stack.get("/docs").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("/docs/swagger-ui-bundle.js") && !html.contains("https://"),
        "no CDN"
    );
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let response = stack.get(asset).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(
            response.bytes().await.expect("asset").len() > 10_000,
            "{asset}"
        );
    }
}

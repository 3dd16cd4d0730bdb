//! OpenAPI 3.1 for the REST edge: a path per command route (every version as a media type of
//! its request body), the query routes, and the problem answers.

use serde_json::{Map, Value, json};

use super::{command_schema_name, component_schemas, examples, schema_ref, short_name};
use crate::{
    Catalog, CatalogEntry, ErrorCode,
    catalog::{CommandPath, HttpRoute},
    headers::{http, media},
    schema,
};

/// The OpenAPI document of an edge serving `catalog`, as JSON.
pub fn openapi(catalog: &Catalog, version: &str) -> Value {
    let mut paths = query_paths();
    for route in catalog.routes() {
        let versions = catalog.versions_on(&route);
        let method = route.method.as_str().to_ascii_lowercase();
        let item = paths.entry(route.path.clone()).or_insert_with(|| json!({}));
        item[method] = command_operation(&route, &versions);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Ackgate",
            "version": version,
            "description": "A command gateway: a command is answered 202 once its event is in Kafka, \
                and read models answer queries. Problems are RFC 9457 bodies carrying the \
                correlationId; quote it to support.",
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(catalog).into_iter().chain(query_answers()).collect::<Map<_, _>>(),
            "parameters": parameters(),
            "responses": {
                "Problem": {
                    "description": "The request was refused or failed; nothing was written unless the detail says otherwise.",
                    "content": { media::PROBLEM_JSON: {
                        "schema": schema_ref(&short_name(schema::PROBLEM_V1.id)),
                        "example": problem_example(),
                    } },
                },
            },
        },
    })
}

fn command_operation(route: &HttpRoute, versions: &[&CatalogEntry]) -> Value {
    let Some(first) = versions.first() else {
        return json!({});
    };
    let spec = &first.spec;
    let business_logic = spec.path == CommandPath::BusinessLogic;
    let mut content = Map::new();
    for (i, entry) in versions.iter().enumerate() {
        let media_type = match i {
            0 => media::JSON.to_owned(),
            _ => format!("{}; version={}", media::JSON, entry.spec.version),
        };
        let mut body = json!({ "schema": schema_ref(&command_schema_name(entry)) });
        if let Some(example) = &entry.spec.example {
            body["example"] = example.clone();
        }
        content.insert(media_type, body);
    }
    let mut parameters = vec![
        param_ref("IdempotencyKey"),
        param_ref("CorrelationId"),
        param_ref("Traceparent"),
    ];
    if business_logic {
        parameters.push(param_ref("IfMatch"));
    }
    let served: Vec<String> = versions
        .iter()
        .map(|e| e.spec.version.to_string())
        .collect();
    let description = format!(
        "{} Versions {} (media type parameter `version`; without it, the lowest). {} Roles: {}.{}",
        spec.description,
        served.join(", "),
        if business_logic {
            "Judged by its business-logic service on the aggregate's current state."
        } else {
            "Accepted by the edge itself (schema only, no business rules, no If-Match)."
        },
        spec.roles.join(", "),
        if spec.rules.is_empty() {
            String::new()
        } else {
            format!(" Rules: {}.", spec.rules.join(", "))
        }
    );
    json!({
        "operationId": spec.command,
        "summary": format!("{} ({} {})", spec.command, route.method.as_str(), route.path),
        "description": description,
        "tags": [spec.aggregate.kind],
        "parameters": parameters,
        "requestBody": { "required": true, "content": content },
        "responses": command_responses(business_logic),
    })
}

fn command_responses(business_logic: bool) -> Value {
    let mut responses = json!({
        "202": {
            "description": "Accepted: the event is in Kafka. Poll the Location for what happened next.",
            "headers": {
                "Location": { "schema": { "type": "string" }, "description": "The command's status." },
                "X-Correlation-Id": { "schema": { "type": "string" } },
                "Ackgate-Event-Position": {
                    "schema": { "type": "string" },
                    "description": "topic:partition:offset of the event; send it back as Ackgate-Min-Position to read your write."
                },
            },
            "content": { media::JSON: {
                "schema": schema_ref(&short_name(schema::COMMAND_ACCEPTED_V1.id)),
                "example": {
                    "correlationId": "6f1c1f62-4a8e-4c55-9d4e-1c2f8a9b0c11",
                    "commandId": "order-2026-0001",
                    "status": "accepted",
                    "event": { "topic": "ackgate.officer.events", "partition": 2, "offset": 41 },
                },
            } },
        },
    });
    let codes = if business_logic {
        &[
            "400", "404", "409", "412", "413", "415", "422", "503", "504",
        ][..]
    } else {
        &["400", "413", "415", "422", "503"][..]
    };
    for code in codes {
        responses[*code] = json!({ "$ref": "#/components/responses/Problem" });
    }
    responses
}

fn problem_example() -> Value {
    let code = ErrorCode::SchemaViolation;
    json!({
        "type": code.type_uri(),
        "title": code.title(),
        "status": code.status(),
        "detail": "1 schema violation(s) in RegisterOfficer v1",
        "code": code.as_str(),
        "correlationId": "6f1c1f62-4a8e-4c55-9d4e-1c2f8a9b0c11",
        "commandId": "order-2026-0001",
        "violations": [{
            "pointer": "/email",
            "keyword": "format",
            "message": "\"not an address\" is not a \"email\"",
        }],
    })
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn parameters() -> Value {
    let header = |name: &str, description: &str| {
        json!({ "name": name, "in": "header", "required": false, "description": description,
            "schema": { "type": "string" } })
    };
    json!({
        "IdempotencyKey": header("Idempotency-Key", "The commandId: a retry with the same key gets the same reply and never a second event. 1-128 of A-Z a-z 0-9 . _ : -"),
        "CorrelationId": header("X-Correlation-Id", "The tracing key, echoed everywhere. 1-128 of A-Z a-z 0-9 . _ : -"),
        "Traceparent": header(http::TRACEPARENT, "W3C trace context."),
        "IfMatch": header("If-Match", "Accept only while the aggregate has one of these versions, as the query's ETag gave them (\"3\"), or * for any."),
        "MinPosition": header("Ackgate-Min-Position", "Answer only once the read models applied this position (a 202's Ackgate-Event-Position)."),
    })
}

/// The query routes, answered by the projections.
fn query_paths() -> Map<String, Value> {
    let path = |name: &str| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } });
    let query = |name: &str, kind: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": kind } });
    let mut paths = Map::new();
    let mut add =
        |route: &str, summary: &str, answer: &str, example: Option<Value>, params: &[Value]| {
            paths.insert(
                route.to_owned(),
                query_item(summary, answer, example, params),
            );
        };
    add(
        "/v1/officers",
        "A page of officers by badge number.",
        "OfficerPage",
        None,
        &[
            query("rank", "string"),
            query("hiredFrom", "string"),
            query("hiredTo", "string"),
            query("limit", "integer"),
            query("cursor", "string"),
        ],
    );
    add(
        "/v1/officers/search",
        "Officers whose names match every word.",
        "OfficerPage",
        None,
        &[query("q", "string"), query("limit", "integer")],
    );
    add(
        "/v1/officers/{badgeNumber}",
        "One officer, its history and its version (ETag).",
        "OfficerDetail",
        examples::officer_detail(),
        &[path("badgeNumber")],
    );
    add(
        "/v1/officers/{badgeNumber}/observations",
        "An officer's observations, newest first.",
        "ObservationPage",
        examples::observation_page(),
        &[
            path("badgeNumber"),
            query("limit", "integer"),
            query("cursor", "string"),
        ],
    );
    add(
        "/v1/commands/{correlationId}",
        "What happened to a command.",
        "CommandStatus",
        examples::command_status(),
        &[path("correlationId")],
    );
    add(
        "/v1/commands/{correlationId}/timeline",
        "Every step of a command, from every component, for every request that carried it.",
        "CommandTimeline",
        examples::command_timeline(),
        &[path("correlationId")],
    );
    add(
        "/v1/timelines",
        "Commands, newest first, by commandId, aggregate, type, time and failure.",
        "TimelineSearchResults",
        None,
        &[
            query("commandId", "string"),
            query("aggregateId", "string"),
            query("commandType", "string"),
            query("from", "string"),
            query("to", "string"),
            query("failed", "boolean"),
            query("limit", "integer"),
        ],
    );
    add(
        "/v1/commands",
        "A command by its Idempotency-Key.",
        "CommandStatus",
        None,
        &[query("commandId", "string")],
    );
    add(
        "/v1/stats",
        "Read-model counts and projection lag.",
        "ProjectionStats",
        None,
        &[],
    );
    if let Some(officer) = paths.get_mut("/v1/officers/{badgeNumber}") {
        officer["get"]["responses"]["200"]["headers"] = json!({ "ETag": { "schema": { "type": "string" }, "description": "The officer's version, for If-Match." } });
    }
    paths
}

/// A query route answering the component schema `answer`.
fn query_item(summary: &str, answer: &str, example: Option<Value>, params: &[Value]) -> Value {
    let mut parameters = vec![param_ref("MinPosition")];
    parameters.extend(params.iter().cloned());
    let mut content = json!({ "schema": schema_ref(answer) });
    if let Some(example) = example {
        content["example"] = example;
    }
    json!({ "get": {
        "summary": summary,
        "tags": ["queries"],
        "parameters": parameters,
        "responses": {
            "200": { "description": summary, "content": { media::JSON: content } },
            "400": { "$ref": "#/components/responses/Problem" },
            "404": { "$ref": "#/components/responses/Problem" },
            "503": { "$ref": "#/components/responses/Problem" },
            "504": { "$ref": "#/components/responses/Problem" },
        },
    } })
}

/// Component names for the query answers, each a reference into the read-model schema.
pub(super) fn query_answers() -> Map<String, Value> {
    let id = schema::READ_MODELS_V1.id;
    [
        ("OfficerDetail", "officerDetail"),
        ("OfficerPage", "officerPage"),
        ("ObservationPage", "observationPage"),
        ("CommandStatus", "commandStatus"),
        ("CommandTimeline", "commandTimeline"),
        ("TimelineSearchResults", "timelineSearchResults"),
        ("ProjectionStats", "stats"),
    ]
    .into_iter()
    .map(|(name, def)| {
        (
            name.to_owned(),
            json!({ "$ref": format!("{id}#/$defs/{def}") }),
        )
    })
    .collect()
}

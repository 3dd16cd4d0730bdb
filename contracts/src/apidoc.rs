//! The API documents, built from the catalog: OpenAPI 3.1 for the REST edge (served at
//! `GET /openapi.json`) and AsyncAPI 3.0 for the NATS subjects and Kafka topics
//! (`docs/asyncapi.json`, and `GET /asyncapi.json`). Commands of an operator's catalog
//! directory appear in both, like the shipped ones.

mod asyncapi;
mod examples;
mod openapi;

pub use asyncapi::asyncapi;
pub use openapi::openapi;

use serde_json::{Map, Value};

use crate::{Catalog, CatalogEntry, schema};

/// The component name of a command version's body schema, e.g. `RegisterOfficer.v1`.
fn command_schema_name(entry: &CatalogEntry) -> String {
    format!("{}.v{}", entry.spec.command, entry.spec.version)
}

/// Every schema the documents reference, by component name: each command version's body,
/// the definitions they share, the envelope, the accepted reply and the problem.
fn component_schemas(catalog: &Catalog) -> Map<String, Value> {
    let mut schemas = Map::new();
    for document in catalog.documents() {
        let id = document
            .get("$id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let is_command = catalog
            .entries()
            .iter()
            .any(|e| e.schema.get("$id") == document.get("$id"));
        if !is_command {
            schemas.insert(short_name(id), document.clone());
        }
    }
    for entry in catalog.entries() {
        schemas.insert(command_schema_name(entry), entry.schema.clone());
    }
    for doc in schema::ALL {
        if let Ok(document) = serde_json::from_str::<Value>(doc.json) {
            schemas.entry(short_name(doc.id)).or_insert(document);
        }
    }
    schemas
}

/// A component name for a schema `$id`, from its last parts:
/// `urn:ackgate:schema:officer:common:v1` is `officer-common.v1`,
/// `urn:ackgate:schema:common:v1` is `common.v1`.
fn short_name(id: &str) -> String {
    let parts: Vec<&str> = id
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        [.., kind, name, version] if *kind != "schema" => format!("{kind}-{name}.{version}"),
        [.., name, version] => format!("{name}.{version}"),
        _ => id.to_owned(),
    }
}

/// A `$ref` to a component schema.
fn schema_ref(name: &str) -> Value {
    serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
}

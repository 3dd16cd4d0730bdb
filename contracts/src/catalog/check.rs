//! Checking catalog entries: each on its own (names, schema, aggregate pointer, example),
//! then all together (no two entries on one route, subject or event version).

use std::{collections::BTreeMap, sync::Arc};

use serde_json::Value;

use super::{Catalog, CatalogEntry, CatalogError, CommandPath, CommandSpec, Files};
use crate::schema::SchemaValidator;

/// Parses and checks every entry of `files`.
pub(super) fn entries(files: Files) -> Result<Catalog, CatalogError> {
    let mut schemas = BTreeMap::new();
    for (name, json) in &files.schemas {
        let document: Value = serde_json::from_str(json)
            .map_err(|e| CatalogError::new(format!("schema {name}"), e.to_string()))?;
        schemas.insert(name.clone(), document);
    }
    let references: Vec<Value> = schemas.values().cloned().collect();
    let mut entries = Vec::with_capacity(files.entries.len());
    for (file, json) in &files.entries {
        let spec: CommandSpec = serde_json::from_str(json)
            .map_err(|e| CatalogError::new(file.as_str(), e.to_string()))?;
        let entry = entry(spec, &schemas, &references)
            .map_err(|reason| CatalogError::new(file.as_str(), reason))?;
        entries.push(entry);
    }
    together(&entries)?;
    let documents = references
        .into_iter()
        .filter(|document| document.get("$id").is_some())
        .collect();
    Ok(Catalog { entries, documents })
}

fn entry(
    spec: CommandSpec,
    schemas: &BTreeMap<String, Value>,
    references: &[Value],
) -> Result<CatalogEntry, String> {
    names(&spec)?;
    let schema = schemas
        .get(&spec.schema)
        .ok_or_else(|| format!("schema file {:?} not found under schemas/", spec.schema))?
        .clone();
    let validator = SchemaValidator::compile_with(&spec.label(), &schema, references)
        .map_err(|e| e.to_string())?;
    aggregate_pointer(&schema, &spec.aggregate.id_pointer)?;
    if let Some(example) = &spec.example {
        let violations = validator.violations(example);
        if let Some(first) = violations.first() {
            return Err(format!(
                "the example breaks the schema at {:?}: {}",
                first.pointer, first.message
            ));
        }
    }
    Ok(CatalogEntry {
        spec,
        validator: Arc::new(validator),
        schema,
    })
}

/// Names that end up in routes, subjects, topics, headers and eventIds.
fn names(spec: &CommandSpec) -> Result<(), String> {
    let pascal = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars().all(|c| c.is_ascii_alphanumeric())
    };
    let token = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    if !pascal(&spec.command) || !pascal(&spec.event) {
        return Err("command and event names must be PascalCase letters and digits".to_owned());
    }
    if spec.version == 0 {
        return Err("versions start at 1".to_owned());
    }
    let path = &spec.http.path;
    let segments_ok = path
        .strip_prefix('/')
        .is_some_and(|rest| rest.split('/').all(|s| token(s, &['-', '_', '.'])));
    if !segments_ok {
        return Err(format!(
            "route path {path:?} must be /-separated segments of letters, digits, - _ . (no parameters)"
        ));
    }
    match (&spec.subject, spec.path) {
        (None, CommandPath::BusinessLogic) => {
            return Err(
                "a business-logic command needs the subject its service listens on".to_owned(),
            );
        }
        (Some(_), CommandPath::Direct) => {
            return Err("a direct command has no subject: the edge produces it itself".to_owned());
        }
        (Some(subject), _) if !subject.split('.').all(|s| token(s, &['-', '_'])) => {
            return Err(format!("subject {subject:?} is not a plain NATS subject"));
        }
        _ => {}
    }
    if spec.topic.len() > 200 || !token(&spec.topic, &['-', '_', '.']) {
        return Err(format!(
            "topic {:?} is not a valid Kafka topic name",
            spec.topic
        ));
    }
    if !token(&spec.aggregate.kind, &['-'])
        || spec.aggregate.kind != spec.aggregate.kind.to_ascii_lowercase()
    {
        return Err(format!(
            "aggregate type {:?} must be lowercase letters, digits and -",
            spec.aggregate.kind
        ));
    }
    if spec.roles.is_empty() {
        return Err("declare at least one role that may send the command".to_owned());
    }
    Ok(())
}

/// The pointer must lead, through `properties` the schema requires, to a string: every
/// valid body then has an aggregate id.
fn aggregate_pointer(schema: &Value, pointer: &str) -> Result<(), String> {
    let fail = |why: &str| format!("aggregate id pointer {pointer:?} {why}");
    let tokens = pointer
        .strip_prefix('/')
        .ok_or_else(|| fail("must start with /"))?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"));
    let mut at = schema;
    for token in tokens {
        let required = at
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(token.as_str())));
        at = at
            .get("properties")
            .and_then(|p| p.get(&token))
            .ok_or_else(|| fail("is not a property of the schema"))?;
        if !required {
            return Err(fail("names a property the schema does not require"));
        }
    }
    if at.get("type").and_then(Value::as_str) != Some("string") {
        return Err(fail("must name a property of type string"));
    }
    Ok(())
}

/// No two entries share a command version, a route version, a subject or an event version;
/// the versions of one command share its route, topic, event and aggregate.
fn together(entries: &[CatalogEntry]) -> Result<(), CatalogError> {
    for (i, entry) in entries.iter().enumerate() {
        let spec = &entry.spec;
        for other in entries[..i].iter().map(|e| &e.spec) {
            clash(spec, other).map_err(|reason| CatalogError::new(spec.label(), reason))?;
        }
    }
    Ok(())
}

fn clash(spec: &CommandSpec, other: &CommandSpec) -> Result<(), String> {
    let with = other.label();
    if let Some(subject) = &spec.subject
        && spec.subject == other.subject
    {
        return Err(format!("subject {subject} is also {with}'s"));
    }
    let same_version = spec.version == other.version;
    if spec.command == other.command {
        if same_version {
            return Err(format!("declared twice (also as {with})"));
        }
        let same_shape = spec.http == other.http
            && spec.path == other.path
            && spec.topic == other.topic
            && spec.event == other.event
            && spec.aggregate.kind == other.aggregate.kind;
        if !same_shape {
            return Err(format!(
                "versions of one command share their route, path, topic, event and aggregate type; {with} differs"
            ));
        }
        return Ok(());
    }
    if spec.http == other.http {
        return Err(format!(
            "route {} {} is also {with}'s",
            spec.http.method.as_str(),
            spec.http.path
        ));
    }
    if spec.event == other.event {
        return Err(format!("event type {} is also {with}'s", spec.event));
    }
    Ok(())
}

//! JSON Schemas (the files under `schemas/`) and a validator that reports every violation.

use jsonschema::{Registry, Validator, error::ValidationErrorKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ErrorCode, Problem, Violation};

/// A versioned schema document shipped with this crate.
#[derive(Debug, Clone, Copy)]
pub struct SchemaDoc {
    /// What it describes, for messages: e.g. `RegisterOfficer v1`.
    pub name: &'static str,
    /// The schema's `$id`.
    pub id: &'static str,
    /// The file's contents.
    pub json: &'static str,
}

/// Shared definitions (ids, event position).
pub const COMMON_V1: SchemaDoc = SchemaDoc {
    name: "common definitions v1",
    id: "urn:ackgate:schema:common:v1",
    json: include_str!("../schemas/common.v1.json"),
};
/// The `RegisterOfficer` command, version 1.
pub const REGISTER_OFFICER_V1: SchemaDoc = SchemaDoc {
    name: "RegisterOfficer v1",
    id: "urn:ackgate:schema:officer:register-officer:v1",
    json: include_str!("../schemas/register-officer.v1.json"),
};
/// The envelope of every event, version 1 (its payload is the command, see the catalog).
pub const EVENT_ENVELOPE_V1: SchemaDoc = SchemaDoc {
    name: "event envelope v1",
    id: "urn:ackgate:schema:event-envelope:v1",
    json: include_str!("../schemas/event-envelope.v1.json"),
};
/// The accepted reply.
pub const COMMAND_ACCEPTED_V1: SchemaDoc = SchemaDoc {
    name: "accepted reply v1",
    id: "urn:ackgate:schema:reply:command-accepted:v1",
    json: include_str!("../schemas/command-accepted.v1.json"),
};
/// The problem reply.
pub const PROBLEM_V1: SchemaDoc = SchemaDoc {
    name: "problem v1",
    id: "urn:ackgate:schema:reply:problem:v1",
    json: include_str!("../schemas/problem.v1.json"),
};

/// What the query routes answer.
pub const READ_MODELS_V1: SchemaDoc = SchemaDoc {
    name: "query answers v1",
    id: "urn:ackgate:schema:read-models:v1",
    json: include_str!("../schemas/read-models.v1.json"),
};

/// Shared officer definitions (badge number, rank, contact).
pub const OFFICER_COMMON_V1: SchemaDoc = SchemaDoc {
    name: "officer definitions v1",
    id: "urn:ackgate:schema:officer:common:v1",
    json: include_str!("../schemas/officer-common.v1.json"),
};

/// Every schema, so cross-references resolve offline.
pub const ALL: [SchemaDoc; 7] = [
    COMMON_V1,
    REGISTER_OFFICER_V1,
    EVENT_ENVELOPE_V1,
    COMMAND_ACCEPTED_V1,
    PROBLEM_V1,
    OFFICER_COMMON_V1,
    READ_MODELS_V1,
];

/// A schema or one of its references failed to compile: a defect in this crate, or in a
/// catalog entry's schema.
#[derive(Debug, thiserror::Error)]
#[error("schema {name} does not compile: {reason}")]
pub struct SchemaError {
    name: String,
    reason: String,
}

/// A compiled schema. Compile once at start-up and share; validation is then lock-free.
#[derive(Debug)]
pub struct SchemaValidator {
    validator: Validator,
    name: String,
}

impl SchemaValidator {
    /// Compiles a shipped `doc`, resolving references to the other shipped schemas.
    pub fn compile(doc: SchemaDoc) -> Result<Self, SchemaError> {
        let schema = parse(doc).map_err(|reason| SchemaError {
            name: doc.name.to_owned(),
            reason,
        })?;
        Self::compile_with(doc.name, &schema, &[])
    }

    /// Compiles `schema` (called `name` in messages), resolving references to the shipped
    /// schemas and to `references` (documents with an `$id`), with `format` assertions
    /// (email, date, uuid, ...) switched on.
    pub fn compile_with(
        name: &str,
        schema: &Value,
        references: &[Value],
    ) -> Result<Self, SchemaError> {
        let fail = |reason: String| SchemaError {
            name: name.to_owned(),
            reason,
        };
        let mut documents = ALL
            .iter()
            .map(|doc| Ok((doc.id.to_owned(), parse(*doc)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(fail)?;
        for reference in references {
            if let Some(id) = reference.get("$id").and_then(Value::as_str)
                && !documents.iter().any(|(known, _)| known == id)
            {
                documents.push((id.to_owned(), reference.clone()));
            }
        }
        let registry = documents
            .into_iter()
            .try_fold(Registry::new(), |registry, (id, document)| {
                registry.add(id, document).map_err(|e| e.to_string())
            })
            .and_then(|registry| registry.prepare().map_err(|e| e.to_string()))
            .map_err(fail)?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_registry(&registry)
            .build(schema)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            validator,
            name: name.to_owned(),
        })
    }

    /// What the schema describes, e.g. `RegisterOfficer v1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses `body`, validates it and reads it as `T`: the one way a command body is
    /// accepted, whichever service checks it.
    pub fn read<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, BodyRejection> {
        let json: Value = serde_json::from_slice(body).map_err(BodyRejection::Malformed)?;
        let violations = self.violations(&json);
        if !violations.is_empty() {
            return Err(BodyRejection::Violations(violations));
        }
        serde_json::from_value(json).map_err(BodyRejection::Unreadable)
    }

    /// Every violation of `instance`, in document order; empty when valid.
    pub fn violations(&self, instance: &Value) -> Vec<Violation> {
        // The valid path (nearly every request) skips collecting errors.
        if self.validator.is_valid(instance) {
            return Vec::new();
        }
        self.validator
            .iter_errors(instance)
            .map(|error| {
                let mut pointer = error.instance_path().to_string();
                if let ValidationErrorKind::Required { property } = error.kind() {
                    // Point at the missing member rather than at its parent object.
                    let name = property.as_str().unwrap_or_default();
                    pointer = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                }
                Violation {
                    pointer,
                    keyword: error.kind().keyword().to_owned(),
                    message: error.to_string(),
                }
            })
            .collect()
    }
}

/// Why a command body was refused.
#[derive(Debug)]
pub enum BodyRejection {
    /// Not JSON.
    Malformed(serde_json::Error),
    /// JSON that breaks the schema.
    Violations(Vec<Violation>),
    /// Schema-valid JSON that the typed command cannot hold: the schema and the type
    /// disagree, a defect.
    Unreadable(serde_json::Error),
}

impl BodyRejection {
    /// The problem answering a command refused for this reason; `command` names its schema
    /// (see [`SchemaValidator::name`]).
    pub fn into_problem(self, command: &str, correlation_id: &str) -> Problem {
        match self {
            Self::Malformed(e) => Problem::new(
                ErrorCode::MalformedJson,
                format!("body is not valid JSON: {e}"),
                correlation_id,
            ),
            Self::Violations(violations) => {
                let detail = format!("{} schema violation(s) in {command}", violations.len());
                Problem::new(ErrorCode::SchemaViolation, detail, correlation_id)
                    .with_violations(violations)
            }
            Self::Unreadable(e) => {
                tracing::error!(error = %e, command, "schema-valid command does not deserialize");
                Problem::new(
                    ErrorCode::Internal,
                    "the command could not be read",
                    correlation_id,
                )
            }
        }
    }
}

fn parse(doc: SchemaDoc) -> Result<Value, String> {
    serde_json::from_str(doc.json).map_err(|e| e.to_string())
}

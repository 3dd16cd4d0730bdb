//! JSON Schemas (the files under `schemas/`) and a validator that reports every violation.

use jsonschema::{Registry, Validator, error::ValidationErrorKind};
use serde_json::Value;

use crate::Violation;

/// A versioned schema document shipped with this crate.
#[derive(Debug, Clone, Copy)]
pub struct SchemaDoc {
    /// The schema's `$id`.
    pub id: &'static str,
    /// The file's contents.
    pub json: &'static str,
}

/// Shared definitions (ids, event position).
pub const COMMON_V1: SchemaDoc = SchemaDoc {
    id: "urn:ackgate:schema:common:v1",
    json: include_str!("../schemas/common.v1.json"),
};
/// The `RegisterOfficer` command, version 1.
pub const REGISTER_OFFICER_V1: SchemaDoc = SchemaDoc {
    id: "urn:ackgate:schema:officer:register-officer:v1",
    json: include_str!("../schemas/register-officer.v1.json"),
};
/// The `RegisterOfficerRequested` envelope, version 1.
pub const REGISTER_OFFICER_REQUESTED_V1: SchemaDoc = SchemaDoc {
    id: "urn:ackgate:schema:officer:register-officer-requested:v1",
    json: include_str!("../schemas/register-officer-requested.v1.json"),
};
/// The accepted reply.
pub const COMMAND_ACCEPTED_V1: SchemaDoc = SchemaDoc {
    id: "urn:ackgate:schema:reply:command-accepted:v1",
    json: include_str!("../schemas/command-accepted.v1.json"),
};
/// The problem reply.
pub const PROBLEM_V1: SchemaDoc = SchemaDoc {
    id: "urn:ackgate:schema:reply:problem:v1",
    json: include_str!("../schemas/problem.v1.json"),
};

/// Every schema, so cross-references resolve offline.
pub const ALL: [SchemaDoc; 5] = [
    COMMON_V1,
    REGISTER_OFFICER_V1,
    REGISTER_OFFICER_REQUESTED_V1,
    COMMAND_ACCEPTED_V1,
    PROBLEM_V1,
];

/// A schema or one of its references failed to compile: a defect in this crate.
#[derive(Debug, thiserror::Error)]
#[error("schema {id} does not compile: {reason}")]
pub struct SchemaError {
    id: &'static str,
    reason: String,
}

/// A compiled schema. Compile once at start-up and share; validation is then lock-free.
#[derive(Debug)]
pub struct SchemaValidator {
    validator: Validator,
}

impl SchemaValidator {
    /// Compiles `doc`, resolving references to the other shipped schemas, with `format`
    /// assertions (email, date, uuid, ...) switched on.
    pub fn compile(doc: SchemaDoc) -> Result<Self, SchemaError> {
        let fail = |reason: String| SchemaError { id: doc.id, reason };
        let registry = ALL
            .iter()
            .try_fold(Registry::new(), |registry, other| {
                registry
                    .add(other.id, parse(*other)?)
                    .map_err(|e| e.to_string())
            })
            .and_then(|registry| registry.prepare().map_err(|e| e.to_string()))
            .map_err(fail)?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_registry(&registry)
            .build(&parse(doc).map_err(fail)?)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self { validator })
    }

    /// Every violation of `instance`, in document order; empty when valid.
    pub fn violations(&self, instance: &Value) -> Vec<Violation> {
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

fn parse(doc: SchemaDoc) -> Result<Value, String> {
    serde_json::from_str(doc.json).map_err(|e| e.to_string())
}

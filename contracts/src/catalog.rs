//! The command catalog: every command the gateway serves, declared once.
//!
//! An entry (one JSON file under `catalog/`, per command and version) names the command's
//! schema, its HTTP route, NATS subject, Kafka topic and event type, where its aggregate id is
//! in the body, which path accepts it (a business-logic service, or the edge directly), the
//! roles that may send it and its named business rules. The edge builds its routes from it,
//! the business-logic services their endpoints, the projections their list of event types.
//!
//! The entries shipped here are compiled in; an operator adds commands of their own without
//! rebuilding by pointing `ACKGATE_CATALOG_DIR` at a directory laid out the same way
//! (`catalog/*.json` and `schemas/*.json`). Every entry is checked when the catalog loads
//! (see [`CatalogError`]): a service never starts with a catalog it cannot serve.

mod check;

use std::{collections::BTreeMap, path::Path, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::SchemaValidator;

/// `[(file name, contents)]` of files shipped in a folder of this crate.
macro_rules! shipped {
    ($folder:literal: $($file:literal),+ $(,)?) => {
        [$(($file, include_str!(concat!("../", $folder, "/", $file)))),+]
    };
}

/// Entries shipped with Ackgate.
const BUILT_IN_ENTRIES: [(&str, &str); 8] = shipped!("catalog":
    "register-officer.v1.json",
    "register-officer.v2.json",
    "update-officer-contact.v1.json",
    "change-officer-rank.v1.json",
    "suspend-officer.v1.json",
    "reinstate-officer.v1.json",
    "retire-officer.v1.json",
    "record-observation.v1.json",
);

/// Command schemas shipped with Ackgate (and the definitions they share), for entries to name.
const BUILT_IN_SCHEMAS: [(&str, &str); 9] = shipped!("schemas":
    "officer-common.v1.json",
    "register-officer.v1.json",
    "register-officer.v2.json",
    "update-officer-contact.v1.json",
    "change-officer-rank.v1.json",
    "suspend-officer.v1.json",
    "reinstate-officer.v1.json",
    "retire-officer.v1.json",
    "record-observation.v1.json",
);

/// One command version, as its catalog entry declares it. Names of subjects and topics are
/// base names: [`crate::Namespace::dotted`] puts them in a deployment's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandSpec {
    /// The command's name, e.g. `RegisterOfficer`.
    pub command: String,
    /// Its version, from 1; the body's schema and the event's `schemaVersion`.
    pub version: u32,
    /// What it does, for the API documents.
    pub description: String,
    /// File name of its JSON Schema under `schemas/`.
    pub schema: String,
    /// Where clients send it.
    pub http: HttpRoute,
    /// The NATS subject its business-logic service listens on (business-logic commands
    /// only: a direct command has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The Kafka topic its event goes to.
    pub topic: String,
    /// Its event type, e.g. `RegisterOfficerRequested`.
    pub event: String,
    /// The aggregate it changes.
    pub aggregate: AggregateSpec,
    /// Who accepts it.
    pub path: CommandPath,
    /// Roles that may send it.
    pub roles: Vec<String>,
    /// Business rules judged before it is accepted, by name (the handler implements them).
    #[serde(default)]
    pub rules: Vec<String>,
    /// A valid body, for the API documents (checked against the schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
}

/// The method and path of a command's route. Paths hold no parameters: the aggregate id is
/// in the body, at [`AggregateSpec::id_pointer`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRoute {
    /// `POST`, `PUT` or `PATCH`.
    pub method: HttpMethod,
    /// e.g. `/v1/officers`.
    pub path: String,
}

/// Methods a command may be sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[allow(missing_docs)]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    /// The method's name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
}

/// The aggregate a command changes, and where its id is in the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AggregateSpec {
    /// e.g. `officer`: also the domain, whose business-logic service owns the command.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 6901 pointer to the id in the body; a required string in the schema. The id is
    /// the Kafka record key, so one aggregate's events keep their order.
    pub id_pointer: String,
}

/// Who accepts a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandPath {
    /// Option B: the edge sends it over NATS to its domain's business-logic service, which
    /// judges its rules on the aggregate's current state, produces and replies.
    BusinessLogic,
    /// Option A: the edge checks its schema, produces and answers; no rules, no ledger.
    Direct,
}

impl CommandSpec {
    /// `RegisterOfficer v1`, for messages.
    pub fn label(&self) -> String {
        format!("{} v{}", self.command, self.version)
    }

    /// The aggregate id of a schema-valid `body`.
    pub fn aggregate_id<'a>(&self, body: &'a Value) -> Option<&'a str> {
        body.pointer(&self.aggregate.id_pointer)
            .and_then(Value::as_str)
    }
}

/// An entry the catalog cannot serve. The message names the entry, so an operator knows which
/// file to fix; services refuse to start with it.
#[derive(Debug, thiserror::Error)]
#[error("catalog entry {entry}: {reason}")]
pub struct CatalogError {
    /// The entry's file, or its command and version.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CatalogError {
    fn new(entry: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

/// A command version and its compiled schema.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// As declared.
    pub spec: CommandSpec,
    /// The body's schema, compiled.
    pub validator: Arc<SchemaValidator>,
    /// The schema document, for the API documents.
    pub schema: Value,
}

/// Every command the gateway serves, checked. Load once at start and share.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    /// Every schema document the entries may reference, with an `$id`.
    documents: Vec<Value>,
}

impl Catalog {
    /// The entries shipped with Ackgate.
    pub fn built_in() -> Result<Self, CatalogError> {
        Self::load(None)
    }

    /// The shipped entries plus those under `extra` (`catalog/*.json`, with their schemas in
    /// `schemas/*.json`), checked together.
    pub fn load(extra: Option<&Path>) -> Result<Self, CatalogError> {
        let mut files = Files::built_in()?;
        if let Some(dir) = extra {
            files.add_dir(dir)?;
        }
        check::entries(files)
    }

    /// Every entry, in file-name order (shipped first).
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Every command schema document and the shared definitions they reference, for the
    /// API documents.
    pub fn documents(&self) -> &[Value] {
        &self.documents
    }

    /// One command version.
    pub fn get(&self, command: &str, version: u32) -> Option<&CatalogEntry> {
        self.entries
            .iter()
            .find(|e| e.spec.command == command && e.spec.version == version)
    }

    /// The versions served on one route, lowest first.
    pub fn versions_on(&self, route: &HttpRoute) -> Vec<&CatalogEntry> {
        let mut versions: Vec<_> = self
            .entries
            .iter()
            .filter(|e| &e.spec.http == route)
            .collect();
        versions.sort_by_key(|e| e.spec.version);
        versions
    }

    /// Every distinct route, in order.
    pub fn routes(&self) -> Vec<HttpRoute> {
        let mut routes: Vec<_> = self.entries.iter().map(|e| e.spec.http.clone()).collect();
        routes.sort();
        routes.dedup();
        routes
    }

    /// Every distinct event topic (base names), in order.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<_> = self.entries.iter().map(|e| e.spec.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The entry whose event is `event_type` at `version`.
    pub fn by_event(&self, event_type: &str, version: u32) -> Option<&CatalogEntry> {
        self.entries
            .iter()
            .find(|e| e.spec.event == event_type && e.spec.version == version)
    }
}

/// Entry and schema files, before they are checked.
struct Files {
    /// `(file name, contents)` of each entry.
    entries: Vec<(String, String)>,
    /// Schema documents by file name.
    schemas: BTreeMap<String, String>,
}

impl Files {
    fn built_in() -> Result<Self, CatalogError> {
        let own = |(name, json): &(&str, &str)| ((*name).to_owned(), (*json).to_owned());
        Ok(Self {
            entries: BUILT_IN_ENTRIES.iter().map(own).collect(),
            schemas: BUILT_IN_SCHEMAS.iter().map(own).collect(),
        })
    }

    fn add_dir(&mut self, dir: &Path) -> Result<(), CatalogError> {
        for (name, json) in read_json_files(&dir.join("catalog"))? {
            if self.entries.iter().any(|(known, _)| *known == name) {
                return Err(CatalogError::new(
                    name,
                    "a shipped entry has this file name",
                ));
            }
            self.entries.push((name, json));
        }
        let schemas = dir.join("schemas");
        if schemas.is_dir() {
            for (name, json) in read_json_files(&schemas)? {
                if self.schemas.contains_key(&name) {
                    let reason = format!("schema file {name} shadows a shipped schema");
                    return Err(CatalogError::new(schemas.display().to_string(), reason));
                }
                self.schemas.insert(name, json);
            }
        }
        Ok(())
    }
}

/// `(file name, contents)` of every `*.json` file in `dir`, by name.
fn read_json_files(dir: &Path) -> Result<Vec<(String, String)>, CatalogError> {
    let fail = |e: std::io::Error| CatalogError::new(dir.display().to_string(), e.to_string());
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir).map_err(fail)? {
        let path = item.map_err(fail)?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, std::fs::read_to_string(&path).map_err(fail)?));
        }
    }
    files.sort();
    Ok(files)
}

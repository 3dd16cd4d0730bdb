//! Business rules: the one trait a command with rules implements, and the registry the
//! service checks against the catalog at start.
//!
//! A handler is a pure function of the command and its aggregate's current state, returning
//! the state after the command's event or a refusal. Pure, so that replaying the events of a
//! topic through the same handlers rebuilds the state (`ledger rebuild`). A command whose
//! catalog entry lists no rules needs no handler: only its schema is checked, and its
//! aggregate only counts versions.

use std::collections::HashMap;

use contracts::{Catalog, ErrorCode, catalog::CommandPath};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::domains;

/// Why a command was refused by a rule: the problem's code and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// e.g. [`ErrorCode::TransitionNotAllowed`].
    pub code: ErrorCode,
    /// What the client should know, in words.
    pub detail: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

/// One command's business rules. Implement it in one file under `domains/`, and register it
/// in [`Handlers::shipped`].
pub trait Rules: Send + Sync + 'static {
    /// The command's body as every version of its schema describes it.
    type Command: DeserializeOwned;
    /// The aggregate's state, shared by every command of its type.
    type State: Serialize + DeserializeOwned;

    /// The command's name in the catalog.
    const COMMAND: &'static str;

    /// The rules [`Self::decide`] judges, by the names the catalog entry lists.
    const RULES: &'static [&'static str];

    /// Judges `command` on the aggregate's `state` (`None`: it does not exist yet) and
    /// returns its state after the command's event.
    fn decide(command: Self::Command, state: Option<Self::State>) -> Result<Self::State, Refusal>;
}

/// A [`Rules`] implementation working on JSON, so handlers of any types sit in one map.
pub trait Handler: Send + Sync {
    /// See [`Rules::RULES`].
    fn rules(&self) -> &'static [&'static str];

    /// [`Rules::decide`] on JSON. A body or state the types cannot read is an internal
    /// error: the schema let it through, or the stored state is not this domain's.
    fn decide(&self, body: &Value, state: Option<&Value>) -> Result<Value, Refusal>;
}

struct Typed<R>(std::marker::PhantomData<R>);

impl<R: Rules> Handler for Typed<R> {
    fn rules(&self) -> &'static [&'static str] {
        R::RULES
    }

    fn decide(&self, body: &Value, state: Option<&Value>) -> Result<Value, Refusal> {
        let internal = |what: &str, e: serde_json::Error| {
            tracing::error!(error = %e, command = R::COMMAND, what, "does not match its type");
            Refusal::new(ErrorCode::Internal, format!("the {what} could not be read"))
        };
        let command = R::Command::deserialize(body).map_err(|e| internal("command", e))?;
        let state = state
            .map(R::State::deserialize)
            .transpose()
            .map_err(|e| internal("aggregate state", e))?;
        let next = R::decide(command, state)?;
        serde_json::to_value(next).map_err(|e| internal("new state", e))
    }
}

use serde::Deserialize as _;

/// The handlers of this build, by command name.
pub struct Handlers(HashMap<&'static str, Box<dyn Handler>>);

impl Handlers {
    /// Every handler shipped with Ackgate.
    pub fn shipped() -> Self {
        let mut handlers = Self(HashMap::new());
        domains::officer::register(&mut handlers);
        handlers
    }

    /// Adds the rules of one command.
    pub fn add<R: Rules>(&mut self) {
        self.0
            .insert(R::COMMAND, Box::new(Typed::<R>(std::marker::PhantomData)));
    }

    /// The handler of `command`, if it has rules.
    pub fn get(&self, command: &str) -> Option<&dyn Handler> {
        self.0.get(command).map(Box::as_ref)
    }

    /// Every business-logic command with rules has a handler judging exactly those rules, and
    /// every handler belongs to such a command: what the catalog says is what runs.
    pub fn check(&self, catalog: &Catalog) -> Result<(), String> {
        for entry in catalog.entries() {
            let spec = &entry.spec;
            let handler = self.get(&spec.command);
            let direct = spec.path == CommandPath::Direct;
            match handler {
                Some(_) if direct => {
                    return Err(format!(
                        "{}: rules are judged by a business-logic service, but the command is direct",
                        spec.label()
                    ));
                }
                None if !spec.rules.is_empty() => {
                    return Err(format!(
                        "{}: the catalog lists rules {:?} but no handler implements them",
                        spec.label(),
                        spec.rules
                    ));
                }
                Some(handler) if !same_rules(handler.rules(), &spec.rules) => {
                    return Err(format!(
                        "{}: the catalog lists rules {:?}, the handler judges {:?}",
                        spec.label(),
                        spec.rules,
                        handler.rules()
                    ));
                }
                _ => {}
            }
        }
        for command in self.0.keys() {
            if !catalog.entries().iter().any(|e| e.spec.command == *command) {
                return Err(format!(
                    "a handler exists for {command}, which the catalog does not declare"
                ));
            }
        }
        Ok(())
    }
}

fn same_rules(judged: &[&str], listed: &[String]) -> bool {
    let mut judged: Vec<&str> = judged.to_vec();
    let mut listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    judged.sort_unstable();
    listed.sort_unstable();
    judged == listed
}

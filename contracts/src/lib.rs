//! The single source of Ackgate's message shapes.
//!
//! Every name that two processes must agree on lives here and nowhere else: JSON Schemas
//! (versioned files under `schemas/`), the event envelope, the reply and problem bodies,
//! HTTP/NATS/Kafka header names, NATS subjects, Kafka topics (as base names, which [`Names`]
//! resolves in a deployment namespace) and error codes. Services depend on this crate; it
//! depends on none of them. Behaviour shared by the services (how they run, produce and
//! stop) lives in the `runtime` crate, not here.

pub mod apidoc;
pub mod catalog;
pub mod deadletter;
pub mod envelope;
pub mod errors;
pub mod headers;
pub mod ids;
pub mod namespace;
pub mod observation;
pub mod officer;
pub mod precondition;
pub mod reply;
pub mod schema;
pub mod status;
pub mod subjects;
pub mod timeline;
pub mod topics;

pub use catalog::{Catalog, CatalogEntry, CommandSpec};
pub use envelope::EventEnvelope;
pub use errors::ErrorCode;
pub use namespace::{Names, Namespace};
pub use reply::{CommandAccepted, EventPosition, Problem, Violation};

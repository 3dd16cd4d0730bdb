//! The REST edge: turns HTTP commands into NATS requests to the business-logic services and
//! HTTP queries into NATS requests to the projections. It holds no state and no business
//! rules: it assigns ids, checks that a body is JSON of an acceptable size, and maps replies
//! to HTTP statuses and RFC 9457 problem bodies.

pub mod config;
pub mod context;
pub mod error;
pub mod problem;
pub mod requester;
pub mod routes;
pub mod startup;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

//! Business-logic services: the NATS endpoints that validate commands, apply business rules
//! and write the resulting events to Kafka, replying only after Kafka acknowledged them.
//!
//! The first service is the officer service (`RegisterOfficer`). Several instances share the
//! load through a NATS queue group; the badge-uniqueness rule holds across all of them
//! because badges are claimed in a shared JetStream key/value bucket.

pub mod config;
pub mod error;
pub mod kafka;
pub mod officer;
pub mod registry;
pub mod service;
pub mod startup;

pub use config::Settings;
pub use error::{Error, Result};
pub use startup::Application;

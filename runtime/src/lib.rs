//! How every Ackgate service runs: its settings, how it logs, how it stops (within a grace
//! period), how it answers `/health` and `/ready`, and the NATS and Kafka plumbing (the
//! transactional producer, settling unknown outcomes, reading a topic to its end). The
//! shapes these carry come from `contracts`; this crate is behaviour, shared so that every
//! process presents the same operational contract to the people running it: the same
//! metrics, traces and log fields too.

mod args;
pub mod background;
mod health;
pub mod kafka;
pub mod metrics;
pub mod nats;
pub mod producer;
pub mod resolve;
mod shutdown;
mod stop;
pub mod telemetry;
pub mod timeline;
pub mod transactions;

pub use args::{CommonArgs, KafkaArgs, ProduceArgs, millis, on_off, secs};
pub use health::{Readiness, all_ready, health_router};
pub use shutdown::{shutdown_signal, spawn_signal_listener};
pub use stop::{Activity, Entered, run_until_stopped};
pub use telemetry::{LogFormat, Telemetry, init_cli_telemetry, init_telemetry};
pub use timeline::{Timeline, TimelineArgs, Trail};

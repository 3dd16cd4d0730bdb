//! Operational conventions shared by every Ackgate service: how it logs, how it stops, and
//! how it answers `/health` and `/ready`.

mod args;
mod health;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod nats;
#[cfg(feature = "kafka")]
pub mod producer;
mod shutdown;
mod telemetry;

pub use args::{CommonArgs, KafkaArgs, ProduceArgs, millis, secs};
pub use health::{Readiness, health_router};
pub use shutdown::{shutdown_signal, spawn_signal_listener};
pub use telemetry::{LogFormat, init_cli_telemetry, init_telemetry};

//! Operational conventions shared by every Ackgate service: how it logs, how it stops (within
//! a grace period), and how it answers `/health` and `/ready`.

mod args;
mod health;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod nats;
#[cfg(feature = "kafka")]
pub mod producer;
#[cfg(feature = "kafka")]
pub mod resolve;
mod shutdown;
mod stop;
mod telemetry;
#[cfg(feature = "kafka")]
pub mod transactions;

pub use args::{CommonArgs, KafkaArgs, ProduceArgs, millis, secs};
pub use health::{Readiness, all_ready, health_router};
pub use shutdown::{shutdown_signal, spawn_signal_listener};
pub use stop::{Activity, Entered, run_until_stopped};
pub use telemetry::{LogFormat, init_cli_telemetry, init_telemetry};

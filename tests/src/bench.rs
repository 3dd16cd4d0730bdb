//! The benchmark harness (`ackgate-bench`): open-loop load at fixed arrival rates with HDR
//! histograms, against the system and against the baselines a user would pick instead:
//! Option A (the edge producing directly), a bare producer and NATS request/reply; and
//! what observability (metrics, traces, timeline) costs Option B.

pub mod baselines;
pub mod client;
pub mod machine;
pub mod observability;
pub mod open_loop;
pub mod plot;
pub mod processes;
pub mod replay;
pub mod run;

//! The benchmark harness (`ackgate-bench`): open-loop load at fixed arrival rates with HDR
//! histograms, against the system and against the baselines a user would pick instead.

pub mod baselines;
pub mod memory;
pub mod open_loop;
pub mod option_b;
pub mod replay;
pub mod run;

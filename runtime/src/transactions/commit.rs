//! Committing a transaction through librdkafka itself: the one place Ackgate calls it directly.
//!
//! Why: rdkafka's `commit_transaction` first runs its own flush, and that flush, finding a
//! delivery report the producer's polling thread has handed over but not yet freed, polls for
//! a whole 100 ms (its poll waits out its timeout even after an event arrived). Every lane
//! commits right after its delivery reports, so it lost that race often: one command at a time
//! took p50 20 ms but p90 38–115 ms and p99 127–147 ms with transactions (BENCHMARKS.md).
//! librdkafka's `rd_kafka_commit_transaction` flushes by itself and waits on a condition, and a
//! `FutureProducer`'s own thread serves the events that flush needs.
#![allow(unsafe_code)]

use std::{ffi::CStr, fmt, time::Duration};

use rdkafka::{
    bindings,
    producer::{FutureProducer, Producer},
    types::RDKafkaErrorCode,
};

/// Why a commit failed, as librdkafka classifies it.
#[derive(Debug, Clone)]
pub(super) struct CommitFailure {
    code: RDKafkaErrorCode,
    description: String,
    /// The transaction must be aborted, and may then be retried: nothing of it was stored.
    pub(super) requires_abort: bool,
    /// The producer can do nothing more (fenced, or an unrecoverable error).
    fatal: bool,
}

impl CommitFailure {
    /// A commit whose outcome nobody learned (its task died): settled like a timeout.
    pub(super) fn unknown(description: String) -> Self {
        Self {
            code: RDKafkaErrorCode::Unknown,
            description,
            requires_abort: false,
            fatal: false,
        }
    }
}

impl fmt::Display for CommitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "commit failed: {} ({:?}", self.description, self.code)?;
        if self.fatal {
            write!(f, ", fatal")?;
        }
        if self.requires_abort {
            write!(f, ", requires abort")?;
        }
        write!(f, ")")
    }
}

/// Commits `producer`'s open transaction, waiting at most `timeout`. Blocking: run it off the
/// async workers.
pub(super) fn commit_transaction(
    producer: &FutureProducer,
    timeout: Duration,
) -> Result<(), CommitFailure> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the client pointer is valid while `producer` is borrowed; librdkafka allows a
    // commit from any thread while another thread polls the same producer.
    let error = unsafe {
        bindings::rd_kafka_commit_transaction(producer.client().native_ptr(), timeout_ms)
    };
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: `error` is a non-null error object this call owns; it is read, then destroyed
    // exactly once, and nothing read from it outlives it (the description is copied).
    let failure = unsafe {
        let failure = CommitFailure {
            code: RDKafkaErrorCode::from(bindings::rd_kafka_error_code(error)),
            description: CStr::from_ptr(bindings::rd_kafka_error_string(error))
                .to_string_lossy()
                .into_owned(),
            requires_abort: bindings::rd_kafka_error_txn_requires_abort(error) != 0,
            fatal: bindings::rd_kafka_error_is_fatal(error) != 0,
        };
        bindings::rd_kafka_error_destroy(error);
        failure
    };
    Err(failure)
}

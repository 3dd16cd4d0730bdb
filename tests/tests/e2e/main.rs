//! End-to-end tests of Ackgate against real nats-server and nisshi processes. Each test has
//! its own brokers, so tests run in parallel without sharing subjects or topics.

mod accept;
mod bl_instances;
mod direct;
mod idempotency;
mod kafka_outage;
mod pg_read_models;
mod pg_resilience;
mod postgres_harness;
mod projections;
mod read_models;
mod refusals;

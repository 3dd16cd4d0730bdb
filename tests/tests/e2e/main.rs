//! End-to-end tests of Ackgate against real nats-server and Apache Kafka processes. Each test
//! has its own NATS server and its own deployment namespace on the binary's shared Kafka (or,
//! when it stops Kafka, a Kafka of its own), so tests run in parallel without sharing
//! subjects, topics, buckets or consumer groups.

mod accept;
mod bl_instances;
mod catalog;
mod cli;
mod console;
mod direct;
mod exactly_one_record;
mod idempotency;
mod kafka_outage;
mod lifecycle;
mod observability;
mod pg_read_models;
mod pg_resilience;
mod postgres_harness;
mod projections;
mod read_models;
mod refusals;
mod timeline;

//! The deployment namespace: one prefix applied to every Kafka topic, NATS subject, service
//! name, queue group, key/value bucket, consumer group and transactional id, so that two
//! environments (staging and production, or two test runs) share one Kafka cluster and one
//! NATS server without seeing each other's messages.
//!
//! The names in [`crate::topics`] and [`crate::subjects`] are the *base* names; [`Names`]
//! holds them as one namespace resolves them, and services use only [`Names`]. The empty
//! namespace (the default) leaves every name as it is, so existing deployments keep their
//! topics and buckets.

use std::{fmt, str::FromStr};

use crate::{subjects, topics};

/// Longest namespace: topic, bucket and group names stay well under every broker's limit.
const MAX_LEN: usize = 32;

/// A deployment namespace (`ACKGATE_NAMESPACE`): empty, or 1–32 characters of `a-z 0-9 -`
/// starting with a letter. Those characters are valid in every kind of name it prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Namespace(String);

/// Why a namespace was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid namespace {0:?}: use 1-{MAX_LEN} characters of a-z, 0-9 and '-', starting with a letter (or leave it empty)"
)]
pub struct InvalidNamespace(String);

impl FromStr for Namespace {
    type Err = InvalidNamespace;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let valid = raw.is_empty()
            || (raw.len() <= MAX_LEN
                && raw.starts_with(|c: char| c.is_ascii_lowercase())
                && raw
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidNamespace(raw.to_owned()))
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Namespace {
    /// Whether this is the default, empty namespace.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `base` in this namespace, joined with `separator` (`.` for topics, subjects and
    /// groups, whose hierarchies are dotted; `_` for key/value buckets, which allow no dot;
    /// `-` for NATS service names).
    fn prefixed(&self, separator: char, base: &str) -> String {
        if self.0.is_empty() {
            base.to_owned()
        } else {
            format!("{}{separator}{base}", self.0)
        }
    }

    /// A Kafka topic, NATS subject, queue group, consumer group or transactional id.
    pub fn dotted(&self, base: &str) -> String {
        self.prefixed('.', base)
    }

    /// A JetStream key/value bucket (names allow `A-Z a-z 0-9 _ -` only).
    pub fn bucket(&self, base: &str) -> String {
        self.prefixed('_', base)
    }

    /// A NATS service-API name (names allow `A-Z a-z 0-9 _ -` only).
    pub fn service(&self, base: &str) -> String {
        self.prefixed('-', base)
    }
}

/// Every topic, subject, service, queue group and bucket name, resolved in one namespace.
/// Built once at start and shared; see the base names' docs for what each one carries.
#[derive(Debug, Clone)]
pub struct Names {
    /// The namespace these names are in.
    pub namespace: Namespace,
    /// [`topics::OFFICER_EVENTS`].
    pub officer_events: String,
    /// [`topics::OBSERVATION_EVENTS`].
    pub observation_events: String,
    /// [`subjects::QUERY_COMMAND_STATUS`].
    pub query_command_status: String,
    /// [`subjects::QUERY_OFFICER`].
    pub query_officer: String,
    /// [`subjects::QUERY_OFFICER_LIST`].
    pub query_officer_list: String,
    /// [`subjects::QUERY_OFFICER_SEARCH`].
    pub query_officer_search: String,
    /// [`subjects::QUERY_OBSERVATIONS`].
    pub query_observations: String,
    /// [`subjects::QUERY_PROJECTION_STATS`].
    pub query_projection_stats: String,
    /// [`subjects::ADMIN_DEAD_LETTERS_LIST`].
    pub admin_dead_letters_list: String,
    /// [`subjects::ADMIN_DEAD_LETTERS_REDRIVE`].
    pub admin_dead_letters_redrive: String,
    /// [`subjects::ADMIN_DEAD_LETTERS_DISCARD`].
    pub admin_dead_letters_discard: String,
    /// [`subjects::COMMAND_ACCEPTED`].
    pub command_accepted: String,
    /// [`subjects::COMMAND_PARKED`].
    pub command_parked: String,
    /// [`subjects::PROJECTIONS_SERVICE`].
    pub projections_service: String,
    /// [`subjects::PROJECTIONS_QUEUE_GROUP`].
    pub projections_queue_group: String,
    /// [`subjects::TIMELINE_STEPS`].
    pub timeline_steps: String,
    /// [`subjects::TIMELINE_STREAM`].
    pub timeline_stream: String,
    /// [`subjects::TIMELINE_CONSUMER`].
    pub timeline_consumer: String,
    /// [`subjects::QUERY_TIMELINE`].
    pub query_timeline: String,
    /// [`subjects::QUERY_TIMELINE_SEARCH`].
    pub query_timeline_search: String,
    /// [`subjects::AGGREGATES_BUCKET`].
    pub aggregates_bucket: String,
    /// [`subjects::COMMAND_LEDGER_BUCKET`].
    pub command_ledger_bucket: String,
    /// [`subjects::COMMAND_DLQ_BUCKET`].
    pub command_dlq_bucket: String,
}

impl Names {
    /// Every name in `namespace`.
    pub fn new(namespace: Namespace) -> Self {
        let ns = &namespace;
        Self {
            officer_events: ns.dotted(topics::OFFICER_EVENTS),
            observation_events: ns.dotted(topics::OBSERVATION_EVENTS),
            query_command_status: ns.dotted(subjects::QUERY_COMMAND_STATUS),
            query_officer: ns.dotted(subjects::QUERY_OFFICER),
            query_officer_list: ns.dotted(subjects::QUERY_OFFICER_LIST),
            query_officer_search: ns.dotted(subjects::QUERY_OFFICER_SEARCH),
            query_observations: ns.dotted(subjects::QUERY_OBSERVATIONS),
            query_projection_stats: ns.dotted(subjects::QUERY_PROJECTION_STATS),
            admin_dead_letters_list: ns.dotted(subjects::ADMIN_DEAD_LETTERS_LIST),
            admin_dead_letters_redrive: ns.dotted(subjects::ADMIN_DEAD_LETTERS_REDRIVE),
            admin_dead_letters_discard: ns.dotted(subjects::ADMIN_DEAD_LETTERS_DISCARD),
            command_accepted: ns.dotted(subjects::COMMAND_ACCEPTED),
            command_parked: ns.dotted(subjects::COMMAND_PARKED),
            projections_service: ns.service(subjects::PROJECTIONS_SERVICE),
            projections_queue_group: ns.dotted(subjects::PROJECTIONS_QUEUE_GROUP),
            timeline_steps: ns.dotted(subjects::TIMELINE_STEPS),
            timeline_stream: ns.bucket(subjects::TIMELINE_STREAM),
            timeline_consumer: ns.bucket(subjects::TIMELINE_CONSUMER),
            query_timeline: ns.dotted(subjects::QUERY_TIMELINE),
            query_timeline_search: ns.dotted(subjects::QUERY_TIMELINE_SEARCH),
            aggregates_bucket: ns.bucket(subjects::AGGREGATES_BUCKET),
            command_ledger_bucket: ns.bucket(subjects::COMMAND_LEDGER_BUCKET),
            command_dlq_bucket: ns.bucket(subjects::COMMAND_DLQ_BUCKET),
            namespace,
        }
    }
}

impl Names {
    /// The NATS service-API name of the business-logic service of `domain` (an aggregate
    /// type), e.g. `ackgate-officer`.
    pub fn domain_service(&self, domain: &str) -> String {
        let base = format!("{}{domain}", subjects::DOMAIN_SERVICE_PREFIX);
        self.namespace.service(&base)
    }

    /// The queue group its instances share, so each request reaches one of them.
    pub fn domain_queue_group(&self, domain: &str) -> String {
        let base = format!("{}{domain}", subjects::DOMAIN_SERVICE_PREFIX);
        self.namespace.dotted(&base)
    }
}

impl Default for Names {
    fn default() -> Self {
        Self::new(Namespace::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(raw: &str) -> Namespace {
        raw.parse().expect("a valid namespace")
    }

    #[test]
    fn the_empty_namespace_keeps_every_base_name() {
        let names = Names::default();
        assert_eq!(names.officer_events, topics::OFFICER_EVENTS);
        assert_eq!(names.command_ledger_bucket, subjects::COMMAND_LEDGER_BUCKET);
        assert_eq!(names.domain_service("officer"), "ackgate-officer");
    }

    #[test]
    fn a_namespace_prefixes_each_kind_of_name_with_its_own_separator() {
        let names = Names::new(ns("staging-2"));
        assert_eq!(names.officer_events, "staging-2.ackgate.officer.events");
        assert_eq!(
            names.domain_queue_group("officer"),
            "staging-2.ackgate-officer"
        );
        assert_eq!(
            names.command_ledger_bucket,
            "staging-2_ackgate_command_ledger"
        );
        assert_eq!(names.domain_service("officer"), "staging-2-ackgate-officer");
        assert_eq!(
            ns("staging-2").dotted("ackgate-projections"),
            "staging-2.ackgate-projections"
        );
    }

    #[test]
    fn names_that_would_break_a_subject_or_bucket_are_refused() {
        for bad in [
            "Prod",
            "1env",
            "a.b",
            "a_b",
            "a b",
            "a*",
            "-a",
            &"a".repeat(33),
        ] {
            assert!(bad.parse::<Namespace>().is_err(), "{bad:?} accepted");
        }
        assert!("a".repeat(32).parse::<Namespace>().is_ok());
        assert!("".parse::<Namespace>().is_ok_and(|n| n.is_empty()));
    }
}

//! Every metric family Ackgate records: its name, help, labels and buckets, defined once.
//! A group registers itself in the process's registry on first use.

use std::{sync::LazyLock, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::{enabled, with_registry};

/// Latency buckets: 0.5 ms to about 8 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

fn latencies<L: Clone + std::hash::Hash + Eq>() -> Latencies<L> {
    Family::new_with_constructor(latency)
}

/// A step of the business-logic pipeline, timed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// JSON Schema and the command's identity.
    Validation,
    /// Claiming the command in the idempotency ledger.
    Ledger,
    /// The aggregate's turn, its state loaded and the rules judged.
    Decision,
    /// The event written to Kafka and acknowledged.
    Produce,
    /// The reply recorded in the ledger and sent.
    Reply,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Ledger => "ledger",
            Self::Decision => "decision",
            Self::Produce => "produce",
            Self::Reply => "reply",
        }
    }
}

/// A transition of a command's entry in the idempotency ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerState {
    /// Claimed by an attempt.
    Pending,
    /// Its event is in Kafka and its reply recorded.
    Accepted,
    /// Kafka did not take its event: parked for re-drive.
    Parked,
    /// Refused: the claim is dropped.
    Forgotten,
}

impl LedgerState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Parked => "parked",
            Self::Forgotten => "forgotten",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    command: String,
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicOutcome {
    topic: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicPartition {
    topic: String,
    partition: i32,
}

/// The edge's HTTP requests.
pub struct HttpMetrics {
    requests: Latencies<RouteLabels>,
}

impl HttpMetrics {
    fn register(registry: &mut Registry) -> Self {
        let requests = latencies();
        registry.register(
            "ackgate_http_request_duration_seconds",
            "HTTP requests served by the edge, by method, route template and status (_count is the request count)",
            requests.clone(),
        );
        Self { requests }
    }

    /// One request served.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if !enabled() {
            return;
        }
        let labels = RouteLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

/// The business-logic services' commands.
pub struct CommandMetrics {
    handled: Latencies<CommandLabels>,
    stages: Latencies<StageLabels>,
    ledger: Family<StateLabels, Counter>,
    dead_letters: Gauge,
}

impl CommandMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            handled: latencies(),
            stages: latencies(),
            ledger: Family::default(),
            dead_letters: Gauge::default(),
        };
        registry.register(
            "ackgate_command_duration_seconds",
            "Commands handled by a business-logic service, by command type and outcome (accepted, replayed, or the error code); _count is the command count",
            metrics.handled.clone(),
        );
        registry.register(
            "ackgate_command_stage_duration_seconds",
            "Time spent in each stage of the command pipeline (validation, ledger, decision, produce, reply)",
            metrics.stages.clone(),
        );
        registry.register(
            "ackgate_ledger_transitions",
            "Idempotency-ledger entries moved to a state (pending, accepted, parked, forgotten)",
            metrics.ledger.clone(),
        );
        registry.register(
            "ackgate_command_dead_letters",
            "Commands parked in the command dead-letter queue, as last counted",
            metrics.dead_letters.clone(),
        );
        metrics
    }

    /// A command answered, with its outcome.
    pub fn handled(&self, command: &str, outcome: &str, elapsed: Duration) {
        if !enabled() {
            return;
        }
        let labels = CommandLabels {
            command: command.to_owned(),
            outcome: outcome.to_owned(),
        };
        let seconds = elapsed.as_secs_f64();
        self.handled.get_or_create(&labels).observe(seconds);
    }

    /// A stage of a command done.
    pub fn stage(&self, command: &str, stage: Stage, elapsed: Duration) {
        if !enabled() {
            return;
        }
        let labels = StageLabels {
            command: command.to_owned(),
            stage: stage.as_str(),
        };
        let seconds = elapsed.as_secs_f64();
        self.stages.get_or_create(&labels).observe(seconds);
    }

    /// A ledger entry moved to `state`.
    pub fn ledger(&self, state: LedgerState) {
        if enabled() {
            let labels = StateLabels {
                state: state.as_str(),
            };
            self.ledger.get_or_create(&labels).inc();
        }
    }

    /// The command dead-letter queue holds `depth` commands.
    pub fn dead_letters(&self, depth: i64) {
        if enabled() {
            self.dead_letters.set(depth);
        }
    }
}

/// Events written to Kafka (business-logic services, and the edge's direct commands).
pub struct ProduceMetrics {
    produced: Latencies<TopicOutcome>,
}

impl ProduceMetrics {
    fn register(registry: &mut Registry) -> Self {
        let produced = latencies();
        registry.register(
            "ackgate_kafka_produce_duration_seconds",
            "Kafka produce calls until acknowledged or failed, by topic and outcome (ok, or the error kind); _count with outcome!=\"ok\" counts the errors",
            produced.clone(),
        );
        Self { produced }
    }

    /// One produce call ended: `Ok`, or the kind of error.
    pub fn produced(&self, topic: &str, outcome: Result<(), &'static str>, elapsed: Duration) {
        if !enabled() {
            return;
        }
        let labels = TopicOutcome {
            topic: topic.to_owned(),
            outcome: outcome.err().unwrap_or("ok"),
        };
        let seconds = elapsed.as_secs_f64();
        self.produced.get_or_create(&labels).observe(seconds);
    }
}

/// The projections' consumers.
pub struct ConsumerMetrics {
    lag: Family<TopicPartition, Gauge>,
    applied: Family<TopicOutcome, Counter>,
}

impl ConsumerMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            lag: Family::default(),
            applied: Family::default(),
        };
        registry.register(
            "ackgate_consumer_lag_records",
            "Records of a partition not yet applied by this consumer (librdkafka's consumer_lag)",
            metrics.lag.clone(),
        );
        registry.register(
            "ackgate_projection_events",
            "Records the projections handled, by topic and outcome (registered, changed, recorded, superseded, duplicate, already-applied, parked)",
            metrics.applied.clone(),
        );
        metrics
    }

    /// `lag` records of `partition` are not yet applied.
    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        if enabled() {
            let labels = TopicPartition {
                topic: topic.to_owned(),
                partition,
            };
            self.lag.get_or_create(&labels).set(lag);
        }
    }

    /// A record of `topic` handled with `outcome`.
    pub fn applied(&self, topic: &str, outcome: &'static str) {
        if enabled() {
            let labels = TopicOutcome {
                topic: topic.to_owned(),
                outcome,
            };
            self.applied.get_or_create(&labels).inc();
        }
    }
}

/// Every service's NATS connection.
pub struct NatsMetrics {
    reconnects: Counter,
    disconnects: Counter,
}

impl NatsMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconnects: Counter::default(),
            disconnects: Counter::default(),
        };
        registry.register(
            "ackgate_nats_reconnects",
            "Times the NATS connection was re-established after a loss",
            metrics.reconnects.clone(),
        );
        registry.register(
            "ackgate_nats_disconnects",
            "Times the NATS connection was lost",
            metrics.disconnects.clone(),
        );
        metrics
    }

    /// The connection came back.
    pub fn reconnected(&self) {
        if enabled() {
            self.reconnects.inc();
        }
    }

    /// The connection was lost.
    pub fn disconnected(&self) {
        if enabled() {
            self.disconnects.inc();
        }
    }
}

macro_rules! group {
    ($(#[$doc:meta])* $name:ident: $group:ty) => {
        $(#[$doc])*
        pub fn $name() -> &'static $group {
            static GROUP: LazyLock<$group> = LazyLock::new(|| with_registry(<$group>::register));
            &GROUP
        }
    };
}

group!(
    /// The edge's HTTP metrics.
    http: HttpMetrics
);
group!(
    /// The business-logic services' command metrics.
    command: CommandMetrics
);
group!(
    /// Kafka produce metrics.
    produce: ProduceMetrics
);
group!(
    /// The projections' consumer metrics.
    consumer: ConsumerMetrics
);
group!(
    /// NATS connection metrics.
    nats: NatsMetrics
);

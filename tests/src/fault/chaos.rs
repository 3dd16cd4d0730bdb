//! The chaos: SIGKILLs a component in turn, keeps it down for a while and restarts it.
//!
//! With a three-node Kafka cluster a Kafka turn kills a node for its role, alternately the
//! leader of a partition of the officer topic and the active KRaft controller, and only
//! once every partition of every topic has all three replicas in sync again: at most one
//! node is ever missing, which the quorum and `min.insync.replicas=2` survive. (Two missing
//! nodes stop all writes; `tests/tests/cluster.rs` shows what clients see then.)

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::time::Instant;

use super::{
    FaultConfig,
    cluster::{Cluster, Component},
};

/// Longest wait for a restarted Kafka node to be back in every ISR before the next Kafka kill.
const RESYNC_WITHIN: Duration = Duration::from_secs(60);

/// Why a Kafka node was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KafkaRole {
    /// The single node of a one-node cluster.
    Single,
    /// The leader of a partition of the officer topic (one that is not the controller,
    /// when another node leads a partition).
    PartitionLeader,
    /// The active KRaft controller.
    Controller,
}

impl KafkaRole {
    /// The role's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::PartitionLeader => "partition-leader",
            Self::Controller => "controller",
        }
    }
}

/// What a killed Kafka node was when it was killed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTarget {
    /// Why it was picked.
    pub role: KafkaRole,
    /// The officer topic's partitions it led.
    pub led_partitions: Vec<i32>,
    /// Whether it was the active controller.
    pub controller: bool,
    /// How long the chaos waited for every replica to be in sync before killing it, ms.
    pub resync_wait_ms: u64,
}

/// One SIGKILL and restart.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kill {
    /// When, seconds after the chaos began.
    pub at_secs: f64,
    /// What was killed (`kafka-2`, `nats`, `bl-service-0`, ...).
    pub component: String,
    /// For a Kafka node: what it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaTarget>,
    /// How long it was down before its restart began, ms.
    pub down_ms: u64,
    /// How long the restart took (a broker: until it listened), ms.
    pub restart_ms: u64,
    /// The longest gap between 202s from the kill until 30 s later or the next kill, ms.
    pub stall_ms: f64,
    /// The stall had not ended when the clients stopped (left out of the stall figures).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stall_unfinished: bool,
}

impl Kill {
    /// The kind of kill stalls are grouped by: `kafka-partition-leader`, `kafka-controller`,
    /// `kafka` (one node), `bl-service`, `nats`, ...
    pub fn kind(&self) -> String {
        match &self.kafka {
            Some(t) if t.role != KafkaRole::Single => format!("kafka-{}", t.role.as_str()),
            Some(_) => "kafka".to_owned(),
            None => self
                .component
                .trim_end_matches(|c: char| c == '-' || c.is_ascii_digit())
                .to_owned(),
        }
    }
}

/// What the chaos did.
#[derive(Debug, Default)]
pub struct ChaosLog {
    /// Every kill, in order.
    pub kills: Vec<Kill>,
    /// Kafka turns passed over because the cluster did not get every replica back in sync.
    pub kafka_turns_skipped: u64,
}

/// Kills in turn until `until`, restarting each victim and any service that died on its own.
pub async fn run(
    cluster: &mut Cluster,
    config: &FaultConfig,
    started: Instant,
    until: Instant,
) -> Result<ChaosLog> {
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let rotation = rotation(cluster.components());
    let mut log = ChaosLog::default();
    let mut kafka_turns = 0;
    for turn in 0.. {
        let every = ms(config.kill_every);
        let pause = Duration::from_millis(rng.u64(every / 2..=every * 3 / 2));
        if Instant::now() + pause >= until {
            break;
        }
        tokio::time::sleep(pause).await;
        let (victim, kafka) = match rotation[turn % rotation.len()] {
            Component::Kafka(n) if cluster.kafka.size() == 1 => (Component::Kafka(n), single()),
            Component::Kafka(_) => {
                kafka_turns += 1;
                match pick_kafka(cluster, kafka_turns, until).await? {
                    Some((n, target)) => (Component::Kafka(n), Some(target)),
                    None => {
                        log.kafka_turns_skipped += 1;
                        continue;
                    }
                }
            }
            other => (other, None),
        };
        let kill = kill_and_restart(cluster, config, &mut rng, victim, kafka, started).await?;
        log.kills.push(kill);
        cluster.supervise()?;
    }
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    Ok(log)
}

fn single() -> Option<KafkaTarget> {
    Some(KafkaTarget {
        role: KafkaRole::Single,
        led_partitions: Vec::new(),
        controller: true,
        resync_wait_ms: 0,
    })
}

/// The components in the order of their turns, Kafka nodes spread among the others so that
/// a restarted node has a few other kills' time to catch up.
fn rotation(components: Vec<Component>) -> Vec<Component> {
    let (kafka, others): (Vec<_>, Vec<_>) = components
        .into_iter()
        .partition(|c| matches!(c, Component::Kafka(_)));
    let stride = others.len().div_ceil(kafka.len().max(1)).max(1);
    let mut order = Vec::new();
    let mut others = others.into_iter();
    for node in kafka {
        order.push(node);
        order.extend(others.by_ref().take(stride));
    }
    order.extend(others);
    order
}

async fn kill_and_restart(
    cluster: &mut Cluster,
    config: &FaultConfig,
    rng: &mut fastrand::Rng,
    victim: Component,
    kafka: Option<KafkaTarget>,
    started: Instant,
) -> Result<Kill> {
    tracing::info!(%victim, role = kafka.as_ref().map(|t| t.role.as_str()), "SIGKILL");
    let killed = Instant::now();
    cluster.kill(victim);
    tokio::time::sleep(downtime(rng, victim, config)).await;
    let restarting = Instant::now();
    cluster
        .restart(victim)
        .await
        .with_context(|| format!("{victim} restarts"))?;
    let restarted = Instant::now();
    if victim == Component::Nats {
        // Services reconnect on their own; give JetStream a moment before the next kill.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Kill {
        at_secs: (killed - started).as_secs_f64(),
        component: victim.to_string(),
        kafka,
        down_ms: ms(restarting - killed),
        restart_ms: ms(restarted - restarting),
        stall_ms: 0.0,
        stall_unfinished: false,
    })
}

/// The node to kill on Kafka turn `turn` of a three-node cluster, once every replica is in
/// sync: odd turns the leader of a partition of the officer topic (each partition in turn),
/// even turns the active controller. `None` when the cluster did not get there in time.
async fn pick_kafka(
    cluster: &Cluster,
    turn: usize,
    until: Instant,
) -> Result<Option<(usize, KafkaTarget)>> {
    let waiting = Instant::now();
    if !resynced(cluster, (waiting + RESYNC_WITHIN).min(until)).await {
        tracing::warn!("Kafka replicas not all in sync; passing over this Kafka turn");
        return Ok(None);
    }
    let controller = cluster.kafka.active_controller();
    let leaders = cluster
        .kafka
        .partition_leaders(&cluster.names.officer_events)
        .await?;
    let role = if turn % 2 == 1 {
        KafkaRole::PartitionLeader
    } else {
        KafkaRole::Controller
    };
    let victim = match role {
        KafkaRole::Controller => controller,
        _ => partition_leader(&leaders, controller, turn / 2),
    };
    let Some(victim) = victim else {
        tracing::warn!(
            ?role,
            ?leaders,
            ?controller,
            "no Kafka node holds the role; passing over this Kafka turn"
        );
        return Ok(None);
    };
    let target = KafkaTarget {
        role,
        led_partitions: leaders
            .iter()
            .filter(|(_, leader)| *leader == Some(victim))
            .map(|(partition, _)| *partition)
            .collect(),
        controller: controller == Some(victim),
        resync_wait_ms: ms(waiting.elapsed()),
    };
    Ok(Some((victim, target)))
}

/// The leader of partition `next` (or of the next one led by a node that is not the
/// controller, if any is), so leader kills and controller kills test different things.
fn partition_leader(
    leaders: &[(i32, Option<usize>)],
    controller: Option<usize>,
    next: usize,
) -> Option<usize> {
    let count = leaders.len().max(1);
    let from_next = (0..count).filter_map(|i| leaders.get((next + i) % count)?.1);
    let all: Vec<usize> = from_next.collect();
    all.iter()
        .copied()
        .find(|leader| Some(*leader) != controller)
        .or_else(|| all.first().copied())
}

/// Waits until every Kafka node is registered and every replica is in sync, or `deadline`.
async fn resynced(cluster: &Cluster, deadline: Instant) -> bool {
    loop {
        if cluster.kafka.fully_replicated().await.unwrap_or(false) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long `victim` stays down: Kafka sometimes longer than the produce timeout, so some
/// commands are refused and parked rather than delivered late.
fn downtime(rng: &mut fastrand::Rng, victim: Component, config: &FaultConfig) -> Duration {
    let longest = match victim {
        Component::Kafka(_) => ms(config.timings.produce_timeout) * 2,
        _ => ms(config.max_downtime),
    };
    Duration::from_millis(rng.u64(200..=longest.max(201)))
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_nodes_are_spread_among_the_other_components() {
        let components = vec![
            Component::Kafka(0),
            Component::Kafka(1),
            Component::Kafka(2),
            Component::Nats,
            Component::Bl(0),
            Component::Bl(1),
            Component::Projections,
            Component::Postgres,
        ];
        let order: Vec<String> = rotation(components)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            order,
            [
                "kafka-1",
                "nats",
                "bl-service-0",
                "kafka-2",
                "bl-service-1",
                "projections",
                "kafka-3",
                "postgres"
            ]
        );
    }

    #[test]
    fn a_partition_leader_kill_spares_the_controller_when_it_can() {
        let leaders = [(0, Some(2)), (1, Some(0)), (2, Some(1))];
        assert_eq!(partition_leader(&leaders, Some(2), 0), Some(0));
        assert_eq!(partition_leader(&leaders, Some(2), 1), Some(0));
        assert_eq!(partition_leader(&leaders, Some(2), 2), Some(1));
        let all_on_one = [(0, Some(1)), (1, Some(1)), (2, Some(1))];
        assert_eq!(partition_leader(&all_on_one, Some(1), 0), Some(1));
    }
}

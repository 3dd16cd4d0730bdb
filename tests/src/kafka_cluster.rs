//! Apache Kafka in KRaft mode as child JVMs: one combined broker+controller node, or three on
//! loopback (replication factor 3, `min.insync.replicas=2`, unclean leader election off), from
//! the jars `scripts/lib.sh` fetches from Maven Central. Each node keeps its ports and log
//! directory across a kill and restart, like a crashed and restarted server.
//!
//! A JVM takes seconds to start on 2 cores, so tests share one single-node cluster per test
//! binary ([`KafkaCluster::shared`]) and keep apart by deployment namespace; tests that stop
//! or pause Kafka start one of their own.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    producer::{BaseProducer, Producer},
};
use tempfile::TempDir;

use crate::brokers::{Process, free_port, wait_for_port_within};

/// A cluster id in Kafka's format (base64 of 16 bytes). Every cluster gets its own log
/// directories, so one fixed id serves them all and saves a JVM start per format.
const CLUSTER_ID: &str = "nQfctZ4iTJerPw0HoH__6Q";

/// Heap and collector for test brokers: the serial collector keeps the JVM to one GC thread
/// on a 2-core machine; `ACKGATE_KAFKA_HEAP_OPTS` overrides (the benchmark measures others).
const DEFAULT_JVM_OPTS: &str = "-Xms256m -Xmx768m -XX:+UseSerialGC";

/// Longest wait for a node to listen: a JVM start plus log recovery after a kill, on a busy
/// 2-core machine.
const JVM_START: Duration = Duration::from_secs(60);

/// Bound of one metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// One KRaft node: its ports, and its process while it runs.
struct Node {
    id: u32,
    port: u16,
    controller_port: u16,
    process: Option<Process>,
}

/// A running Apache Kafka cluster of one or three nodes.
pub struct KafkaCluster {
    nodes: Mutex<Vec<Node>>,
    dir: TempDir,
}

impl KafkaCluster {
    /// The single-node cluster this test binary shares, started on first use. Tests keep
    /// apart by namespace; the process is killed when the test binary exits.
    pub async fn shared() -> Result<Arc<Self>> {
        static SHARED: tokio::sync::OnceCell<Arc<KafkaCluster>> =
            tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_try_init(|| async { Ok(Arc::new(Self::start(1).await?)) })
            .await
            .cloned()
    }

    /// Formats and starts `size` nodes (1 or 3), and waits until every broker is registered.
    pub async fn start(size: u32) -> Result<Self> {
        anyhow::ensure!(size == 1 || size == 3, "a cluster has 1 or 3 nodes");
        let nodes = (1..=size)
            .map(|id| Node {
                id,
                port: free_port(),
                controller_port: free_port(),
                process: None,
            })
            .collect();
        let cluster = Self {
            nodes: Mutex::new(nodes),
            dir: tempfile::tempdir()?,
        };
        cluster.write_configs()?;
        cluster.format_all().await?;
        for index in 0..size as usize {
            cluster.spawn_node(index)?;
        }
        for port in cluster.ports() {
            wait_for_port_within(port, "Apache Kafka", JVM_START).await?;
        }
        cluster.wait_for_brokers(size as usize).await?;
        let bootstrap = cluster.bootstrap();
        tokio::task::spawn_blocking(move || warm_up(&bootstrap)).await??;
        Ok(cluster)
    }

    fn nodes(&self) -> MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes().iter().map(|n| n.port).collect()
    }

    /// How many nodes the cluster has.
    pub fn size(&self) -> usize {
        self.nodes().len()
    }

    /// `127.0.0.1:<port>,…`: every node's client listener.
    pub fn bootstrap(&self) -> String {
        let ports = self.ports();
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The OS process id of the first node, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.node_pid(0)
    }

    /// The OS process id of node `index`, while it runs.
    pub fn node_pid(&self, index: usize) -> Option<u32> {
        self.nodes().get(index)?.process.as_ref()?.pid()
    }

    /// The Kafka node id (1-based) of node `index`.
    pub fn node_id(&self, index: usize) -> u32 {
        index as u32 + 1
    }

    /// SIGKILLs every node.
    pub fn stop(&self) {
        for node in self.nodes().iter_mut() {
            node.process = None;
        }
    }

    /// SIGKILLs node `index`, as in a crash.
    pub fn stop_node(&self, index: usize) {
        if let Some(node) = self.nodes().get_mut(index) {
            node.process = None;
        }
    }

    /// Starts every stopped node again (same ports, same data) and waits until all brokers
    /// are registered.
    pub async fn restart(&self) -> Result<()> {
        let size = self.size();
        for index in 0..size {
            if self.node_pid(index).is_none() {
                self.spawn_node(index)?;
            }
        }
        for port in self.ports() {
            wait_for_port_within(port, "Apache Kafka", JVM_START).await?;
        }
        self.wait_for_brokers(size).await
    }

    /// Starts node `index` again (same port, same data) and waits until it listens.
    pub async fn restart_node(&self, index: usize) -> Result<()> {
        self.stop_node(index);
        self.spawn_node(index)?;
        let port = self.nodes()[index].port;
        wait_for_port_within(port, "Apache Kafka", JVM_START).await
    }

    /// Freezes every node (SIGSTOP): connections stay open, requests go unanswered.
    pub fn pause(&self) -> Result<()> {
        self.signal_all("STOP")
    }

    /// Resumes paused nodes (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal_all("CONT")
    }

    fn signal_all(&self, signal: &str) -> Result<()> {
        for node in self.nodes().iter() {
            node.process
                .as_ref()
                .context("a Kafka node is not running")?
                .signal(signal)?;
        }
        Ok(())
    }

    /// The index of the node that is the active KRaft controller (the metadata quorum's
    /// leader), or `None` while an election is under way. Clients are not told (in KRaft the
    /// metadata names a random broker as "controller"), so this reads the election state each
    /// running node persists in `__cluster_metadata-0/quorum-state` and takes the newest epoch.
    pub fn active_controller(&self) -> Option<usize> {
        let nodes = self.nodes();
        let (_, leader) = nodes
            .iter()
            .filter(|n| n.process.is_some())
            .filter_map(|n| quorum_state(&self.node_dir(n.id)))
            .max()?;
        nodes.iter().position(|n| Some(i64::from(n.id)) == leader)
    }

    /// The index of the node leading each partition of `topic`, by partition (`None`: no
    /// leader).
    pub async fn partition_leaders(&self, topic: &str) -> Result<Vec<(i32, Option<usize>)>> {
        let (bootstrap, topic) = (self.bootstrap(), topic.to_owned());
        let ids: Vec<i64> = self.nodes().iter().map(|n| i64::from(n.id)).collect();
        let metadata = tokio::task::spawn_blocking(move || {
            metadata_client(&bootstrap)?
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(anyhow::Error::from)
        })
        .await??;
        let topic = metadata.topics().first().context("topic missing")?;
        let leader = |id: i32| ids.iter().position(|node| *node == i64::from(id));
        Ok(topic
            .partitions()
            .iter()
            .map(|p| (p.id(), leader(p.leader())))
            .collect())
    }

    /// Whether every node is registered and every partition of every topic (the internal
    /// ones included) has all its replicas in sync: then losing one node loses no partition
    /// its second in-sync replica.
    pub async fn fully_replicated(&self) -> Result<bool> {
        let (bootstrap, size) = (self.bootstrap(), self.size());
        let metadata = tokio::task::spawn_blocking(move || {
            metadata_client(&bootstrap)?
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map_err(anyhow::Error::from)
        })
        .await??;
        let mut partitions = metadata.topics().iter().flat_map(|t| t.partitions());
        Ok(metadata.brokers().len() == size && partitions.all(all_in_sync))
    }

    fn node_dir(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    fn write_configs(&self) -> Result<()> {
        let nodes = self.nodes();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        for node in nodes.iter() {
            let dir = self.node_dir(node.id);
            std::fs::create_dir_all(&dir)?;
            let config = server_properties(node, &voters, &dir, nodes.len());
            std::fs::write(dir.join("server.properties"), config)?;
            std::fs::write(dir.join("log4j2.yaml"), LOG4J2_CONFIG)?;
        }
        Ok(())
    }

    /// `kafka.tools.StorageTool format` for every node at once (a JVM each).
    async fn format_all(&self) -> Result<()> {
        let ids: Vec<u32> = self.nodes().iter().map(|n| n.id).collect();
        let formats = ids.into_iter().map(|id| {
            let mut command = java_command(&self.node_dir(id));
            command
                .args(["kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c"])
                .arg(self.node_dir(id).join("server.properties"));
            tokio::process::Command::from(command).output()
        });
        for output in futures::future::join_all(formats).await {
            let output =
                output.context("cannot run java; run ./scripts/test, which installs it")?;
            if !output.status.success() {
                bail!(
                    "formatting the KRaft log directory failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        Ok(())
    }

    fn spawn_node(&self, index: usize) -> Result<()> {
        let mut nodes = self.nodes();
        let node = nodes.get_mut(index).context("no such Kafka node")?;
        let dir = self.node_dir(node.id);
        let mut command = java_command(&dir);
        command
            .args(jvm_opts())
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                dir.join("log4j2.yaml").display()
            ))
            .arg(format!("-Dkafka.logs.dir={}", dir.display()))
            .arg("kafka.Kafka")
            .arg(dir.join("server.properties"));
        node.process = Some(Process::spawn_watched(&mut command, dir.join("kafka.log"))?);
        Ok(())
    }

    /// Waits until the metadata lists `count` brokers: a node listens before it has joined.
    async fn wait_for_brokers(&self, count: usize) -> Result<()> {
        let bootstrap = self.bootstrap();
        tokio::task::spawn_blocking(move || registered_brokers(&bootstrap, count)).await?
    }
}

fn registered_brokers(bootstrap: &str, count: usize) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = consumer
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|m| m.brokers().len())
            .unwrap_or(0);
        if seen >= count {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("Apache Kafka: {seen} of {count} brokers registered after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates the group and transaction coordinators' internal topics, which Kafka does on
/// their first use: a test's consumer group would otherwise wait seconds for "coordinator
/// load in progress" and look like slow projections. Blocking.
fn warm_up(bootstrap: &str) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", "ackgate-test-warm-up")
        .create()?;
    producer.init_transactions(Duration::from_secs(60))?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ackgate-test-warm-up")
        .create()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        // Any answer of the group coordinator will do, including "no offset stored".
        if consumer
            .committed_offsets(partition_list()?, Duration::from_secs(2))
            .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("Apache Kafka's group coordinator did not answer within 60 s")
}

fn partition_list() -> Result<rdkafka::TopicPartitionList> {
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset("ackgate-test-warm-up", 0, rdkafka::Offset::Invalid)?;
    Ok(list)
}

/// `(leaderEpoch, leaderId)` from a node's persisted KRaft election state; no leader while
/// an election of that epoch is under way.
fn quorum_state(node_dir: &Path) -> Option<(i64, Option<i64>)> {
    let path = node_dir.join("data/__cluster_metadata-0/quorum-state");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let leader = state["leaderId"].as_i64().filter(|id| *id >= 0);
    Some((state["leaderEpoch"].as_i64()?, leader))
}

/// A partition with a leader and every replica in its ISR.
fn all_in_sync(partition: &rdkafka::metadata::MetadataPartition) -> bool {
    partition.error().is_none()
        && partition.leader() >= 0
        && partition.isr().len() == partition.replicas().len()
}

fn metadata_client(bootstrap: &str) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?)
}

/// `java -cp '<libs>/*'` in `dir`.
fn java_command(dir: &Path) -> Command {
    let java = std::env::var_os("ACKGATE_JAVA").unwrap_or_else(|| "java".into());
    let mut command = Command::new(java);
    command
        .arg("-cp")
        .arg(format!("{}/*", kafka_libs().display()))
        .current_dir(dir);
    command
}

fn jvm_opts() -> Vec<String> {
    std::env::var("ACKGATE_KAFKA_HEAP_OPTS")
        .unwrap_or_else(|_| DEFAULT_JVM_OPTS.to_owned())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The Apache Kafka version `scripts/kafka/pom.xml` pins (the one place it is written).
fn pinned_kafka_version() -> &'static str {
    const POM: &str = include_str!("../../scripts/kafka/pom.xml");
    POM.split_once("<kafka.version>")
        .and_then(|(_, rest)| rest.split_once("</kafka.version>"))
        .map_or("unknown", |(version, _)| version.trim())
}

/// `ACKGATE_KAFKA_LIBS` if set, else `~/.cache/ackgate/kafka-<pinned version>/libs`, which
/// `scripts/lib.sh` fills.
fn kafka_libs() -> PathBuf {
    if let Some(dir) = std::env::var_os("ACKGATE_KAFKA_LIBS") {
        return dir.into();
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(format!(
            ".cache/ackgate/kafka-{}/libs",
            pinned_kafka_version()
        ))
}

/// A node's `server.properties`. One node keeps the internal topics at one replica; three
/// replicate everything three times and refuse writes with fewer than two in sync.
fn server_properties(node: &Node, voters: &str, dir: &Path, size: usize) -> String {
    let (replicas, min_isr) = if size >= 3 { (3, 2) } else { (1, 1) };
    format!(
        "process.roles=broker,controller
node.id={id}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.quorum.voters={voters}
log.dirs={logs}
num.partitions=3
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=3
transaction.state.log.num.partitions=3
log.segment.bytes=67108864
",
        id = node.id,
        port = node.port,
        cport = node.controller_port,
        logs = dir.join("data").display(),
    )
}

/// Broker logs at INFO to the node's `kafka.log` (the child's stdout).
const LOG4J2_CONFIG: &str = "Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: \"[%d] %p %m (%c)%n\"
  Loggers:
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.clients
        level: WARN
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
";

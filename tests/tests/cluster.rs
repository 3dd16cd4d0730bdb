//! A three-node Apache Kafka cluster (replication factor 3, `min.insync.replicas=2`, unclean
//! leader election off) that loses two nodes: no partition can have two in-sync replicas, so
//! no command may be accepted. Every answer is a 503 `kafka-unavailable` with `Retry-After`
//! (or a 504), never a 202; once the nodes are back, the same commands (same
//! Idempotency-Key) are accepted with exactly one committed record each.

use std::{collections::BTreeMap, time::Duration};

use e2e_tests::{
    fault::cluster::{Cluster, ClusterOptions, Component, ServiceTimings},
    stack::officer,
};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;

/// How long commands are sent while two nodes are down.
const OUTAGE: Duration = Duration::from_secs(10);

/// Concurrent clients during the outage.
const CLIENTS: u8 = 4;

/// One answer, as a client sees it.
#[derive(Debug)]
struct Seen {
    command_id: String,
    badge: String,
    status: u16,
    retry_after: Option<String>,
    content_type: Option<String>,
    code: Option<String>,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_fewer_than_two_in_sync_replicas_nothing_is_accepted_and_retries_converge() {
    e2e_tests::init_test_tracing();
    let began = Instant::now();
    let logs = tempfile::tempdir().expect("a log directory");
    let mut cluster = Cluster::start(
        env!("CARGO_BIN_EXE_ackgate-fault").as_ref(),
        logs.path(),
        &options(),
    )
    .await
    .expect("a three-node cluster and the services start");
    let edge = cluster.edge_url();
    let warm_up = Instant::now() + Duration::from_secs(60);
    let warm_up = accept(&edge, "isr-warm-up", "ISW-000000", warm_up).await;
    assert_eq!(
        warm_up, 202,
        "the stack accepts commands with every node up"
    );

    eprintln!("{:?}: started and accepting", began.elapsed());
    cluster.kill(Component::Kafka(1));
    cluster.kill(Component::Kafka(2));
    let seen = send_during(&edge, OUTAGE).await;

    eprintln!("with one Kafka node of three: {}", describe(&seen));
    assert!(!seen.is_empty(), "commands were sent during the outage");
    for answer in &seen {
        assert_refused_for_now(answer);
    }

    let (one, two) = (cluster.kafka.restart_node(1), cluster.kafka.restart_node(2));
    let (one, two) = futures::future::join(one, two).await;
    one.and(two).expect("the nodes come back");
    eprintln!("{:?}: nodes back", began.elapsed());
    let deadline = Instant::now() + Duration::from_secs(60);
    let retries = seen
        .iter()
        .map(|s| accept(&edge, &s.command_id, &s.badge, deadline));
    let statuses = futures::future::join_all(retries).await;
    for (answer, status) in seen.iter().zip(statuses) {
        assert_eq!(status, 202, "{} accepted on retry", answer.command_id);
    }
    eprintln!("{:?}: every command accepted", began.elapsed());
    let records = read_topic(&cluster).await;
    let mut per_command: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &records {
        let command_id = record.headers.get(contracts::headers::message::COMMAND_ID);
        *per_command
            .entry(command_id.map_or("", String::as_str))
            .or_default() += 1;
    }
    for command_id in seen
        .iter()
        .map(|s| s.command_id.as_str())
        .chain(["isr-warm-up"])
    {
        assert_eq!(
            per_command.get(command_id),
            Some(&1),
            "exactly one committed record for {command_id}"
        );
    }
    assert_eq!(
        per_command.len(),
        seen.len() + 1,
        "no record of anything else"
    );
    cluster.supervise().expect("supervision");
    assert_eq!(cluster.unexpected_exits, 0, "no service died on its own");
}

fn options() -> ClusterOptions {
    ClusterOptions {
        bl_instances: 1,
        timings: ServiceTimings {
            produce_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(10),
        },
        kafka_nodes: 3,
        store: projections::StoreKind::Memory,
        direct_edge: false,
    }
}

/// Every answer to fresh commands sent by [`CLIENTS`] clients for `outage`, one at a time each.
async fn send_during(edge: &str, outage: Duration) -> Vec<Seen> {
    let until = Instant::now() + outage;
    let clients = (0..CLIENTS).map(|client| async move {
        let mut seen = Vec::new();
        for n in 0.. {
            if Instant::now() >= until {
                break;
            }
            let badge = format!("IS{}-{n:06}", char::from(b'A' + client));
            seen.push(send(edge, &format!("isr-{client}-{n}"), &badge).await);
        }
        seen
    });
    futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Sends the command `command_id`, registering `badge`, once.
async fn send(edge: &str, command_id: &str, badge: &str) -> Seen {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{edge}/v1/officers"))
        .header(contracts::headers::http::IDEMPOTENCY_KEY, command_id)
        .json(&officer(badge))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the edge answers");
    let header = |name| {
        let value = response.headers().get(name)?;
        Some(value.to_str().ok()?.to_owned())
    };
    let (retry_after, content_type) = (header(RETRY_AFTER), header(CONTENT_TYPE));
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    Seen {
        command_id: command_id.to_owned(),
        badge: badge.to_owned(),
        status,
        retry_after,
        content_type,
        code: body["code"].as_str().map(str::to_owned),
        took: started.elapsed(),
    }
}

/// Retries `command_id` (same key, same body) until a final answer or `deadline`.
async fn accept(edge: &str, command_id: &str, badge: &str, deadline: Instant) -> u16 {
    loop {
        let seen = send(edge, command_id, badge).await;
        if seen.status < 500 || Instant::now() >= deadline {
            return seen.status;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn assert_refused_for_now(seen: &Seen) {
    match seen.status {
        503 => {
            assert_eq!(seen.code.as_deref(), Some("kafka-unavailable"), "{seen:?}");
            assert!(
                seen.retry_after.is_some(),
                "503 without Retry-After: {seen:?}"
            );
            assert_eq!(
                seen.content_type.as_deref(),
                Some("application/problem+json"),
                "{seen:?}"
            );
        }
        504 => {}
        _ => panic!("with one in-sync replica a command was answered {seen:?}"),
    }
}

/// Counts of status, code and `Retry-After`, and the slowest answer.
fn describe(seen: &[Seen]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in seen {
        let key = format!("{} {:?} Retry-After {:?}", s.status, s.code, s.retry_after);
        *counts.entry(key).or_default() += 1;
    }
    let slowest = seen.iter().map(|s| s.took).max().unwrap_or_default();
    format!("{counts:?}; slowest answer {slowest:?}")
}

async fn read_topic(cluster: &Cluster) -> Vec<e2e_tests::kafka::Record> {
    let (bootstrap, topic) = (
        cluster.kafka.bootstrap(),
        cluster.names.officer_events.clone(),
    );
    tokio::task::spawn_blocking(move || e2e_tests::kafka::read_all(&bootstrap, &topic))
        .await
        .expect("the reader runs")
        .expect("the topic reads back")
}

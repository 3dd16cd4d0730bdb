//! The short fault run: load through the edge while every broker and service is SIGKILLed
//! (PostgreSQL: crash-stopped) and restarted, then the exactly-once checks. The long run is `scripts/fault`.

use std::time::Duration;

use e2e_tests::fault::{self, FaultConfig, cluster::ServiceTimings};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_fault_run_keeps_every_promise() {
    e2e_tests::init_test_tracing();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_secs());
    let config = FaultConfig {
        binary: env!("CARGO_BIN_EXE_ackgate-fault").into(),
        duration: Duration::from_secs(40),
        clients: 8,
        bl_instances: 2,
        kafka_nodes: 1,
        // A JVM restart takes 10 to 20 s on a busy 2-core machine: a kill every ~2 s still
        // reaches every component within the 40 s.
        kill_every: Duration::from_millis(2000),
        max_downtime: Duration::from_millis(1000),
        seed,
        timings: ServiceTimings {
            produce_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(10),
        },
        settle_within: Duration::from_secs(120),
    };

    let report = fault::run(config).await.expect("the fault run completes");

    eprint!("{}", fault::summary(&report));
    assert_eq!(
        report.verdict.violations,
        Vec::<String>::new(),
        "seed {seed}"
    );
    for component in [
        "kafka-1",
        "nats",
        "bl-service-0",
        "bl-service-1",
        "projections",
        "postgres",
    ] {
        assert!(
            report.kills.get(component).is_some_and(|n| *n >= 1),
            "{component} was killed: {:?}",
            report.kills
        );
    }
    assert!(report.verdict.accepted_commands > 0, "load went through");
    assert!(
        report.verdict.accepted_changes > 0,
        "lifecycle changes were decided under faults too"
    );
    assert_eq!(
        report.kafka_kills.get("single"),
        report.kills.get("kafka-1")
    );
    assert!(report.stalls.acceptances > 0, "202s were timed");
    assert!(
        report.verdict.refused_commands > 0,
        "refusals were exercised"
    );
}

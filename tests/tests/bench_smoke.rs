//! The benchmark harness in miniature (seconds, on its own stack), so it cannot rot. No
//! timing is asserted: figures belong in BENCHMARKS.md, not in tests.

use std::time::Duration;

use e2e_tests::{
    bench::run::{self, BenchConfig, Target},
    fault::cluster::Cluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_every_phase() {
    e2e_tests::init_test_tracing();
    let logs = tempfile::tempdir().expect("log dir");
    let options = run::bench_cluster(1);
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ackgate-bench"));
    let cluster = Cluster::start(&binary, logs.path(), &options)
        .await
        .expect("stack starts");
    let target = Target::of(&cluster);
    let config = BenchConfig {
        rates: vec![50.0, 100.0],
        step: Duration::from_secs(1),
        sustain: Duration::from_secs(2),
        latency_run: Duration::from_secs(1),
        baseline: Duration::from_secs(1),
        replay_events: 2000,
    };
    let report = run::run(&target, &config)
        .await
        .expect("the benchmark runs");
    assert_eq!(report.search.len(), 2, "both search steps ran");
    let sustained = report.sustained.as_ref().expect("a sustained run");
    assert_eq!(sustained.errors, 0, "{:?}", sustained.error_samples);
    assert!(sustained.ok > 0);
    assert_eq!(report.latency.len(), 3, "25, 50 and 75 % runs");
    let lag = report.projection_lag.as_ref().expect("a lag run");
    assert_eq!(lag.load.errors, 0, "{:?}", lag.load.error_samples);
    assert!(lag.samples > 0 && lag.lag.is_some());
    assert!(report.kafka_ceiling.completed > 0 && report.nats_ceiling.completed > 0);
    assert_eq!(report.replay.events, 2000);
    assert_eq!(
        report.rss_mib_at_max.len(),
        3,
        "{:?}",
        report.rss_mib_at_max
    );
    assert!(report.markdown().contains("Option B sustained"));
    serde_json::to_string(&report).expect("the report serializes");
}

//! The benchmark harness in miniature (seconds per phase, each on a fresh stack as in a real
//! run), so it cannot rot. No timing is asserted: figures belong in BENCHMARKS.md, not in
//! tests.

use std::time::Duration;

use e2e_tests::{
    bench::{
        observability::{self, ObservabilityConfig, Setting},
        run::{self, BenchConfig, Stacks},
    },
    fault::cluster::ClusterOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_every_phase() {
    e2e_tests::init_test_tracing();
    let logs = tempfile::tempdir().expect("log dir");
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ackgate-bench"));
    let mut stacks = Stacks::fresh(binary, logs.path().to_owned(), run::bench_cluster(1, 1));
    let config = BenchConfig {
        // Steps long enough that a debug build's commit latency stays within the 5 % of the
        // step a search step may lose to its tail.
        rates: vec![10.0, 20.0],
        step: Duration::from_secs(6),
        sustain: Duration::from_secs(2),
        latency_run: Duration::from_secs(1),
        baseline: Duration::from_secs(1),
        replay_events: 2000,
        warm_up: Duration::from_millis(200),
    };
    let report = run::run(&mut stacks, &config)
        .await
        .expect("the benchmark runs");
    for (name, path, on_the_path) in [
        ("option B", Some(&report.option_b), "edge"),
        ("option A", report.direct.as_ref(), "edge-direct"),
    ] {
        let path = path.unwrap_or_else(|| panic!("{name} measured"));
        assert_eq!(path.search.len(), 2, "{name}: both search steps ran");
        let sustained = path.sustained.as_ref().expect("a sustained run");
        assert_eq!(sustained.errors, 0, "{name}: {:?}", sustained.error_samples);
        assert!(sustained.ok > 0);
        assert_eq!(path.latency.len(), 3, "{name}: 25, 50 and 75 % runs");
        for run in &path.latency {
            assert_eq!(run.errors, 0, "{name}: {:?}", run.error_samples);
        }
        // Every service, both brokers and the client were sampled; the path's edge, the
        // broker and the client spent CPU on it (the other path's edge may idle).
        let processes = &path.processes_at_max;
        assert_eq!(processes.len(), 7, "{processes:?}");
        assert!(
            processes.values().all(|usage| usage.peak_rss_mib > 0.0),
            "{processes:?}"
        );
        for busy in [on_the_path, "kafka-1", "bench client"] {
            assert!(processes[busy].cpu_ms > 0.0, "{name} {busy}: {processes:?}");
        }
    }
    let lag = report.projection_lag.as_ref().expect("a lag run");
    assert_eq!(lag.load.errors, 0, "{:?}", lag.load.error_samples);
    assert!(lag.samples > 0 && lag.lag.is_some());
    assert!(report.kafka_ceiling.completed > 0 && report.nats_ceiling.completed > 0);
    assert_eq!(report.replay.events, 2000);
    let table = report.markdown();
    for row in [
        "sustained accepted/s",
        "Option B / (a)",
        "(a) / (b)",
        "projection lag",
        "edge-direct",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    serde_json::to_string(&report).expect("the report serializes");
    let plot = logs.path().join("latency.svg");
    e2e_tests::bench::plot::latency_svg(&report, &plot).expect("the plot is drawn");
    let svg = std::fs::read_to_string(&plot).expect("the plot is written");
    assert!(
        svg.contains("<svg") && svg.contains("Option B p99") && svg.contains("(a) Option A p50")
    );

    // `ackgate-bench load`: one fixed rate against a running edge, acceptance, then lag.
    let target = stacks.next("load").await.expect("a stack");
    let second = Duration::from_secs(1);
    let accept = run::fixed_rate(&target.edge, "LA", 20.0, second, false).await;
    let accept = accept
        .expect("a load run")
        .accept
        .expect("acceptance measured");
    assert!(accept.ok > 0 && accept.errors == 0, "{accept:?}");
    let lag = run::fixed_rate(&target.edge, "LB", 20.0, second, true).await;
    let lag = lag
        .expect("a lag run")
        .projection_lag
        .expect("lag measured");
    assert!(lag.samples > 0 && lag.load.errors == 0, "{lag:?}");
}

/// `ackgate-bench observability` in miniature: one round of each setting on one stack, each
/// with its fixed-rate run, search and sustained run, and proof that the switches took
/// effect (metrics served, spans at the collector, timeline notices only when on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observability_benchmark_measures_both_settings() {
    e2e_tests::init_test_tracing();
    let logs = tempfile::tempdir().expect("log dir");
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ackgate-bench"));
    let options = ClusterOptions {
        direct_edge: false,
        ..run::bench_cluster(1, 1)
    };
    let config = ObservabilityConfig {
        pairs: 1,
        settings: vec![Setting::Off, Setting::On],
        rates: vec![10.0],
        step: Duration::from_secs(6),
        sustain: Duration::from_secs(2),
        latency_rates: vec![10.0],
        latency_run: Duration::from_secs(2),
        warm_up: Duration::from_millis(200),
        broker_warm_up: Duration::from_millis(200),
        warm_up_round: true,
    };
    let report = observability::run(&binary, logs.path(), &options, &config)
        .await
        .expect("the observability benchmark runs");
    let warm_up = report.warm_up_round.as_ref().map(|r| (r.number, r.setting));
    assert_eq!(warm_up, Some((0, Setting::Off)), "reported, not counted");
    let settings: Vec<Setting> = report.rounds.iter().map(|r| r.setting).collect();
    assert_eq!(settings, [Setting::Off, Setting::On]);
    assert_eq!((report.off.rounds, report.on.rounds), (1, 1));
    for round in &report.rounds {
        let name = round.setting.name();
        let sustained = round.sustained.as_ref().expect("a sustained run");
        assert_eq!(sustained.errors, 0, "{name}: {:?}", sustained.error_samples);
        let fixed = &round.latency[0];
        assert!(
            fixed.run.ok > 0 && fixed.run.errors == 0,
            "{name}: {fixed:?}"
        );
        for busy in ["edge", "bl-service-0", "kafka-1", "otel collector"] {
            assert!(
                fixed.processes.contains_key(busy),
                "{name} {busy}: {fixed:?}"
            );
        }
        let (evidence, on) = (&round.evidence, round.setting == Setting::On);
        assert_eq!(evidence.metrics_served, on, "{name}: {evidence:?}");
        assert_eq!(evidence.trace_bytes > 0, on, "{name}: {evidence:?}");
        assert_eq!(evidence.timeline_notices > 0, on, "{name}: {evidence:?}");
    }
    assert!(report.off.accepted_per_second.is_some() && report.on.accepted_per_second.is_some());
    let table = report.markdown();
    for row in [
        "| warm-up, not counted | off |",
        "| 1 | off |",
        "| 2 | on |",
        "sustained accepted/s",
        "all processes",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    serde_json::to_string(&report).expect("the report serializes");
}

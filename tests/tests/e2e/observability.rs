//! Operators' view of the system, each service a process of its own: its `/metrics` count
//! what it did and pass `promtool check metrics`; one command's trace, exported to a real
//! OpenTelemetry Collector, holds joined spans from every service; and every JSON log line
//! of a request names its correlationId, commandId, trace id and span id.

use std::{path::Path, time::Duration};

use contracts::headers::http;
use e2e_tests::{
    StackOptions, TestStack, eventually,
    metrics::{promtool_check, scrape, value},
    otel::{Collector, ExportedSpan},
    services::ServiceProcesses,
    stack::officer,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn binary() -> &'static Path {
    env!("CARGO_BIN_EXE_ackgate-fault").as_ref()
}

async fn brokers_only() -> TestStack {
    let options = StackOptions {
        bl_instances: 0,
        projections: false,
        ..StackOptions::default()
    };
    TestStack::start(options).await.expect("stack starts")
}

/// POSTs a registration until a BL service takes it (it may still be joining NATS).
async fn register(stack: &TestStack, edge: &str, body: &Value, headers: &[(&str, &str)]) -> u16 {
    eventually(Duration::from_secs(30), "a BL service answers", || async {
        let mut request = stack.http.post(format!("{edge}/v1/officers")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let status = request.send().await.ok()?.status();
        (status != StatusCode::SERVICE_UNAVAILABLE).then_some(status.as_u16())
    })
    .await
}

/// GETs `path` until it answers 200 with `status: projected`.
async fn wait_projected(stack: &TestStack, url: &str, headers: &[(&str, &str)]) {
    eventually(Duration::from_secs(30), "the command projected", || async {
        let mut request = stack.http.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body: Value = request.send().await.ok()?.json().await.ok()?;
        (body["status"] == "projected").then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_service_counts_what_it_did_and_its_metrics_pass_promtool() {
    let stack = brokers_only().await;
    let logs = tempfile::tempdir().expect("temp dir");
    let services = ServiceProcesses::start(&stack, binary(), &[], logs.path())
        .await
        .expect("services start");
    let edge = services.url("ackgate-edge");
    let topic = stack.names.officer_events.as_str();

    let ok = [(http::CORRELATION_ID, "m-ok")];
    assert_eq!(register(&stack, edge, &officer("B-7001"), &ok).await, 202);
    let invalid = json!({"badgeNumber": "B-7002"});
    assert_eq!(register(&stack, edge, &invalid, &[]).await, 422);
    wait_projected(&stack, &format!("{edge}/v1/commands/m-ok"), &[]).await;

    let edge_metrics = scrape(&stack.http, edge).await.expect("edge metrics");
    let http_count = "ackgate_http_request_duration_seconds_count";
    let posted = |status| {
        [
            ("method", "POST"),
            ("route", "/v1/officers"),
            ("status", status),
        ]
    };
    assert_eq!(value(&edge_metrics, http_count, &posted("202")), Some(1.0));
    assert_eq!(value(&edge_metrics, http_count, &posted("422")), Some(1.0));

    let bl = scrape(&stack.http, services.url("bl-service"))
        .await
        .expect("bl metrics");
    let handled = "ackgate_command_duration_seconds_count";
    let outcome = |o| [("command", "RegisterOfficer"), ("outcome", o)];
    assert_eq!(value(&bl, handled, &outcome("accepted")), Some(1.0));
    assert_eq!(value(&bl, handled, &outcome("schema-violation")), Some(1.0));
    let stages = "ackgate_command_stage_duration_seconds_count";
    for stage in ["validation", "ledger", "decision", "produce", "reply"] {
        let count = value(&bl, stages, &[("stage", stage)]);
        assert!(count >= Some(1.0), "stage {stage}: {count:?}");
    }
    let produced = [("topic", topic), ("outcome", "ok")];
    let produce_count = "ackgate_kafka_produce_duration_seconds_count";
    assert_eq!(value(&bl, produce_count, &produced), Some(1.0));
    let ledger = "ackgate_ledger_transitions_total";
    assert_eq!(value(&bl, ledger, &[("state", "accepted")]), Some(1.0));
    assert!(bl.contains("# TYPE ackgate_command_dead_letters gauge"));

    let projections_url = services.url("projections");
    let applied = [("topic", topic), ("outcome", "registered")];
    let lag = eventually(Duration::from_secs(20), "consumer lag reported", || async {
        let text = scrape(&stack.http, projections_url).await.ok()?;
        value(&text, "ackgate_consumer_lag_records", &[("topic", topic)]).map(|lag| (lag, text))
    })
    .await;
    let (lag, projections) = lag;
    assert_eq!(lag, 0.0, "caught up");
    let events = "ackgate_projection_events_total";
    assert_eq!(value(&projections, events, &applied), Some(1.0));

    for (service, text) in [
        ("edge", &edge_metrics),
        ("bl", &bl),
        ("projections", &projections),
    ] {
        assert!(!text.contains("m-ok"), "{service}: no ids in labels");
        promtool_check(text).unwrap_or_else(|e| panic!("{service}: {e}"));
    }
}

/// The one span of `trace` named `name` from `service`.
fn span<'a>(trace: &'a [ExportedSpan], service: &str, name: &str) -> &'a ExportedSpan {
    let found: Vec<_> = trace
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "one {service} span {name:?} in {trace:#?}");
    found[0]
}

#[tokio::test]
async fn one_trace_follows_a_command_through_every_service_and_every_log_line_names_it() {
    let stack = brokers_only().await;
    let collector = Collector::start().await.expect("collector starts");
    let logs = tempfile::tempdir().expect("temp dir");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("ACKGATE_LOG_FORMAT", "json".to_owned()),
    ];
    let services = ServiceProcesses::start(&stack, binary(), &env, logs.path())
        .await
        .expect("services start");
    let edge = services.url("ackgate-edge");
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let names = &stack.names;

    // A caller that did not sample its trace: the services follow its decision.
    let unsampled_id = uuid::Uuid::new_v4().simple().to_string();
    let unsampled = format!("00-{unsampled_id}-{client_span}-00");
    let not_traced = [
        (http::CORRELATION_ID, "t-unsampled"),
        (http::TRACEPARENT, unsampled.as_str()),
    ];
    assert_eq!(
        register(&stack, edge, &officer("B-7100"), &not_traced).await,
        202
    );

    let command = [
        (http::CORRELATION_ID, "t-cmd"),
        (http::IDEMPOTENCY_KEY, "t-key"),
        (http::TRACEPARENT, traceparent.as_str()),
    ];
    assert_eq!(
        register(&stack, edge, &officer("B-7101"), &command).await,
        202
    );
    let query = [(http::TRACEPARENT, traceparent.as_str())];
    wait_projected(&stack, &format!("{edge}/v1/commands/t-cmd"), &query).await;
    let missing = stack.http.get(format!("{edge}/v1/officers/B-0000"));
    let missing = missing
        .header(http::CORRELATION_ID, "t-query")
        .header(http::TRACEPARENT, &traceparent);
    assert_eq!(
        missing.send().await.expect("answers").status(),
        StatusCode::NOT_FOUND
    );

    let subject = "ackgate.cmd.officer.register";
    let command_subject = names.namespace.dotted(subject);
    let topic = &names.officer_events;
    let wanted = [
        ("ackgate-edge", "POST /v1/officers".to_owned()),
        ("ackgate-edge", format!("send {command_subject}")),
        ("bl-service", format!("process {command_subject}")),
        ("bl-service", format!("send {topic}")),
        ("projections", format!("process {topic}")),
        (
            "projections",
            format!("process {}", names.query_command_status),
        ),
    ];
    let trace = eventually(Duration::from_secs(30), "the trace exported", || async {
        let trace: Vec<ExportedSpan> = collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        let complete = wanted.iter().all(|(service, name)| {
            trace
                .iter()
                .any(|s| s.service == *service && &s.name == name)
        });
        complete.then_some(trace)
    })
    .await;

    let server = span(&trace, "ackgate-edge", &wanted[0].1);
    assert_eq!(
        server.parent_span_id, client_span,
        "a child of the client's span"
    );
    assert_eq!(server.kind, 2, "server");
    assert_eq!(server.attribute("correlation_id").as_deref(), Some("t-cmd"));
    assert_eq!(
        server.attribute("http.route").as_deref(),
        Some("/v1/officers")
    );
    let request = span(&trace, "ackgate-edge", &wanted[1].1);
    assert_eq!(request.parent_span_id, server.span_id);
    let process = span(&trace, "bl-service", &wanted[2].1);
    assert_eq!(process.parent_span_id, request.span_id, "joined over NATS");
    assert_eq!(
        process.attribute("messaging.system").as_deref(),
        Some("nats")
    );
    let publish = span(&trace, "bl-service", &wanted[3].1);
    assert_eq!(publish.parent_span_id, process.span_id);
    assert_eq!(publish.kind, 4, "producer");
    let partition = publish.attribute("messaging.destination.partition.id");
    assert!(partition.is_some(), "{publish:?}");
    let status = server.attribute("http.response.status_code");
    assert_eq!(status.as_deref(), Some("202"), "{server:?}");
    let apply = span(&trace, "projections", &wanted[4].1);
    assert_eq!(apply.parent_span_id, publish.span_id, "joined over Kafka");
    assert_eq!(apply.kind, 5, "consumer");
    assert_eq!(
        apply.attribute("messaging.kafka.message.key").as_deref(),
        Some("B-7101")
    );
    let answered = trace
        .iter()
        .find(|s| s.name == wanted[5].1)
        .expect("query span");
    let asked = trace
        .iter()
        .find(|s| s.span_id == answered.parent_span_id)
        .expect("its parent");
    assert_eq!(
        asked.service, "ackgate-edge",
        "the query joined the edge's request"
    );

    let exported_unsampled = collector
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == unsampled_id)
        .count();
    assert_eq!(
        exported_unsampled, 0,
        "spans of a trace its caller did not sample"
    );
    let unsampled_lines: Vec<Value> = services
        .json_log("ackgate-edge")
        .into_iter()
        .filter(|line| line["correlation_id"] == "t-unsampled")
        .collect();
    assert!(
        !unsampled_lines.is_empty(),
        "the edge logged the unsampled request"
    );
    for line in &unsampled_lines {
        assert_eq!(
            line["trace_id"],
            unsampled_id.as_str(),
            "logs still name its trace: {line}"
        );
    }

    for (service, correlation_id) in [
        ("ackgate-edge", "t-cmd"),
        ("bl-service", "t-cmd"),
        ("projections", "t-query"),
    ] {
        let lines: Vec<Value> = services
            .json_log(service)
            .into_iter()
            .filter(|line| line["correlation_id"] == correlation_id)
            .collect();
        assert!(!lines.is_empty(), "{service} logged the request");
        for line in &lines {
            assert_eq!(line["trace_id"], trace_id.as_str(), "{service}: {line}");
            let span_id = line["span_id"].as_str().unwrap_or_default();
            assert_eq!(span_id.len(), 16, "{service}: {line}");
            if service != "projections" {
                assert_eq!(line["command_id"], "t-key", "{service}: {line}");
            }
        }
    }
}

/// A collector that takes connections and never answers: the worst a dead or wedged one
/// can do to an exporter (a refused connection fails fast; this one waits).
async fn wedged_collector() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    (endpoint, holding)
}

#[tokio::test]
async fn a_wedged_collector_costs_spans_not_commands() {
    let stack = brokers_only().await;
    let (endpoint, _collector) = wedged_collector().await;
    let logs = tempfile::tempdir().expect("a log directory");
    // Every trace sampled, so the exporters' queues do fill.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_TRACES_SAMPLER", "always_on".to_owned()),
    ];
    let services = ServiceProcesses::start(&stack, binary(), &env, logs.path())
        .await
        .expect("services start");
    let edge = services.url("ackgate-edge");
    assert_eq!(register(&stack, edge, &officer("W-0000"), &[]).await, 202);

    // More commands than the exporters' queues hold, so the queues fill and spans are
    // dropped: every command must still be accepted.
    let statuses: Vec<u16> = futures::stream::iter(1..2500)
        .map(|n| {
            let request = stack.http.post(format!("{edge}/v1/officers"));
            async move {
                let sent = request.json(&officer(&format!("W-{n:04}"))).send().await;
                sent.map_or(0, |r| r.status().as_u16())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let refused: Vec<&u16> = statuses.iter().filter(|s| **s != 202).collect();
    assert!(
        refused.is_empty(),
        "{} of {} not accepted: {:?}",
        refused.len(),
        statuses.len(),
        &refused[..refused.len().min(10)]
    );
    for service in ["ackgate-edge", "bl-service", "projections"] {
        let ready = stack
            .http
            .get(format!("{}/ready", services.url(service)))
            .send()
            .await;
        assert_eq!(
            ready.map(|r| r.status().as_u16()).ok(),
            Some(200),
            "{service} ready"
        );
    }
}

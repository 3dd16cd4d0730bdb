//! A real OpenTelemetry Collector for the trace test and the benchmark: an OTLP/HTTP receiver
//! on a free port whose file exporter writes each batch as a line of OTLP JSON, read back as
//! spans (or, for the benchmark, as protobuf, which costs the collector less to write).
//! `scripts/lib.sh`'s `ensure_otelcol` builds it (`ACKGATE_OTELCOL_BIN`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::brokers::{Process, free_port, wait_for_port};

/// How the collector's file exporter writes the batches it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// OTLP JSON, one batch a line: what [`Collector::spans`] reads.
    Json,
    /// OTLP protobuf: only its size is read ([`Collector::received_bytes`]).
    Proto,
}

impl FileFormat {
    fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Proto => "proto",
        }
    }
}

/// A collector process, killed on drop.
pub struct Collector {
    process: Process,
    port: u16,
    output: PathBuf,
    _dir: tempfile::TempDir,
}

/// One exported span, as the collector received it.
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    /// The `service.name` of the process that exported it.
    pub service: String,
    /// Span name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP span kind: 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i64,
    /// Attributes, as OTLP JSON key/value objects.
    pub attributes: Vec<Value>,
}

impl ExportedSpan {
    /// The string value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<String> {
        let found = self.attributes.iter().find(|a| a["key"] == key)?;
        let value = &found["value"];
        let text = value["stringValue"].as_str().map(str::to_owned);
        text.or_else(|| value["intValue"].as_str().map(str::to_owned))
    }
}

impl Collector {
    /// Starts the collector writing JSON and waits until its receiver listens.
    pub async fn start() -> Result<Self> {
        Self::start_writing(FileFormat::Json).await
    }

    /// Starts the collector writing `format` and waits until its receiver listens.
    pub async fn start_writing(format: FileFormat) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let output = dir.path().join(format!("traces.{}", format.name()));
        let config = dir.path().join("collector.yaml");
        std::fs::write(&config, config_text(port, &output, format))?;
        let binary = std::env::var("ACKGATE_OTELCOL_BIN").context(
            "ACKGATE_OTELCOL_BIN is not set: run ./scripts/test, which builds the collector",
        )?;
        let mut command = std::process::Command::new(binary);
        command
            .arg("--config")
            .arg(format!("file:{}", config.display()));
        let process = Process::spawn_watched(&mut command, dir.path().join("collector.log"))?;
        wait_for_port(port, "the OpenTelemetry Collector").await?;
        Ok(Self {
            process,
            port,
            output,
            _dir: dir,
        })
    }

    /// The OTLP endpoint, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The collector's OS process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Bytes the file exporter has written so far: grows while spans arrive.
    pub fn received_bytes(&self) -> u64 {
        std::fs::metadata(&self.output).map_or(0, |m| m.len())
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .flat_map(|batch| spans_of(&batch))
            .collect()
    }
}

fn config_text(port: u16, output: &std::path::Path, format: FileFormat) -> String {
    format!(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
         exporters:\n  file:\n    path: {}\n    format: {}\n    flush_interval: 100ms\n\
         service:\n  telemetry:\n    metrics:\n      level: none\n\
         \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n",
        output.display(),
        format.name()
    )
}

fn spans_of(batch: &Value) -> Vec<ExportedSpan> {
    let mut spans = Vec::new();
    for resource in batch["resourceSpans"].as_array().into_iter().flatten() {
        let attributes = resource["resource"]["attributes"].as_array();
        let service = attributes
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                spans.push(ExportedSpan {
                    service: service.to_owned(),
                    name: text("name"),
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: text("parentSpanId"),
                    kind: span["kind"].as_i64().unwrap_or_default(),
                    attributes: span["attributes"].as_array().cloned().unwrap_or_default(),
                });
            }
        }
    }
    spans
}

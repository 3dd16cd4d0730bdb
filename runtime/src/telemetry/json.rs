//! JSON lines with flat, stable field names: `timestamp`, `level`, `target`, `message`, the
//! event's own fields, and the fields of every span the event is in (outermost first, inner
//! ones winning), so each line of a request carries `correlation_id`, `command_id`,
//! `trace_id` and `span_id` at the top level, where log shippers index them.

use std::fmt;

use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, format::Writer},
    registry::LookupSpan,
};

/// The event format; span fields must be stored as JSON (`JsonFields`).
pub(super) struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), now.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        for span in ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
        {
            let extensions = span.extensions();
            let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                continue;
            };
            if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                // `otel.*` fields steer the trace exporter; they are not log content.
                line.extend(fields.into_iter().filter(|(k, _)| !k.starts_with("otel.")));
            }
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields into the line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{fmt::format::JsonFields, layer::SubscriberExt};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(log: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().expect("buffer").clone();
        let text = String::from_utf8(bytes).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn every_line_of_a_request_carries_its_ids_at_the_top_level() {
        let lines = lines_of(|| {
            let request = tracing::info_span!(
                "command",
                correlation_id = "c-1",
                command_id = "k-1",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                otel.name = tracing::field::Empty,
            );
            request.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            request.record("span_id", "00f067aa0ba902b7");
            request.record("otel.name", "process subject");
            let _entered = request.enter();
            tracing::info!(partition = 2, "event acknowledged");
            tracing::info_span!("inner", stage = "produce").in_scope(|| tracing::warn!("slow"));
        });
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line["correlation_id"], "c-1");
            assert_eq!(line["command_id"], "k-1");
            assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(line["span_id"], "00f067aa0ba902b7");
            assert!(line.get("otel.name").is_none(), "{line}");
            assert!(line["timestamp"].as_str().is_some_and(|t| t.contains('T')));
        }
        assert_eq!(lines[0]["message"], "event acknowledged");
        assert_eq!(lines[0]["partition"], 2);
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["stage"], "produce");
    }
}

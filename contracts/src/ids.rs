//! Identity: correlationId, commandId, eventId and W3C trace context.

use uuid::Uuid;

/// Longest correlationId or commandId accepted from a client.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// Namespace of eventIds, so `event_id` is stable across releases and machines.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1c_4f0e_8d5b_4c4e_9a57_3f0b_1d2e_7c11);

/// Whether a client-chosen id is acceptable: 1 to 128 of `A-Z a-z 0-9 . _ : -`, safe in a
/// URL path, a NATS header and a log line without escaping.
pub fn is_valid_client_id(id: &str) -> bool {
    (1..=MAX_CLIENT_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Reads an `Idempotency-Key` value. The IETF draft sends it as a structured-field string
/// (`"abc"`); bare tokens are accepted too.
pub fn parse_idempotency_key(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    let key = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(raw);
    is_valid_client_id(key).then_some(key)
}

/// A fresh, time-ordered id (UUIDv7) for a correlationId or commandId the client left out.
pub fn generate_id() -> String {
    Uuid::now_v7().to_string()
}

/// The eventId of the event a command produces: UUIDv5 of the command type and commandId.
/// A command produced twice (a crash between Kafka's ack and the reply) yields two records
/// with one eventId, which consumers apply once.
pub fn event_id(command_type: &str, command_id: &str) -> Uuid {
    Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        format!("{command_type}/{command_id}").as_bytes(),
    )
}

/// W3C trace context (`traceparent`, version 00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    parent_id: String,
    flags: String,
}

impl TraceParent {
    /// Parses a `traceparent` header; `None` if it is not a valid version-00 value.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = version == "00"
            && parts.next().is_none()
            && is_lower_hex(trace_id, 32)
            && is_lower_hex(parent_id, 16)
            && is_lower_hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && parent_id.bytes().any(|b| b != b'0');
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags: flags.to_owned(),
        })
    }

    /// Starts a new trace, `sampled` or not (the flag tells the next hops whether to
    /// record it).
    pub fn new_root(sampled: bool) -> Self {
        Self {
            trace_id: Uuid::new_v4().simple().to_string(),
            parent_id: new_span_id(),
            flags: if sampled { "01" } else { "00" }.to_owned(),
        }
    }

    /// The same trace with a new span id: what this hop passes downstream.
    pub fn child(&self) -> Self {
        Self {
            parent_id: new_span_id(),
            ..self.clone()
        }
    }

    /// Builds one from its parts (lowercase hex ids); `None` if they are not valid.
    pub fn from_parts(trace_id: &str, span_id: &str, sampled: bool) -> Option<Self> {
        let flags = if sampled { "01" } else { "00" };
        Self::parse(&format!("00-{trace_id}-{span_id}-{flags}"))
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The 16-hex-digit id of the span that sent it (W3C's `parent-id`).
    pub fn span_id(&self) -> &str {
        &self.parent_id
    }

    /// Whether the sender recorded the trace (the `sampled` flag).
    pub fn is_sampled(&self) -> bool {
        u8::from_str_radix(&self.flags, 16).is_ok_and(|flags| flags & 1 == 1)
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }
}

fn new_span_id() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_owned()
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_bounded_and_url_safe() {
        assert!(is_valid_client_id("6f1c-ab.9_x:1"));
        assert!(is_valid_client_id(&"a".repeat(MAX_CLIENT_ID_LEN)));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id(&"a".repeat(MAX_CLIENT_ID_LEN + 1)));
        assert!(!is_valid_client_id("has space"));
        assert!(!is_valid_client_id("slash/es"));
    }

    #[test]
    fn idempotency_keys_may_be_quoted() {
        assert_eq!(parse_idempotency_key("\"k-1\""), Some("k-1"));
        assert_eq!(parse_idempotency_key("k-1"), Some("k-1"));
        assert_eq!(parse_idempotency_key("\"\""), None);
    }

    #[test]
    fn event_id_is_deterministic_per_command() {
        let a = event_id("RegisterOfficer", "cmd-1");
        assert_eq!(a, event_id("RegisterOfficer", "cmd-1"));
        assert_ne!(a, event_id("RegisterOfficer", "cmd-2"));
    }

    #[test]
    fn traceparent_round_trips_and_children_keep_the_trace() {
        let raw = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(raw).expect("valid");
        assert_eq!(parsed.to_string(), raw);
        let child = parsed.child();
        assert_eq!(child.trace_id(), parsed.trace_id());
        assert_ne!(child, parsed);
        let unsampled = TraceParent::new_root(false);
        assert!(TraceParent::parse(&unsampled.to_string()).is_some_and(|t| !t.is_sampled()));
        assert!(TraceParent::new_root(true).is_sampled());
        let built = TraceParent::from_parts(parsed.trace_id(), parsed.span_id(), true);
        assert_eq!(built.as_ref(), Some(&parsed));
        assert!(parsed.is_sampled());
        assert!(
            TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(TraceParent::parse("garbage").is_none());
    }
}

//! Optimistic concurrency over HTTP: an aggregate's version travels as a strong entity tag
//! (`ETag: "3"`), and a command sent with `If-Match` is accepted only while the aggregate
//! still has one of the versions it names (RFC 9110, section 13.1.1).

/// The entity tag of aggregate version `version`.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// A parsed `If-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: the aggregate must exist, in any version.
    Any,
    /// The aggregate must have one of these versions.
    Versions(Vec<u64>),
}

impl IfMatch {
    /// Reads `*` or a comma-separated list of strong tags as [`etag`] writes them. Weak tags
    /// (`W/"3"`) are refused: RFC 9110 compares `If-Match` strongly, so they never match.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let versions = raw
            .split(',')
            .map(|tag| {
                let tag = tag.trim();
                tag.strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!("If-Match must be * or entity tags as ETag gives them (\"3\"), not {tag:?}")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Versions(versions))
    }

    /// Whether an aggregate at `current` (`None`: it does not exist) meets the condition.
    pub fn holds_for(&self, current: Option<u64>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Versions(versions), Some(v)) => versions.contains(&v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_lists_match_any_member() {
        let condition = IfMatch::parse(&format!("{}, {}", etag(3), etag(5))).expect("parses");
        assert!(condition.holds_for(Some(5)));
        assert!(!condition.holds_for(Some(4)));
        assert!(!condition.holds_for(None));
        assert!(IfMatch::parse("*").expect("star").holds_for(Some(1)));
    }

    #[test]
    fn weak_and_malformed_tags_are_refused() {
        for raw in ["W/\"3\"", "3", "\"x\"", "", "\"3\",,"] {
            assert!(IfMatch::parse(raw).is_err(), "{raw:?}");
        }
    }
}

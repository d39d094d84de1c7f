//! W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/): a client's trace
//! is continued, not started. A valid `traceparent` on a token request puts its trace id in
//! the audit event, and the upstream request carries the same trace id and flags with the
//! gateway's own span id as parent, as an intermediary does. An invalid header is ignored
//! (the specification says so: a new trace would start, and the gateway starts none).

use http::HeaderValue;

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed, valid `traceparent` (version 00 form; later versions are read by their first
/// four fields, as the specification asks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lower-case hex digits, not all zero.
    pub trace_id: String,
    /// 16 lower-case hex digits, not all zero.
    pub parent_id: String,
    /// 2 hex digits.
    pub flags: String,
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TraceParent {
    /// Parses a header value; `None` for anything the specification calls invalid.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let value = std::str::from_utf8(value).ok()?;
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let parent_id = parts.next()?;
        let flags = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        if !lower_hex(version, 2) || version == "ff" {
            return None;
        }
        // Version 00 has exactly four fields; a later version may append more.
        if version == "00" && !rest.is_empty() {
            return None;
        }
        if !lower_hex(trace_id, 32) || trace_id.bytes().all(|b| b == b'0') {
            return None;
        }
        if !lower_hex(parent_id, 16) || parent_id.bytes().all(|b| b == b'0') {
            return None;
        }
        if !lower_hex(flags, 2) {
            return None;
        }
        Some(Self {
            trace_id: trace_id.into(),
            parent_id: parent_id.into(),
            flags: flags.into(),
        })
    }

    /// The header for the upstream request: the same trace and flags, version 00, and a fresh
    /// span id of the gateway's as the parent.
    pub fn child(&self) -> Option<HeaderValue> {
        let mut span = [0u8; 8];
        aws_lc_rs::rand::fill(&mut span).ok()?;
        if span == [0; 8] {
            span[7] = 1;
        }
        HeaderValue::from_str(&format!(
            "00-{}-{}-{}",
            self.trace_id,
            crate::encoding::hex_lower(&span),
            self.flags
        ))
        .ok()
    }
}

/// The request's trace context: exactly one valid `traceparent` header, else none.
pub fn from_headers(headers: &http::HeaderMap) -> Option<TraceParent> {
    let mut all = headers.get_all(TRACEPARENT).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    TraceParent::parse(first.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_headers_parse_and_invalid_ones_are_ignored() {
        let t =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id, "00f067aa0ba902b7");
        assert_eq!(t.flags, "01");
        // A later version with more fields is read by its first four.
        assert!(TraceParent::parse(
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"
        )
        .is_some());
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn the_child_keeps_the_trace_and_flags_with_a_new_span() {
        let t =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let child = t.child().unwrap();
        let c = TraceParent::parse(child.as_bytes()).unwrap();
        assert_eq!(c.trace_id, t.trace_id);
        assert_eq!(c.flags, "01");
        assert_ne!(c.parent_id, t.parent_id);
    }
}

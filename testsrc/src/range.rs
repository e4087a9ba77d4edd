//! Byte-range math for `Range: bytes=...` (RFC 9110 section 14), kept pure for table tests.

/// One range as the client wrote it, before the resource size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive).
    Bounded { first: u64, last: u64 },
    /// `bytes=a-`: everything from `a` on. This is what ffmpeg sends.
    From { first: u64 },
    /// `bytes=-n`: the last `n` bytes.
    Suffix { len: u64 },
}

/// How a request's Range header applies to a resource of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable Range: serve everything with 200.
    Full,
    /// Serve bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

impl ByteRange {
    /// Parses a Range header value. `None` for anything the server should ignore: other units, syntax
    /// errors, `a-b` with `b < a`, and multiple ranges (which this server does not implement).
    pub fn parse(header: &str) -> Option<ByteRange> {
        let (unit, spec) = header.trim().split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return None;
        }
        let spec = spec.trim();
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        match (a.is_empty(), b.is_empty()) {
            (true, true) => None,
            (true, false) => Some(ByteRange::Suffix { len: num(b)? }),
            (false, true) => Some(ByteRange::From { first: num(a)? }),
            (false, false) => {
                let (first, last) = (num(a)?, num(b)?);
                (last >= first).then_some(ByteRange::Bounded { first, last })
            }
        }
    }

    /// Whether the client left the end open, the shape YouTube throttles.
    pub fn is_open_ended(&self) -> bool {
        matches!(self, ByteRange::From { .. })
    }

    /// Applies the range to a resource of `total` bytes.
    pub fn resolve(&self, total: u64) -> RangeOutcome {
        match *self {
            ByteRange::Bounded { first, .. } | ByteRange::From { first } if first >= total => {
                RangeOutcome::Unsatisfiable
            }
            ByteRange::Bounded { first, last } => RangeOutcome::Partial { start: first, end: last.min(total - 1) },
            ByteRange::From { first } => RangeOutcome::Partial { start: first, end: total - 1 },
            ByteRange::Suffix { len } if len == 0 || total == 0 => RangeOutcome::Unsatisfiable,
            ByteRange::Suffix { len } => RangeOutcome::Partial { start: total.saturating_sub(len), end: total - 1 },
        }
    }
}

/// Resolves an optional Range header against a resource size, ignoring ranges it cannot parse.
pub fn resolve_header(header: Option<&str>, total: u64) -> RangeOutcome {
    match header.and_then(ByteRange::parse) {
        Some(range) => range.resolve(total),
        None => RangeOutcome::Full,
    }
}

impl RangeOutcome {
    /// Status code, body length and `Content-Range` value for this outcome.
    pub fn response_parts(&self, total: u64) -> (u16, u64, Option<String>) {
        match *self {
            RangeOutcome::Full => (200, total, None),
            RangeOutcome::Partial { start, end } => {
                (206, end - start + 1, Some(format!("bytes {start}-{end}/{total}")))
            }
            RangeOutcome::Unsatisfiable => (416, 0, Some(format!("bytes */{total}"))),
        }
    }

    /// First byte offset served (0 for full bodies).
    pub fn start(&self) -> u64 {
        match *self {
            RangeOutcome::Partial { start, .. } => start,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        use ByteRange::*;
        let cases: &[(&str, Option<ByteRange>)] = &[
            ("bytes=0-499", Some(Bounded { first: 0, last: 499 })),
            ("bytes=500-", Some(From { first: 500 })),
            ("bytes=-500", Some(Suffix { len: 500 })),
            ("Bytes = 7 - 9 ", Some(Bounded { first: 7, last: 9 })),
            ("bytes=5-5", Some(Bounded { first: 5, last: 5 })),
            ("bytes=0-", Some(From { first: 0 })),
            ("bytes=5-3", None),
            ("bytes=-", None),
            ("bytes=", None),
            ("bytes=a-b", None),
            ("bytes=+1-2", None),
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("0-1", None),
            ("bytes=99999999999999999999999-", None),
        ];
        for (header, want) in cases {
            assert_eq!(ByteRange::parse(header), *want, "{header}");
        }
    }

    /// Range header, resource size, outcome, then status, body length and Content-Range.
    type ResolveRow = (Option<&'static str>, u64, RangeOutcome, u16, u64, Option<&'static str>);

    #[test]
    fn resolve_table() {
        use RangeOutcome::*;
        let cases: &[ResolveRow] = &[
            (None, 1000, Full, 200, 1000, None),
            (Some("bytes=0-499"), 1000, Partial { start: 0, end: 499 }, 206, 500, Some("bytes 0-499/1000")),
            (Some("bytes=500-"), 1000, Partial { start: 500, end: 999 }, 206, 500, Some("bytes 500-999/1000")),
            (Some("bytes=-100"), 1000, Partial { start: 900, end: 999 }, 206, 100, Some("bytes 900-999/1000")),
            (Some("bytes=-5000"), 1000, Partial { start: 0, end: 999 }, 206, 1000, Some("bytes 0-999/1000")),
            (Some("bytes=900-5000"), 1000, Partial { start: 900, end: 999 }, 206, 100, Some("bytes 900-999/1000")),
            (Some("bytes=999-999"), 1000, Partial { start: 999, end: 999 }, 206, 1, Some("bytes 999-999/1000")),
            (Some("bytes=1000-"), 1000, Unsatisfiable, 416, 0, Some("bytes */1000")),
            (Some("bytes=1000-2000"), 1000, Unsatisfiable, 416, 0, Some("bytes */1000")),
            (Some("bytes=-0"), 1000, Unsatisfiable, 416, 0, Some("bytes */1000")),
            (Some("bytes=0-"), 0, Unsatisfiable, 416, 0, Some("bytes */0")),
            (Some("bytes=-10"), 0, Unsatisfiable, 416, 0, Some("bytes */0")),
            (Some("bytes=9-2"), 1000, Full, 200, 1000, None),
            (Some("pages=1-2"), 1000, Full, 200, 1000, None),
        ];
        for &(header, total, want, status, len, content_range) in cases {
            let got = resolve_header(header, total);
            assert_eq!(got, want, "{header:?} of {total}");
            let (s, l, cr) = got.response_parts(total);
            assert_eq!((s, l, cr.as_deref()), (status, len, content_range), "{header:?} of {total}");
        }
    }

    #[test]
    fn only_from_ranges_are_open_ended() {
        assert!(ByteRange::From { first: 3 }.is_open_ended());
        assert!(!ByteRange::Bounded { first: 0, last: 3 }.is_open_ended());
        assert!(!ByteRange::Suffix { len: 3 }.is_open_ended());
    }
}

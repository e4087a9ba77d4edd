//! `Content-Range` values, parsed in one place for the relay, the mirror's tarballs and the annotation
//! archives.

/// A parsed `Content-Range` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes a-b/total`; `total` is `None` for `bytes a-b/*`.
    Bytes { start: u64, end: u64, total: Option<u64> },
    /// `bytes */total`, sent with 416.
    Unsatisfied { total: u64 },
}

impl ContentRange {
    /// The resource's length, when the server said it.
    pub fn total(self) -> Option<u64> {
        match self {
            ContentRange::Bytes { total, .. } => total,
            ContentRange::Unsatisfied { total } => Some(total),
        }
    }
}

/// `bytes a-b/total`, `bytes a-b/*` or `bytes */total`; `None` for anything else, and for a span that is
/// backwards or runs past the total.
pub fn parse(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if span.trim() == "*" {
        return Some(ContentRange::Unsatisfied { total: total? });
    }
    let (start, end) = span.trim().split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end && total.is_none_or(|t| end < t)).then_some(ContentRange::Bytes { start, end, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_values() {
        use ContentRange::*;
        let cases: &[(&str, Option<ContentRange>)] = &[
            ("bytes 0-99/1000", Some(Bytes { start: 0, end: 99, total: Some(1000) })),
            ("bytes 100-199/1000", Some(Bytes { start: 100, end: 199, total: Some(1000) })),
            ("bytes 5-5/6", Some(Bytes { start: 5, end: 5, total: Some(6) })),
            (" bytes  10-19/20 ", Some(Bytes { start: 10, end: 19, total: Some(20) })),
            ("bytes 0-99/*", Some(Bytes { start: 0, end: 99, total: None })),
            ("bytes 0-0/*", Some(Bytes { start: 0, end: 0, total: None })),
            ("bytes */1234", Some(Unsatisfied { total: 1234 })),
            ("bytes */*", None),
            ("bytes 0-1000/1000", None),
            ("bytes 9-5/100", None),
            ("bytes 0-/100", None),
            ("bytes x-1/2", None),
            ("items 0-9/10", None),
            ("bytes=0-9/10", None),
            ("bytes=100-199/1000", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse(value), *want, "{value:?}");
        }
        assert_eq!(parse("bytes */77").and_then(ContentRange::total), Some(77));
        assert_eq!(parse("bytes 0-9/*").and_then(ContentRange::total), None);
    }
}

//! Checks for single values, shared by the CSV and JSON readers: ids, times, labels and splits.

use super::error::{ErrorKind, Problem};

/// Largest accepted time, in seconds (about three years). YouTube caps videos at 12 hours; the bound only
/// keeps millisecond arithmetic and file names far from overflow.
pub const MAX_SECONDS: f64 = 100_000_000.0;

/// Longest accepted YouTube id. Real ids are 11 characters; the slack admits other same-shape datasets.
pub const MAX_ID_LEN: usize = 64;

/// `^[A-Za-z0-9_-]{1,64}$`: the id later goes into a URL and a file name, so nothing else may pass.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Seconds to whole milliseconds, the resolution at which clips are identified and compared.
pub fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Lowercases a split name and maps the 2017 release's `val` to `validate`.
pub fn normalize_split(s: &str) -> String {
    let mut out = String::new();
    normalize_split_into(s, &mut out);
    out
}

/// [`normalize_split`] into a reused buffer, so rows that get filtered out cost no allocation.
pub(crate) fn normalize_split_into(s: &str, out: &mut String) {
    out.clear();
    let s = s.trim();
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        out.push_str(&s.to_lowercase());
    }
    if out == "val" {
        out.push_str("idate");
    }
}

pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, Problem> {
    std::str::from_utf8(bytes).map_err(|e| {
        Problem::new(ErrorKind::BadEncoding, format!("not valid UTF-8 (bad byte at offset {})", e.valid_up_to()))
    })
}

pub(crate) fn check_id(id: &str) -> Result<(), Problem> {
    if id.is_empty() {
        return Err(Problem::new(ErrorKind::MissingField, "empty youtube id"));
    }
    if !is_valid_id(id) {
        return Err(Problem::new(
            ErrorKind::BadId,
            format!("invalid youtube id {id:?}: expected 1 to {MAX_ID_LEN} of A-Z a-z 0-9 _ -"),
        ));
    }
    Ok(())
}

/// Parses a time written as text (`17`, `17.0`, `84.5`).
pub(crate) fn parse_time(text: &str) -> Result<f64, Problem> {
    if text.is_empty() {
        return Err(Problem::new(ErrorKind::MissingField, "empty time"));
    }
    // Rust's parser also accepts `inf`, `NaN` and `infinity`; check_time turns those away.
    let value: f64 =
        text.parse().map_err(|_| Problem::new(ErrorKind::BadNumber, format!("{text:?} is not a number")))?;
    check_time(value)
}

/// Checks a time that is already a number; returns it with `-0` made `0`.
pub(crate) fn check_time(value: f64) -> Result<f64, Problem> {
    if !value.is_finite() {
        return Err(Problem::new(ErrorKind::BadNumber, format!("{value} is not a finite number")));
    }
    if value < 0.0 {
        return Err(Problem::new(ErrorKind::NegativeTime, format!("negative time {value}")));
    }
    if value > MAX_SECONDS {
        return Err(Problem::new(ErrorKind::BadNumber, format!("time {value} is larger than {MAX_SECONDS} seconds")));
    }
    Ok(value + 0.0)
}

/// The end must be after the start even once both are rounded to milliseconds, or the clip is empty.
pub(crate) fn check_window(start: f64, end: f64) -> Result<(), Problem> {
    if end <= start || seconds_to_ms(end) <= seconds_to_ms(start) {
        return Err(Problem::new(ErrorKind::EndNotAfterStart, format!("end {end} is not after start {start}")));
    }
    Ok(())
}

/// Labels become folder names and manifest lines: control characters (NUL, tab, newline) are refused.
pub(crate) fn check_label(label: &str) -> Result<(), Problem> {
    match label.chars().find(|c| c.is_control()) {
        Some(c) => Err(Problem::new(
            ErrorKind::BadLabel,
            format!("label {label:?} contains control character U+{:04X}", c as u32),
        )),
        None => Ok(()),
    }
}

pub(crate) fn check_split(split: &str) -> Result<(), Problem> {
    match split.chars().find(|c| c.is_control()) {
        Some(c) => Err(Problem::new(
            ErrorKind::BadSplit,
            format!("split {split:?} contains control character U+{:04X}", c as u32),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let cases = [
            ("--07WQ2iBlw", true),
            ("0wR5jVB-WPk", true),
            ("a", true),
            ("_", true),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
            ("", false),
            ("abc def", false),
            ("../etc", false),
            ("a/b", false),
            ("a%2F", false),
            ("ab\u{e9}", false),
            ("a\0b", false),
        ];
        for (id, ok) in cases {
            assert_eq!(is_valid_id(id), ok, "{id:?}");
            assert_eq!(check_id(id).is_ok(), ok, "{id:?}");
        }
        assert_eq!(check_id("").unwrap_err().kind, ErrorKind::MissingField);
        assert_eq!(check_id("a b").unwrap_err().kind, ErrorKind::BadId);
    }

    #[test]
    fn times() {
        let ok = [("17", 17.0), ("17.0", 17.0), ("84.5", 84.5), ("0", 0.0), ("-0", 0.0), ("1e3", 1000.0)];
        for (text, want) in ok {
            let got = parse_time(text).unwrap();
            assert_eq!(got, want, "{text}");
            assert!(got.is_sign_positive(), "{text}");
        }
        let bad = [
            ("", ErrorKind::MissingField),
            ("abc", ErrorKind::BadNumber),
            ("NaN", ErrorKind::BadNumber),
            ("nan", ErrorKind::BadNumber),
            ("inf", ErrorKind::BadNumber),
            ("-infinity", ErrorKind::BadNumber),
            ("1e300", ErrorKind::BadNumber),
            ("12s", ErrorKind::BadNumber),
            ("1,5", ErrorKind::BadNumber),
            ("-1", ErrorKind::NegativeTime),
            ("-0.5", ErrorKind::NegativeTime),
        ];
        for (text, kind) in bad {
            assert_eq!(parse_time(text).unwrap_err().kind, kind, "{text}");
        }
    }

    #[test]
    fn windows() {
        assert!(check_window(0.0, 10.0).is_ok());
        assert!(check_window(1.0, 1.001).is_ok());
        for (s, e) in [(10.0, 10.0), (10.0, 9.0), (1.0, 1.0004)] {
            assert_eq!(check_window(s, e).unwrap_err().kind, ErrorKind::EndNotAfterStart, "{s} {e}");
        }
    }

    #[test]
    fn labels_and_splits() {
        for label in ["air drumming", "passing American football (in game)", "../../etc", "a/b", "caf\u{e9}"] {
            assert!(check_label(label).is_ok(), "{label:?}");
        }
        for label in ["a\0b", "a\tb", "a\nb", "a\rb", "a\u{7f}", "a\u{85}"] {
            assert_eq!(check_label(label).unwrap_err().kind, ErrorKind::BadLabel, "{label:?}");
        }
        assert_eq!(check_split("te\u{1}st").unwrap_err().kind, ErrorKind::BadSplit);
    }

    #[test]
    fn split_normalisation() {
        let cases = [
            ("val", "validate"),
            ("VAL", "validate"),
            (" val ", "validate"),
            ("validate", "validate"),
            ("Train", "train"),
            ("test", "test"),
            ("holdout_test", "holdout_test"),
            ("validation", "validation"),
            ("\u{c9}T\u{c9}", "\u{e9}t\u{e9}"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_split(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn millis() {
        assert_eq!(seconds_to_ms(17.5), 17_500);
        assert_eq!(seconds_to_ms(0.0005), 1);
        assert_eq!(seconds_to_ms(417.0), 417_000);
        assert_eq!(seconds_to_ms(MAX_SECONDS), 100_000_000_000);
    }
}

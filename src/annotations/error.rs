//! The one error type for bad annotation input: it names the file, the line and the field.

use std::path::{Path, PathBuf};

/// What was wrong, so that callers and tests can match without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be opened or read.
    Io,
    /// No header and no data (zero bytes or only whitespace), or a classes file without classes.
    Empty,
    /// A CSV header that is neither a known column nor an accepted alias.
    UnknownHeader,
    /// Two CSV headers naming the same column (for example `start` and `time_start`).
    DuplicateHeader,
    /// A required CSV column (`youtube_id`, `time_start`, `time_end`) is absent from the header.
    MissingColumn,
    /// A CSV row with more or fewer fields than the header.
    FieldCount,
    /// A quoted CSV field that runs past the end of its line (the closing quote is missing).
    UnterminatedQuote,
    /// A required value is empty or absent.
    MissingField,
    /// Not a finite number (text, NaN, infinity, absurdly large).
    BadNumber,
    /// A time below zero.
    NegativeTime,
    /// `time_end` is not after `time_start` (compared at millisecond resolution).
    EndNotAfterStart,
    /// A YouTube id outside `^[A-Za-z0-9_-]{1,64}$`.
    BadId,
    /// Not a YouTube video URL of a published shape (`--id-from-url`).
    BadUrl,
    /// A `--columns` mapping the file does not fit (a column its header lacks, a position past its fields).
    BadMapping,
    /// A label with NUL or another control character.
    BadLabel,
    /// A split value with a control character.
    BadSplit,
    /// A HACS Clips `label` flag other than `1` or `-1`.
    BadFlag,
    /// Bytes that are not UTF-8.
    BadEncoding,
    /// JSON that is not the DeepMind shape or not JSON at all.
    Json,
    /// JSON that ends in the middle of a value.
    Truncated,
}

/// Bad input: names the file, the line and the field.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct InputError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub field: Option<String>,
    pub message: String,
    /// Added to the original interface: the class of problem, for matching.
    pub kind: ErrorKind,
}

impl InputError {
    pub fn new(
        file: &Path,
        line: Option<u64>,
        field: Option<&str>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        InputError { file: file.to_path_buf(), line, field: field.map(str::to_owned), message: message.into(), kind }
    }

    pub(crate) fn io(file: &Path, err: &std::io::Error) -> Self {
        Self::new(file, None, None, ErrorKind::Io, format!("cannot read file: {err}"))
    }

    fn render(&self) -> String {
        let mut s = self.file.display().to_string();
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
        }
        if let Some(field) = &self.field {
            s.push_str(&format!(": field `{field}`"));
        }
        s.push_str(": ");
        s.push_str(&self.message);
        s
    }
}

/// A problem with one value, before the caller knows the file, line and field name to attach.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub kind: ErrorKind,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Problem { kind, message: message.into() }
    }

    pub fn at(self, file: &Path, line: u64, field: &str) -> InputError {
        InputError::new(file, Some(line), Some(field), self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_field_message() {
        let cases = [
            (Some(3), Some("time_end"), "a.csv:3: field `time_end`: boom"),
            (Some(1), None, "a.csv:1: boom"),
            (None, None, "a.csv: boom"),
        ];
        for (line, field, want) in cases {
            let e = InputError::new(Path::new("a.csv"), line, field, ErrorKind::BadNumber, "boom");
            assert_eq!(e.to_string(), want);
        }
    }
}

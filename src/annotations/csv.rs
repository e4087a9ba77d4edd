//! CSV annotations (every DeepMind release and same-shape datasets), RFC 4180, driven by the header.
//!
//! Accepted headers, in any order, case-insensitive:
//! - label: `label`, or HACS's `classname` (then a `label` column is HACS Clips' flag: `1` marks a positive
//!   clip and is kept, `-1` a sampled negative and is skipped, or with `--keep-negatives` kept in the split
//!   `{subset}_negatives`; any other value is an error)
//! - youtube_id: `youtube_id`, `ytid` (AudioSet, VGGSound), `video_id`
//! - time_start: `time_start`, `start`, `start_seconds`; time_end: `time_end`, `end`, `end_seconds`
//! - split: `split`, `subset` (HACS)
//! - ignored: `is_cc` (the 2017 K400 release)
//!
//! Any other header is an error naming it. Without a label column rows are unlabelled (test files);
//! without a split column they have no split. An empty label or split value means none.

use super::collect::{Checked, Collector};
use super::error::{ErrorKind, InputError, Problem};
use super::fields::{check_id, check_label, check_split, check_window, parse_time, utf8};
use ::csv::{ByteRecord, ReaderBuilder};
use std::borrow::Cow;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Label,
    Id,
    Start,
    End,
    Split,
    /// HACS Clips' ±1 `label` column.
    Flag,
    Ignored,
}

impl Column {
    fn from_header(name: &str, hacs: bool) -> Option<Column> {
        Some(match name {
            "label" if hacs => Column::Flag,
            "label" | "classname" => Column::Label,
            "youtube_id" | "ytid" | "video_id" => Column::Id,
            "time_start" | "start" | "start_seconds" => Column::Start,
            "time_end" | "end" | "end_seconds" => Column::End,
            "split" | "subset" => Column::Split,
            "is_cc" => Column::Ignored,
            _ => return None,
        })
    }

    fn canonical(self) -> &'static str {
        match self {
            Column::Label => "label",
            Column::Id => "youtube_id",
            Column::Start => "time_start",
            Column::End => "time_end",
            Column::Split => "split",
            Column::Flag => "label",
            Column::Ignored => "ignored",
        }
    }
}

/// Where each column sits in this file, and the header names as written (for messages).
#[derive(Debug)]
struct Layout {
    label: Option<usize>,
    id: usize,
    start: usize,
    end: usize,
    split: Option<usize>,
    flag: Option<usize>,
    names: Vec<String>,
}

impl Layout {
    fn from_header(path: &Path, rec: &ByteRecord, line: u64) -> Result<Layout, InputError> {
        let mut names = Vec::with_capacity(rec.len());
        for field in rec {
            let name = utf8(field.trim_ascii()).map_err(|p| p.at(path, line, "header"))?;
            names.push(name.to_owned());
        }
        let hacs = names.iter().any(|n| n.eq_ignore_ascii_case("classname"));
        let mut slots: [Option<usize>; 6] = [None; 6];
        for (i, name) in names.iter().enumerate() {
            let column = Column::from_header(&name.to_ascii_lowercase(), hacs).ok_or_else(|| {
                let shown = if name.is_empty() { "(empty)" } else { name };
                InputError::new(
                    path,
                    Some(line),
                    Some(shown),
                    ErrorKind::UnknownHeader,
                    format!("unknown header {shown:?}; expected label, youtube_id, time_start, time_end, split"),
                )
            })?;
            let slot = match column {
                Column::Ignored => continue,
                other => &mut slots[other as usize],
            };
            if let Some(first) = slot.replace(i) {
                return Err(InputError::new(
                    path,
                    Some(line),
                    Some(name),
                    ErrorKind::DuplicateHeader,
                    format!("header {name:?} repeats column {:?}", names[first]),
                ));
            }
        }
        let required = |column: Column| {
            slots[column as usize].ok_or_else(|| {
                InputError::new(
                    path,
                    Some(line),
                    Some(column.canonical()),
                    ErrorKind::MissingColumn,
                    format!("the header has no {} column", column.canonical()),
                )
            })
        };
        Ok(Layout {
            id: required(Column::Id)?,
            start: required(Column::Start)?,
            end: required(Column::End)?,
            label: slots[Column::Label as usize],
            split: slots[Column::Split as usize],
            flag: slots[Column::Flag as usize],
            names,
        })
    }

    /// Validates one record; values borrow from it. `None` for a HACS negative (flag `-1`), validated
    /// like any row but not kept unless `keep_negatives`: then it goes to the split `{subset}_negatives`
    /// (`negatives` without a subset), under its class.
    fn check<'r>(
        &self,
        rec: &'r ByteRecord,
        line: u64,
        keep_negatives: bool,
    ) -> Result<Option<Checked<'r>>, (Problem, usize)> {
        let text = |col: usize| utf8(rec[col].trim_ascii()).map_err(|p| (p, col));
        let positive = match self.flag {
            Some(col) => check_flag(text(col)?).map_err(|p| (p, col))?,
            None => true,
        };
        let id = text(self.id)?;
        check_id(id).map_err(|p| (p, self.id))?;
        let start = parse_time(text(self.start)?).map_err(|p| (p, self.start))?;
        let end = parse_time(text(self.end)?).map_err(|p| (p, self.end))?;
        check_window(start, end).map_err(|p| (p, self.end))?;
        let label = match self.label {
            Some(col) => Some(text(col)?).filter(|l| !l.is_empty()),
            None => None,
        };
        if let (Some(label), Some(col)) = (label, self.label) {
            check_label(label).map_err(|p| (p, col))?;
        }
        let split = match self.split {
            Some(col) => Some(text(col)?).filter(|s| !s.is_empty()),
            None => None,
        };
        if let (Some(split), Some(col)) = (split, self.split) {
            check_split(split).map_err(|p| (p, col))?;
        }
        if !positive && !keep_negatives {
            return Ok(None);
        }
        let split = match (positive, split) {
            (true, split) => split.map(Cow::Borrowed),
            (false, Some(split)) => Some(Cow::Owned(format!("{split}_negatives"))),
            (false, None) => Some(Cow::Borrowed("negatives")),
        };
        Ok(Some(Checked {
            label: label.map(Cow::Borrowed),
            extra_labels: Vec::new(),
            boxes: Vec::new(),
            youtube_id: Cow::Borrowed(id),
            time_start: start,
            time_end: end,
            split,
            line,
        }))
    }
}

/// HACS Clips' flag: `1` (positive) is true, `-1` (negative) false, also written as floats.
fn check_flag(value: &str) -> Result<bool, Problem> {
    match value {
        "1" | "1.0" => Ok(true),
        "-1" | "-1.0" => Ok(false),
        "" => Err(Problem::new(ErrorKind::MissingField, "empty HACS label flag; expected 1 or -1")),
        other => Err(Problem::new(ErrorKind::BadFlag, format!("HACS label flag {other:?} is neither 1 nor -1"))),
    }
}

/// Turns the csv crate's record offsets into 1-based line numbers. The crate's own line counter miscounts
/// CRLF and CR-only files, so lines are counted here from the bytes: `\r\n`, `\n` and `\r` each end one.
struct Lines<'d> {
    data: &'d [u8],
    pos: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, offset: u64) -> u64 {
        // A record's offset can point at the blank lines the reader skipped before it.
        let mut start = (offset as usize).max(self.pos).min(self.data.len());
        while start < self.data.len() && matches!(self.data[start], b'\n' | b'\r') {
            start += 1;
        }
        for i in self.pos..start {
            match self.data[i] {
                b'\r' => self.line += 1,
                b'\n' if i == 0 || self.data[i - 1] != b'\r' => self.line += 1,
                _ => {}
            }
        }
        self.pos = start;
        self.line
    }
}

/// A whitespace-only line, which the reader returns as one field.
fn is_blank(rec: &ByteRecord) -> bool {
    rec.len() == 1 && rec[0].trim_ascii().is_empty()
}

/// The index of the field whose opening quote is never closed in the last record of a file, if any:
/// the one case where no line break shows up inside the field. Follows the reader's own rules.
fn open_quote_at_eof(record: &[u8]) -> Option<usize> {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let (mut state, mut field) = (State::FieldStart, 0);
    for &b in record {
        state = match (state, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::FieldStart, b'"') => State::Quoted,
            (_, b',') => {
                field += 1;
                State::FieldStart
            }
            (_, b'\n' | b'\r') => return None,
            _ => State::Unquoted,
        };
    }
    (state == State::Quoted).then_some(field)
}

/// The reader plus what it takes to name lines and to spot unterminated quotes.
struct Records<'d> {
    reader: ::csv::Reader<&'d [u8]>,
    data: &'d [u8],
    lines: Lines<'d>,
    /// Byte offset where the last record read starts.
    start: usize,
}

impl Records<'_> {
    /// The next non-blank record's line, or `None` at the end.
    fn next(&mut self, path: &Path, rec: &mut ByteRecord) -> Result<Option<u64>, InputError> {
        loop {
            let more = self
                .reader
                .read_byte_record(rec)
                .map_err(|e| InputError::new(path, None, None, ErrorKind::Io, format!("cannot read CSV: {e}")))?;
            if !more {
                return Ok(None);
            }
            let line = self.lines.at(rec.position().map_or(0, |p| p.byte()));
            self.start = self.lines.pos;
            if !is_blank(rec) {
                return Ok(Some(line));
            }
        }
    }

    /// The reader never rejects a missing closing quote: it swallows the following lines into the field,
    /// or at the end of the file takes what is left. No valid value spans lines, so a line break inside a
    /// field, or an open quote in the file's last record, is reported as that quote.
    fn check_quotes(&self, path: &Path, rec: &ByteRecord, line: u64, names: &[String]) -> Result<(), InputError> {
        let mut col = rec.iter().position(|f| f.contains(&b'\n') || f.contains(&b'\r'));
        if col.is_none() && self.reader.position().byte() as usize >= self.data.len() {
            col = open_quote_at_eof(&self.data[self.start.min(self.data.len())..]);
        }
        match col {
            Some(col) => Err(InputError::new(
                path,
                Some(line),
                names.get(col).map(String::as_str),
                ErrorKind::UnterminatedQuote,
                "a quoted field runs past the end of its line (missing closing quote)",
            )),
            None => Ok(()),
        }
    }
}

/// Reads a whole CSV file (without its BOM), offering each valid row to `out`; stops at the first error.
pub(crate) fn read(path: &Path, data: &[u8], out: &mut Collector<'_>) -> Result<(), InputError> {
    // No trimming by the reader: it would also trim the line break that betrays an open quote.
    let reader = ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data);
    let lines = Lines { data, pos: 0, line: 1 };
    let mut records = Records { reader, data, lines, start: 0 };
    let mut rec = ByteRecord::new();
    let Some(header_line) = records.next(path, &mut rec)? else {
        return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "empty file: no header"));
    };
    records.check_quotes(path, &rec, header_line, &[])?;
    let layout = Layout::from_header(path, &rec, header_line)?;
    let width = layout.names.len();
    while let Some(line) = records.next(path, &mut rec)? {
        records.check_quotes(path, &rec, line, &layout.names)?;
        if rec.len() != width {
            return Err(InputError::new(
                path,
                Some(line),
                None,
                ErrorKind::FieldCount,
                format!("expected {width} fields as in the header, found {}", rec.len()),
            ));
        }
        let keep_negatives = out.options.keep_negatives;
        let checked =
            layout.check(&rec, line, keep_negatives).map_err(|(p, col)| p.at(path, line, &layout.names[col]))?;
        if let Some(checked) = checked {
            out.offer(checked);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_quotes_at_eof() {
        let cases: [(&[u8], Option<usize>); 10] = [
            (b"a,b,c", None),
            (b"\"a\",b", None),
            (b"\"a", Some(0)),
            (b"a,\"b", Some(1)),
            (b"a,\"b\"\"", Some(1)),
            (b"a,\"b\"\"\"", None),
            (b"a,b\"c", None),
            (b"a,\"b\"c,\"d", Some(2)),
            (b"\"a\nb\"", None),
            (b"", None),
        ];
        for (record, want) in cases {
            assert_eq!(open_quote_at_eof(record), want, "{:?}", String::from_utf8_lossy(record));
        }
    }

    #[test]
    fn line_numbers_for_every_line_ending() {
        // (data, record offsets as the csv reader reports them, lines)
        let cases: [(&[u8], &[u64], &[u64]); 4] = [
            (b"a\nb\nc", &[0, 2, 4], &[1, 2, 3]),
            (b"a\r\nb\r\n\r\nc", &[0, 2, 5], &[1, 2, 4]),
            (b"a\rb\r\rc", &[0, 2, 4], &[1, 2, 4]),
            (b"\n\na\n", &[0], &[3]),
        ];
        for (data, offsets, want) in cases {
            let mut lines = Lines { data, pos: 0, line: 1 };
            let got: Vec<u64> = offsets.iter().map(|&o| lines.at(o)).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(data));
        }
    }
}

//! One line of a delimited file into its fields, for the formats the csv crate does not read as published:
//! AudioSet writes `, "a,b"` (a space before the opening quote), which RFC 4180 readers take as an
//! unquoted field. Here blanks around a field, quoted or not, are dropped; a quoted field may hold the
//! delimiter and `""` for a quote. A field never spans lines in these formats.

use crate::annotations::error::{ErrorKind, InputError, Problem};
use std::borrow::Cow;
use std::path::Path;

/// Splits `line` (without its line break) at `delim`, any character but a quote or a line break (a tab
/// delimiter is not taken for a blank).
pub(crate) fn split(line: &str, delim: char) -> Result<Vec<Cow<'_, str>>, Problem> {
    let bytes = line.as_bytes();
    let mut buf = [0u8; 4];
    // UTF-8 never matches a character's bytes inside another's, so a byte search finds only whole ones.
    let d: &[u8] = delim.encode_utf8(&mut buf).as_bytes();
    let at_delim = |i: usize| bytes[i..].starts_with(d);
    let blank = |i: usize| matches!(bytes[i], b' ' | b'\t') && !at_delim(i);
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && blank(i) {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'"' {
            let mut value = String::new();
            let mut from = i + 1;
            let mut j = from;
            loop {
                match bytes.get(j) {
                    None => {
                        return Err(Problem::new(
                            ErrorKind::UnterminatedQuote,
                            "a quoted field runs past the end of its line (missing closing quote)",
                        ))
                    }
                    Some(b'"') if bytes.get(j + 1) == Some(&b'"') => {
                        value.push_str(&line[from..=j]);
                        j += 2;
                        from = j;
                    }
                    Some(b'"') => {
                        value.push_str(&line[from..j]);
                        j += 1;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            while j < bytes.len() && blank(j) {
                j += 1;
            }
            if j < bytes.len() && !at_delim(j) {
                return Err(Problem::new(ErrorKind::UnterminatedQuote, "text after a quoted field's closing quote"));
            }
            fields.push(Cow::Owned(value));
            i = j;
        } else {
            let end = (i..bytes.len()).find(|&k| at_delim(k)).unwrap_or(bytes.len());
            fields.push(Cow::Borrowed(line[i..end].trim()));
            i = end;
        }
        if i >= bytes.len() {
            return Ok(fields);
        }
        i += d.len(); // the delimiter
    }
}

/// One line of a file whose rows have a fixed shape (AudioSet, AVA-Kinetics, VGGSound): its fields, and what
/// an error about one of them must name.
pub(crate) struct Row<'a> {
    pub fields: Vec<Cow<'a, str>>,
    path: &'a Path,
    line: u64,
    names: &'static [&'static str],
}

impl<'a> Row<'a> {
    /// Splits line `line` of `path` (`raw`, without its line break) at commas. A count of fields outside
    /// `counts` is refused as "expected {expected}, found N" at that line; a quote that does not close, at
    /// the field `line`. `names` are the fields' names, by position.
    pub(crate) fn read(
        path: &'a Path,
        line: u64,
        raw: &'a str,
        names: &'static [&'static str],
        counts: std::ops::RangeInclusive<usize>,
        expected: &str,
    ) -> Result<Row<'a>, InputError> {
        let fields = split(raw, ',').map_err(|p| p.at(path, line, "line"))?;
        if !counts.contains(&fields.len()) {
            let message = format!("expected {expected}, found {}", fields.len());
            return Err(InputError::new(path, Some(line), None, ErrorKind::FieldCount, message));
        }
        Ok(Row { fields, path, line, names })
    }

    /// Turns a problem with field `i` into an error naming the file, the line and the field.
    pub(crate) fn at(&self, i: usize) -> impl Fn(Problem) -> InputError + 'a {
        let (path, line, name) = (self.path, self.line, self.names[i]);
        move |p: Problem| p.at(path, line, name)
    }
}

/// The whole file as text; bytes that are not UTF-8 are reported at their line.
pub(crate) fn text<'d>(path: &Path, data: &'d [u8]) -> Result<&'d str, InputError> {
    std::str::from_utf8(data).map_err(|e| {
        let bad = e.valid_up_to();
        let line = data[..bad].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        InputError::new(
            path,
            Some(line),
            None,
            ErrorKind::BadEncoding,
            format!("not valid UTF-8 (bad byte at offset {bad})"),
        )
    })
}

/// The lines of a file with their 1-based numbers, each without its line break (`\n`, `\r\n` or `\r`).
pub(crate) fn numbered(data: &str) -> impl Iterator<Item = (u64, &str)> {
    let mut rest = data;
    let mut line = 0u64;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        line += 1;
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let text = &rest[..end];
        let skip = match rest.as_bytes().get(end) {
            Some(b'\r') if rest.as_bytes().get(end + 1) == Some(&b'\n') => 2,
            Some(_) => 1,
            None => 0,
        };
        rest = &rest[end + skip..];
        Some((line, text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_as_published() {
        let cases: [(&str, char, &[&str]); 13] = [
            ("a,b,c", ',', &["a", "b", "c"]),
            (
                "--PJHxphWEs, 30.000, 40.000, \"/m/09x0r,/t/dd00088\"",
                ',',
                &["--PJHxphWEs", "30.000", "40.000", "/m/09x0r,/t/dd00088"],
            ),
            (
                "-0BIyqJj9ZU,30,\"cattle, bovinae cowbell\",train",
                ',',
                &["-0BIyqJj9ZU", "30", "cattle, bovinae cowbell", "train"],
            ),
            ("a,,c,", ',', &["a", "", "c", ""]),
            ("\"say \"\"hi\"\"\",x", ',', &["say \"hi\"", "x"]),
            ("a\tb c\t d", '\t', &["a", "b c", "d"]),
            ("\t\tx", '\t', &["", "", "x"]),
            ("a;\"b;c\" ;d", ';', &["a", "b;c", "d"]),
            ("", ',', &[""]),
            ("x", ',', &["x"]),
            ("https://youtu.be/abc|12.5|dog", '|', &["https://youtu.be/abc", "12.5", "dog"]),
            ("caf\u{e9}\u{a7}1.5\u{a7}\u{a7}", '\u{a7}', &["caf\u{e9}", "1.5", "", ""]),
            ("a b  c", ' ', &["a", "b", "", "c"]),
        ];
        for (line, delim, want) in cases {
            assert_eq!(split(line, delim).unwrap(), want, "{line:?}");
        }
        for bad in ["a,\"b", "a,\"b\"c,d", "\"open"] {
            assert_eq!(split(bad, ',').unwrap_err().kind, ErrorKind::UnterminatedQuote, "{bad:?}");
        }
    }

    #[test]
    fn rows_of_a_fixed_shape_or_an_error_naming_file_line_and_field() {
        const NAMES: [&str; 3] = ["id", "start", "label"];
        let path = Path::new("data/v.csv");
        // The fields, or the error and its kind.
        type Want = Result<&'static [&'static str], (&'static str, ErrorKind)>;
        // (line, field counts allowed, what it reads as)
        let cases: [(&str, std::ops::RangeInclusive<usize>, Want); 7] = [
            ("abc, 1.5, dog", 3..=3, Ok(&["abc", "1.5", "dog"])),
            ("abc,1.5,\"dog, big\"", 3..=3, Ok(&["abc", "1.5", "dog, big"])),
            ("abc,1.5", 2..=3, Ok(&["abc", "1.5"])),
            ("abc,1.5", 3..=3, Err(("data/v.csv:7: expected 3 things, found 2", ErrorKind::FieldCount))),
            ("abc,1.5,dog,x", 2..=3, Err(("data/v.csv:7: expected 3 things, found 4", ErrorKind::FieldCount))),
            ("", 3..=3, Err(("data/v.csv:7: expected 3 things, found 1", ErrorKind::FieldCount))),
            (
                "abc,1.5,\"dog",
                3..=3,
                Err((
                    "data/v.csv:7: field `line`: a quoted field runs past the end of its line (missing closing quote)",
                    ErrorKind::UnterminatedQuote,
                )),
            ),
        ];
        for (raw, counts, want) in cases {
            let got = Row::read(path, 7, raw, &NAMES, counts, "3 things");
            match (got, want) {
                (Ok(row), Ok(fields)) => assert_eq!(row.fields, fields, "{raw:?}"),
                (Err(e), Err((message, kind))) => {
                    assert_eq!((e.to_string().as_str(), e.kind), (message, kind), "{raw:?}")
                }
                (got, _) => panic!("{raw:?}: {:?}", got.map(|r| r.fields)),
            }
        }
        let row = Row::read(path, 12, "abc,x,dog", &NAMES, 3..=3, "3 things").unwrap();
        for (i, name) in NAMES.iter().enumerate() {
            let e = row.at(i)(Problem::new(ErrorKind::BadNumber, "boom"));
            assert_eq!(e.to_string(), format!("data/v.csv:12: field `{name}`: boom"));
            assert_eq!(e.kind, ErrorKind::BadNumber);
        }
    }

    #[test]
    fn line_numbers_for_every_line_ending() {
        let cases: [(&str, &[(u64, &str)]); 4] = [
            ("a\nb\nc", &[(1, "a"), (2, "b"), (3, "c")]),
            ("a\r\nb\r\n\r\nc\r\n", &[(1, "a"), (2, "b"), (3, ""), (4, "c")]),
            ("a\rb\r\rc", &[(1, "a"), (2, "b"), (3, ""), (4, "c")]),
            ("", &[]),
        ];
        for (data, want) in cases {
            assert_eq!(numbered(data).collect::<Vec<_>>(), want, "{data:?}");
        }
    }
}

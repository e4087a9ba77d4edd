//! One line of a delimited file into its fields, for the formats the csv crate does not read as published:
//! AudioSet writes `, "a,b"` (a space before the opening quote), which RFC 4180 readers take as an
//! unquoted field. Here blanks around a field, quoted or not, are dropped; a quoted field may hold the
//! delimiter and `""` for a quote. A field never spans lines in these formats.

use crate::annotations::error::{ErrorKind, Problem};
use std::borrow::Cow;

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

/// The whole file as text; bytes that are not UTF-8 are reported at their line.
pub(crate) fn text<'d>(path: &std::path::Path, data: &'d [u8]) -> Result<&'d str, crate::annotations::InputError> {
    std::str::from_utf8(data).map_err(|e| {
        let bad = e.valid_up_to();
        let line = data[..bad].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        crate::annotations::InputError::new(
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

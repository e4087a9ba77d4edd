//! One line of a delimited file into its fields, for the formats the csv crate does not read as published:
//! AudioSet writes `, "a,b"` (a space before the opening quote), which RFC 4180 readers take as an
//! unquoted field. Here blanks around a field, quoted or not, are dropped; a quoted field may hold the
//! delimiter and `""` for a quote. A field never spans lines in these formats.

use crate::annotations::error::{ErrorKind, Problem};
use std::borrow::Cow;

/// Splits `line` (without its line break) at `delim`.
pub(crate) fn split(line: &str, delim: u8) -> Result<Vec<Cow<'_, str>>, Problem> {
    let bytes = line.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i] != delim && matches!(bytes[i], b' ' | b'\t') {
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
            while j < bytes.len() && bytes[j] != delim && matches!(bytes[j], b' ' | b'\t') {
                j += 1;
            }
            if j < bytes.len() && bytes[j] != delim {
                return Err(Problem::new(ErrorKind::UnterminatedQuote, "text after a quoted field's closing quote"));
            }
            fields.push(Cow::Owned(value));
            i = j;
        } else {
            let end = bytes[i..].iter().position(|&b| b == delim).map_or(bytes.len(), |p| i + p);
            fields.push(Cow::Borrowed(line[i..end].trim()));
            i = end;
        }
        if i >= bytes.len() {
            return Ok(fields);
        }
        i += 1; // the delimiter
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
        let cases: [(&str, u8, &[&str]); 9] = [
            ("a,b,c", b',', &["a", "b", "c"]),
            (
                "--PJHxphWEs, 30.000, 40.000, \"/m/09x0r,/t/dd00088\"",
                b',',
                &["--PJHxphWEs", "30.000", "40.000", "/m/09x0r,/t/dd00088"],
            ),
            (
                "-0BIyqJj9ZU,30,\"cattle, bovinae cowbell\",train",
                b',',
                &["-0BIyqJj9ZU", "30", "cattle, bovinae cowbell", "train"],
            ),
            ("a,,c,", b',', &["a", "", "c", ""]),
            ("\"say \"\"hi\"\"\",x", b',', &["say \"hi\"", "x"]),
            ("a\tb c\t d", b'\t', &["a", "b c", "d"]),
            ("a;\"b;c\" ;d", b';', &["a", "b;c", "d"]),
            ("", b',', &[""]),
            ("x", b',', &["x"]),
        ];
        for (line, delim, want) in cases {
            assert_eq!(split(line, delim).unwrap(), want, "{line:?}");
        }
        for bad in ["a,\"b", "a,\"b\"c,d", "\"open"] {
            assert_eq!(split(bad, b',').unwrap_err().kind, ErrorKind::UnterminatedQuote, "{bad:?}");
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

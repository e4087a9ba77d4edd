//! The `--classes FILE` list: one label per line, trimmed; blank lines and `#` comments skipped.

use super::error::{ErrorKind, InputError};
use super::fields::{check_label, utf8};
use std::collections::BTreeSet;
use std::path::Path;

/// Reads a classes file. A file without any class is an error: it would silently select nothing.
pub fn read_classes_file(path: &Path) -> Result<BTreeSet<String>, InputError> {
    let bytes = std::fs::read(path).map_err(|e| InputError::io(path, &e))?;
    parse_classes(path, &bytes)
}

fn parse_classes(path: &Path, bytes: &[u8]) -> Result<BTreeSet<String>, InputError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut classes = BTreeSet::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let text = utf8(raw).map_err(|p| p.at(path, line, "label"))?.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        check_label(text).map_err(|p| p.at(path, line, "label"))?;
        classes.insert(text.to_owned());
    }
    if classes.is_empty() {
        return Err(InputError::new(path, None, None, ErrorKind::Empty, "no classes in file"));
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<Vec<String>, InputError> {
        parse_classes(Path::new("classes.txt"), text).map(|s| s.into_iter().collect())
    }

    #[test]
    fn accepted() {
        let cases: [(&[u8], &[&str]); 5] = [
            (b"abseiling\nair drumming\n", &["abseiling", "air drumming"]),
            (b"\xEF\xBB\xBF# comment\r\n  air drumming \r\n\r\nabseiling", &["abseiling", "air drumming"]),
            (b"b\na\nb\n", &["a", "b"]),
            (b"passing American football (in game)\n", &["passing American football (in game)"]),
            (b"  # indented comment\nx\n", &["x"]),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap(), want, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn rejected() {
        let cases: [(&[u8], ErrorKind, Option<u64>); 4] = [
            (b"", ErrorKind::Empty, None),
            (b"# only a comment\n\n", ErrorKind::Empty, None),
            (b"ok\nbad\x01label\n", ErrorKind::BadLabel, Some(2)),
            (b"ok\n\xFF\n", ErrorKind::BadEncoding, Some(2)),
        ];
        for (text, kind, line) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!((err.kind, err.line), (kind, line), "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn reads_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.txt");
        std::fs::write(&path, "yoga\nzumba\n").unwrap();
        let got: Vec<String> = read_classes_file(&path).unwrap().into_iter().collect();
        assert_eq!(got, ["yoga", "zumba"]);
        let err = read_classes_file(&dir.path().join("missing.txt")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Io);
    }
}

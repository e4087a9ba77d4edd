//! Static files under `/files/...` (annotation lists and the like), with traversal refused.

use std::path::{Path, PathBuf};

use crate::http::Request;
use crate::respond::{file_reply, Reply};
use crate::server::Shared;

/// A file under the static dir, or 403/404. Traversal out of the dir is refused.
pub(crate) fn reply(req: &Request, rest: &str, shared: &Shared) -> Reply {
    let Some(root) = &shared.static_root else {
        return Reply::text(404, "no static dir\n");
    };
    let Some(relative) = safe_relative_path(rest) else {
        return Reply::text(403, "forbidden path\n");
    };
    let Ok(path) = root.join(relative).canonicalize() else {
        return Reply::text(404, "not found\n");
    };
    if !path.starts_with(root) {
        return Reply::text(403, "forbidden path\n");
    }
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => file_reply(req, &path, meta.len(), content_type(&path), true).0,
        _ => Reply::text(404, "not found\n"),
    }
}

/// Percent-decodes a URL path and keeps it only if every segment is a plain name.
fn safe_relative_path(raw: &str) -> Option<PathBuf> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(decoded).ok()?;
    let mut path = PathBuf::new();
    for segment in text.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || segment.contains(['\\', '\0']) {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "csv" => "text/csv",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        let cases: &[(&str, Option<&str>)] = &[
            ("a.csv", Some("a.csv")),
            ("dir/b%20c.txt", Some("dir/b c.txt")),
            ("../etc/passwd", None),
            ("a/../../x", None),
            ("%2e%2e/x", None),
            ("a/%2E%2E/%2e%2e/x", None),
            ("a//b", None),
            ("", None),
            ("a/./b", None),
            ("a%5c..%5cb", None),
            ("a%00b", None),
            ("bad%zz", None),
            ("cut%2", None),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_relative_path(raw), want.map(PathBuf::from), "{raw}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("x/k400.csv")), "text/csv");
        assert_eq!(content_type(Path::new("v.mp4")), "video/mp4");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}

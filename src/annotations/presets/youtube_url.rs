//! A YouTube video URL from an annotation file (`--id-from-url`) into its video id. The text is untrusted:
//! only the published URL shapes of YouTube's own hosts pass, and the id must be exactly 11 of
//! `A-Z a-z 0-9 _ -` (percent-escapes, other hosts, user names, ports, lookalike characters are refused).

use crate::annotations::error::{ErrorKind, Problem};

/// Hosts of YouTube video pages (lowercase, without a port).
const HOSTS: [&str; 5] = ["youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be"];
/// Hosts of embedded players only.
const EMBED_HOSTS: [&str; 2] = ["youtube-nocookie.com", "www.youtube-nocookie.com"];

/// The URL shapes accepted, for messages.
pub(crate) const SHAPES: &str =
    "https://www.youtube.com/watch?v=ID, https://youtu.be/ID, https://www.youtube.com/shorts/ID or /embed/ID";

/// The 11-character video id of `url`: `[http[s]://]HOST/watch?v=ID` (any other query parameters),
/// `youtu.be/ID`, `HOST/shorts/ID`, `HOST/embed/ID`, each optionally followed by `?query` or `#fragment`.
pub(crate) fn video_id(url: &str) -> Result<&str, Problem> {
    let bad = |why: &str| {
        Problem::new(ErrorKind::BadUrl, format!("{url:?} is not a YouTube video URL ({why}); expected {SHAPES}"))
    };
    let rest = url.trim();
    let rest = strip_prefix_ci(rest, "https://").or_else(|| strip_prefix_ci(rest, "http://")).unwrap_or(rest);
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, rest) = rest.split_at(host_end);
    let host = host.to_ascii_lowercase();
    let embed_only = EMBED_HOSTS.contains(&host.as_str());
    if !(HOSTS.contains(&host.as_str()) || embed_only) {
        return Err(bad(&format!("host {host:?}")));
    }
    let before_fragment = rest.split('#').next().unwrap_or("");
    let (path, query) = match before_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (before_fragment, None),
    };
    let id = if host == "youtu.be" {
        path.strip_prefix('/').ok_or_else(|| bad("no id after youtu.be/"))?
    } else if let Some(id) = path.strip_prefix("/shorts/").filter(|_| !embed_only) {
        id
    } else if let Some(id) = path.strip_prefix("/embed/") {
        id
    } else if path == "/watch" && !embed_only {
        let mut ids = query.unwrap_or("").split('&').filter_map(|kv| kv.strip_prefix("v="));
        let id = ids.next().ok_or_else(|| bad("no v= parameter"))?;
        if ids.next().is_some() {
            return Err(bad("more than one v= parameter"));
        }
        id
    } else {
        return Err(bad(&format!("path {path:?}")));
    };
    if id.len() != 11 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(bad(&format!("video id {id:?} is not 11 of A-Z a-z 0-9 _ -")));
    }
    Ok(id)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_shapes_give_their_id() {
        let cases = [
            ("https://www.youtube.com/watch?v=--07WQ2iBlw", "--07WQ2iBlw"),
            ("http://www.youtube.com/watch?v=0wR5jVB-WPk&t=30s", "0wR5jVB-WPk"),
            ("https://www.youtube.com/watch?feature=youtu.be&v=dQw4w9WgXcQ&list=PL1", "dQw4w9WgXcQ"),
            ("HTTPS://WWW.YouTube.com/watch?v=dQw4w9WgXcQ#t=10", "dQw4w9WgXcQ"),
            ("www.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
            ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
            ("https://music.youtube.com/watch?v=dQw4w9WgXcQ&si=abc", "dQw4w9WgXcQ"),
            ("https://youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
            ("https://youtu.be/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
            ("https://youtu.be/dQw4w9WgXcQ?si=K3bq2l&t=42", "dQw4w9WgXcQ"),
            ("youtu.be/_-xY9ZzzAb1", "_-xY9ZzzAb1"),
            ("https://www.youtube.com/shorts/aqz-KE-bpKQ", "aqz-KE-bpKQ"),
            ("https://youtube.com/shorts/aqz-KE-bpKQ?feature=share", "aqz-KE-bpKQ"),
            ("https://www.youtube.com/embed/aqz-KE-bpKQ?start=12&end=20", "aqz-KE-bpKQ"),
            ("https://www.youtube-nocookie.com/embed/aqz-KE-bpKQ", "aqz-KE-bpKQ"),
            ("  https://youtu.be/dQw4w9WgXcQ  ", "dQw4w9WgXcQ"),
        ];
        for (url, want) in cases {
            assert_eq!(video_id(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            "dQw4w9WgXcQ",                                               // a bare id is not a URL
            "",                                                          // nothing
            "https://www.youtube.com/watch?v=dQw4w9WgXc",                // 10 characters
            "https://www.youtube.com/watch?v=dQw4w9WgXcQQ",              // 12
            "https://www.youtube.com/watch?v=dQw4w9WgXc%51",             // percent-escape
            "https://www.youtube.com/watch?v=dQw4w9WgX/Q",               // a slash
            "https://www.youtube.com/watch?v=../../etc/pa",              // a path
            "https://www.youtube.com/watch?v=dQw4w9WgXc\u{51}\u{301}",   // a combining mark
            "https://www.youtube.com/watch?vv=dQw4w9WgXcQ",              // not v=
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&v=aqz-KE-bpKQ", // two ids
            "https://www.youtube.com/watch",                             // no id
            "https://www.youtube.com/channel/UCuAXFkgsw1L7xaCfnd5JJOw",  // not a video
            "https://www.youtube.com/playlist?list=PLBCF2DAC6FFB574DE",
            "https://www.youtube.com/shorts/aqz-KE-bpKQ/extra",
            "https://youtu.be/",
            "https://youtu.be/dQw4w9WgXcQ/x",
            "https://evil.example/watch?v=dQw4w9WgXcQ", // another host
            "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com:8080/watch?v=dQw4w9WgXcQ", // a port
            "https://user@www.youtube.com/watch?v=dQw4w9WgXcQ", // a user name
            "https://www.y\u{43e}utube.com/watch?v=dQw4w9WgXcQ", // a Cyrillic o
            "https://www.youtube-nocookie.com/watch?v=dQw4w9WgXcQ", // embeds only there
            "ftp://youtu.be/dQw4w9WgXcQ",
            "javascript:alert(1)",
        ];
        for url in cases {
            let e = video_id(url).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadUrl, "{url}");
            assert!(e.message.contains("is not a YouTube video URL"), "{url}: {}", e.message);
        }
    }
}

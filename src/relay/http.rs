//! The downstream side of the relay's HTTP: parsing ffmpeg's request heads and rendering response heads.
//!
//! Hand-written rather than a server framework because the relay only ever speaks to one client (ffmpeg's
//! http protocol) and needs exactly GET/HEAD with one `Range`; anything else is answered 400.

use std::fmt::Write as _;

/// The largest request head we accept; ffmpeg's are a few hundred bytes.
pub(super) const MAX_HEAD_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Head,
    Other(String),
}

/// A single byte range as ffmpeg asks for it; bounds are inclusive like the header's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ByteRange {
    /// `bytes=N-`
    From(u64),
    /// `bytes=N-M`
    FromTo(u64, u64),
    /// `bytes=-S`: the last S bytes.
    Suffix(u64),
}

/// What we need from one request head; everything else ffmpeg sends (Icy-MetaData, User-Agent...) is
/// deliberately dropped so it can never leak upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Request {
    pub method: Method,
    /// The path without any query string.
    pub path: String,
    pub range: Option<ByteRange>,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeadError {
    #[error("malformed request line")]
    RequestLine,
    #[error("unsupported protocol version {0:?}")]
    Version(String),
    #[error("malformed header line")]
    HeaderLine,
    #[error("more than one Range header")]
    DuplicateRange,
    #[error("unsupported Range {0:?}")]
    Range(String),
}

/// Finds the end of a request head (the index just past the blank line), if it is complete. Bare `\n`
/// line ends are tolerated, as in the parser.
pub(super) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, &b)| match (b, buf.get(i + 1..)?) {
        (b'\n', [b'\n', ..]) => Some(i + 2),
        (b'\n', [b'\r', b'\n', ..]) => Some(i + 3),
        _ => None,
    })
}

/// Parses a complete request head (request line plus headers, blank line optional).
pub(super) fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(HeadError::RequestLine)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::RequestLine);
    };
    if method.is_empty() || !target.starts_with('/') {
        return Err(HeadError::RequestLine);
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        other => return Err(HeadError::Version(other.to_string())),
    };
    let mut range = None;
    let mut connection = String::new();
    let mut has_body = false;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HeadError::HeaderLine)?;
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(HeadError::HeaderLine);
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("range") {
            if range.is_some() {
                return Err(HeadError::DuplicateRange);
            }
            range = Some(parse_range(value).ok_or_else(|| HeadError::Range(value.to_string()))?);
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && value != "0")
        {
            has_body = true;
        }
    }
    let wants_close = connection.split(',').any(|t| t.trim() == "close");
    let wants_keep = connection.split(',').any(|t| t.trim() == "keep-alive");
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let path = target.split('?').next().unwrap_or(target).to_string();
    // A request body we do not read would be mistaken for the next request, so such connections close.
    let keep_alive = !has_body && if http10 { wants_keep } else { !wants_close };
    Ok(Request { method, path, range, keep_alive })
}

/// Parses a `Range` value. Only one `bytes` range is supported: ffmpeg never sends more, and quietly
/// ignoring an odd Range (as HTTP allows) would turn into a whole-video download upstream.
pub(super) fn parse_range(value: &str) -> Option<ByteRange> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    match (first.is_empty(), last.is_empty()) {
        (false, true) => Some(ByteRange::From(parse_decimal(first)?)),
        (false, false) => {
            let (a, b) = (parse_decimal(first)?, parse_decimal(last)?);
            (a <= b).then_some(ByteRange::FromTo(a, b))
        }
        (true, false) => Some(ByteRange::Suffix(parse_decimal(last)?)).filter(|r| *r != ByteRange::Suffix(0)),
        (true, true) => None,
    }
}

/// Strict decimal: digits only (no sign, no spaces), no overflow.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A response head under construction.
pub(super) struct ResponseHead {
    text: String,
}

impl ResponseHead {
    pub fn new(status: u16) -> Self {
        let mut text = String::with_capacity(256);
        let _ = write!(text, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
        ResponseHead { text }
    }

    pub fn header(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        let value = value.to_string();
        // Values come partly from upstream; a stray line break must not split our response.
        if !value.contains(['\r', '\n']) {
            let _ = write!(self.text, "{name}: {value}\r\n");
        }
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.text.push_str("\r\n");
        self.text.into_bytes()
    }
}

/// The canonical reason phrase, which is what ffmpeg prints after "Server returned".
pub(super) fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Unknown Status")
}

/// A short plain-text error response; the body lets humans testing with curl see why.
pub(super) fn error_response(status: u16, detail: &str) -> Vec<u8> {
    let body = format!("{status} {}: {detail}\n", reason_phrase(status));
    let mut out = ResponseHead::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", body.len())
        .finish();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_values() {
        use ByteRange::*;
        let cases: &[(&str, Option<ByteRange>)] = &[
            ("bytes=0-", Some(From(0))),
            ("bytes=123-", Some(From(123))),
            ("bytes=5-9", Some(FromTo(5, 9))),
            ("bytes=7-7", Some(FromTo(7, 7))),
            ("bytes=-500", Some(Suffix(500))),
            ("  bytes=10-  ", Some(From(10))),
            ("Bytes=1-2", Some(FromTo(1, 2))),
            ("bytes=18446744073709551615-", Some(From(u64::MAX))),
            ("bytes=18446744073709551616-", None),
            ("bytes=9-5", None),
            ("bytes=-0", None),
            ("bytes=-", None),
            ("bytes=", None),
            ("bytes=0-1,5-9", None),
            ("bytes=+1-", None),
            ("bytes=1 -2", None),
            ("bytes=a-", None),
            ("items=0-", None),
            ("0-", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_range(value), *want, "{value:?}");
        }
    }

    #[test]
    fn ffmpeg_request_head() {
        let head = b"GET /m/abc?x=1 HTTP/1.1\r\nUser-Agent: Lavf/59.27.100\r\nAccept: */*\r\n\
                     Range: bytes=0-\r\nConnection: close\r\nHost: 127.0.0.1:4000\r\nIcy-MetaData: 1\r\n\r\n";
        let req = parse_head(head).unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/m/abc");
        assert_eq!(req.range, Some(ByteRange::From(0)));
        assert!(!req.keep_alive);
    }

    #[test]
    fn request_heads() {
        // (head, method, range, keep_alive) or None for a parse error.
        type Want = Option<(Method, Option<ByteRange>, bool)>;
        let cases: &[(&str, Want)] = &[
            ("HEAD /m/t HTTP/1.1\r\n\r\n", Some((Method::Head, None, true))),
            ("GET /m/t HTTP/1.0\r\n\r\n", Some((Method::Get, None, false))),
            ("GET /m/t HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", Some((Method::Get, None, true))),
            ("GET /m/t HTTP/1.1\r\nconnection: TE, close\r\n\r\n", Some((Method::Get, None, false))),
            ("GET /m/t HTTP/1.1\nrange: bytes=4-8\n\n", Some((Method::Get, Some(ByteRange::FromTo(4, 8)), true))),
            ("GET /m/t HTTP/1.1\r\nContent-Length: 5\r\n\r\n", Some((Method::Get, None, false))),
            ("POST /m/t HTTP/1.1\r\n\r\n", Some((Method::Other("POST".into()), None, true))),
            ("GET /m/t HTTP/2\r\n\r\n", None),
            ("GET /m/t\r\n\r\n", None),
            ("GET  /m/t HTTP/1.1\r\n\r\n", None),
            ("GET m/t HTTP/1.1\r\n\r\n", None),
            ("\r\n\r\n", None),
            ("", None),
            ("GET /m/t HTTP/1.1\r\nno colon here\r\n\r\n", None),
            ("GET /m/t HTTP/1.1\r\nBad Name: x\r\n\r\n", None),
            ("GET /m/t HTTP/1.1\r\nRange: bytes=1-\r\nRange: bytes=2-\r\n\r\n", None),
            ("GET /m/t HTTP/1.1\r\nRange: bytes=0-1,3-4\r\n\r\n", None),
            ("GET /m/t HTTP/1.1\r\nRange: bytes=5-1\r\n\r\n", None),
        ];
        for (head, want) in cases {
            let got = parse_head(head.as_bytes()).ok().map(|r| (r.method, r.range, r.keep_alive));
            assert_eq!(got, *want, "{head:?}");
        }
    }

    #[test]
    fn head_end_needs_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\nA: b\n\nrest"), Some(21));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn response_head_renders_and_refuses_line_breaks() {
        let head = ResponseHead::new(206)
            .header("Content-Length", 10)
            .header("Content-Type", "video/mp4\r\nX-Evil: 1")
            .finish();
        assert_eq!(head, b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n");
        let err = String::from_utf8(error_response(429, "upstream")).unwrap();
        assert!(err.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{err}");
        assert!(err.ends_with("\r\n\r\n429 Too Many Requests: upstream\n"), "{err}");
        assert_eq!(reason_phrase(599), "Unknown Status");
    }
}

//! Just enough HTTP/1.1: parse a request head, build a response head.
//!
//! Hand-written rather than hyper so the server can break the protocol on purpose (short bodies,
//! early closes, trickled bytes) exactly the way the scenario asks.

use std::fmt::Write as _;

/// Request heads larger than this are refused; real clients send well under 2 KiB.
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed request line and headers. Bodies are never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target without its query string.
    pub path: String,
    /// The query string without the `?` (empty when there is none), never percent-decoded.
    pub query: String,
    /// `true` for HTTP/1.1 and later, `false` for HTTP/1.0.
    pub http11: bool,
    pub headers: Vec<(String, String)>,
    /// The target was in absolute form (`GET http://host/path`): the client took us for its HTTP proxy.
    pub proxied: bool,
}

/// Why a request head could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    Malformed,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the client allows the connection to stay open after the response.
    pub fn keep_alive(&self) -> bool {
        let tokens = |value: &str, want: &str| value.split(',').any(|t| t.trim().eq_ignore_ascii_case(want));
        match self.header("connection") {
            Some(v) if tokens(v, "close") => false,
            Some(v) if tokens(v, "keep-alive") => true,
            _ => self.http11,
        }
    }

    /// The raw value of the first query parameter `name` (`v` in `/watch?v=abc&t=5`), not percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if pair == name => Some(""),
            _ => None,
        })
    }

    /// A request body we would have to skip; we never read bodies, so such connections are closed.
    pub fn has_body(&self) -> bool {
        self.header("transfer-encoding").is_some() || self.header("content-length").is_some_and(|v| v.trim() != "0")
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)` means more bytes are needed; on success
/// also returns how many bytes the head used, so pipelined requests stay in the buffer.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let Some((head_len, body_start)) = find_head_end(buf) else {
        return if buf.len() > MAX_HEAD { Err(HeadError::TooLarge) } else { Ok(None) };
    };
    if head_len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let text = std::str::from_utf8(&buf[..head_len]).map_err(|_| HeadError::Malformed)?;
    // Tolerate blank lines before the request line, as RFC 9112 asks.
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HeadError::Malformed),
    };
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(HeadError::Malformed);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let target = target.split('#').next().unwrap_or_default();
    // A client using us as its HTTP proxy names the whole URL; we serve it as if it were ours.
    let (target, proxied) = match target.strip_prefix("http://") {
        Some(rest) => (rest.find('/').map_or("/", |at| &rest[at..]), true),
        None => (target, false),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    Ok(Some((Request { method: method.to_owned(), path, query, http11, headers, proxied }, body_start)))
}

/// Finds the blank line ending the head; accepts bare `\n` line ends like lenient servers do.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
        i = nl + 1;
    }
    None
}

/// The standard reason phrase, so clients print familiar messages (`HTTP Error 429: Too Many Requests`).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// A response status line plus headers; `Content-Length` is always given so keep-alive stays framed.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
}

impl ResponseHead {
    pub fn new(status: u16) -> Self {
        ResponseHead { status, headers: vec![("Server", "kinetics-testsrc".to_owned())] }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn encode(&self, content_length: u64, keep_alive: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let _ = write!(out, "Content-Length: {content_length}\r\nConnection: {connection}\r\n\r\n");
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_and_keeps_pipelined_bytes() {
        let raw = b"GET /v/abc.mp4?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-\r\n\r\nGET /next";
        let (req, used) = parse_head(raw).unwrap().unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!((req.path.as_str(), req.query.as_str()), ("/v/abc.mp4", "x=1"));
        assert!(req.http11 && req.keep_alive() && !req.has_body());
        assert_eq!(req.header("range"), Some("bytes=0-"));
        assert_eq!(&raw[used..], b"GET /next");
    }

    #[test]
    fn absolute_form_targets_are_served_as_paths() {
        let req = |target: &str| parse_head(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes()).unwrap().unwrap().0;
        let cases = [
            ("http://127.0.0.1:8080/watch?v=abc", "/watch", "v=abc", true),
            ("http://h/v/abc.mp4", "/v/abc.mp4", "", true),
            ("http://h", "/", "", true),
            ("/v/abc.mp4", "/v/abc.mp4", "", false),
        ];
        for (target, path, query, proxied) in cases {
            let r = req(target);
            assert_eq!((r.path.as_str(), r.query.as_str(), r.proxied), (path, query, proxied), "{target}");
        }
    }

    #[test]
    fn query_table() {
        let req = |target: &str| parse_head(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes()).unwrap().unwrap().0;
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("/watch?v=abc", "/watch", "v=abc", Some("abc")),
            ("/watch?t=5&v=abc&v=xyz", "/watch", "t=5&v=abc&v=xyz", Some("abc")),
            ("/watch?v=a%2Db#t=3", "/watch", "v=a%2Db", Some("a%2Db")),
            ("/watch?v=", "/watch", "v=", Some("")),
            ("/watch?v", "/watch", "v", Some("")),
            ("/watch?vv=abc&xv=1", "/watch", "vv=abc&xv=1", None),
            ("/watch", "/watch", "", None),
            ("/watch#v=abc", "/watch", "", None),
            ("/watch?", "/watch", "", None),
        ];
        for &(target, path, query, v) in cases {
            let req = req(target);
            assert_eq!((req.path.as_str(), req.query.as_str(), req.query_param("v")), (path, query, v), "{target}");
        }
    }

    #[test]
    fn head_table() {
        let cases: &[(&[u8], Result<bool, HeadError>)] = &[
            (b"GET / HTTP/1.1\r\n", Ok(false)),
            (b"GET / HTTP/1.1\r\n\r\n", Ok(true)),
            (b"GET / HTTP/1.0\n\n", Ok(true)),
            (b"\r\nGET / HTTP/1.1\r\n\r\n", Ok(true)),
            (b"GET /\r\n\r\n", Err(HeadError::Malformed)),
            (b"GET / HTTP/2\r\n\r\n", Err(HeadError::Malformed)),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", Err(HeadError::Malformed)),
            (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", Err(HeadError::Malformed)),
        ];
        for (raw, want) in cases {
            let got = parse_head(raw).map(|r| r.is_some());
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(raw));
        }
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(parse_head(&huge).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn keep_alive_rules() {
        let req = |raw: &[u8]| parse_head(raw).unwrap().unwrap().0;
        assert!(!req(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!req(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(req(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(req(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n").has_body());
    }

    #[test]
    fn encodes_status_line_and_framing() {
        let head = ResponseHead::new(429).header("Retry-After", "5").encode(12, false);
        let text = String::from_utf8(head).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(text.contains("\r\nRetry-After: 5\r\n"));
        assert!(text.ends_with("Content-Length: 12\r\nConnection: close\r\n\r\n"));
        assert_eq!(reason(599), "Server Error");
    }
}

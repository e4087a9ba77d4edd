//! Helpers shared by the integration tests: a tiny raw HTTP/1.1 client and polling with a deadline.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use kinetics_testsrc::{Config, TestServer};

/// Starts a server on a free loopback port.
pub fn start(config: Config) -> TestServer {
    kinetics_testsrc::spawn(config, "127.0.0.1:0".parse().unwrap()).expect("test server starts")
}

/// One parsed response; `body` may be shorter than Content-Length when the server cut it off.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> u64 {
        self.header("content-length").expect("content-length").parse().unwrap()
    }
}

/// Connects to `addr`, from a chosen loopback source address when `from` is given (each 127.x.y.z is
/// a distinct client for the per-IP throttle).
pub fn connect(addr: SocketAddr, from: Option<Ipv4Addr>) -> TcpStream {
    let stream = match from {
        None => TcpStream::connect(addr).unwrap(),
        Some(ip) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let stream = runtime.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddrV4::new(ip, 0).into()).unwrap();
                socket.connect(addr).await.unwrap()
            });
            let stream = stream.into_std().unwrap();
            stream.set_nonblocking(false).unwrap();
            stream
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

pub fn request_line(method: &str, path: &str, headers: &[(&str, &str)], close: bool) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        text.push_str("Connection: close\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// Sends one request on a fresh connection and reads the whole response.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request_from(addr, None, method, path, headers)
}

pub fn request_from(
    addr: SocketAddr,
    from: Option<Ipv4Addr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut stream = connect(addr, from);
    stream.write_all(&request_line(method, path, headers, true)).unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader, method == "HEAD").unwrap();
    // The server closes only after counting the response, so reading to the end makes stats exact.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "bytes after the response body");
    response
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers)
}

/// Reads a response head and then the body, up to Content-Length or the end of the stream.
pub fn read_response(reader: &mut impl BufRead, head_only: bool) -> io::Result<Response> {
    let (status, headers) = read_head(reader)?;
    let mut response = Response { status, headers, body: Vec::new() };
    if !head_only {
        let len = response.content_length();
        reader.take(len).read_to_end(&mut response.body)?;
    }
    Ok(response)
}

pub fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return Ok((status, headers));
        }
        let (k, v) = trimmed.split_once(':').expect("header line");
        headers.push((k.to_owned(), v.trim().to_owned()));
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bytes of the file served for `id`, for comparing bodies.
pub fn file_bytes(server: &TestServer, id: &str) -> Vec<u8> {
    std::fs::read(server.video_path(id)).unwrap()
}

/// A fresh empty directory under the system temp dir.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kinetics-testsrc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// All values of attribute `name` in document order (the manifests are ours: one line per element).
pub fn attrs(xml: &str, name: &str) -> Vec<String> {
    let key = format!(" {name}=\"");
    xml.match_indices(&key)
        .map(|(at, _)| {
            let rest = &xml[at + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The text of every `<BaseURL ...>` element, in document order, as written (XML-escaped).
pub fn base_urls(xml: &str) -> Vec<&str> {
    xml.split("<BaseURL").skip(1).map(|s| s.split_once('>').unwrap().1.split("</BaseURL>").next().unwrap()).collect()
}

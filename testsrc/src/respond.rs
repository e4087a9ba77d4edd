//! Builds replies (ranges, throttles, scripted truncation) and writes them, pacing and counting bytes.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::behaviour::{Behaviour, GARBLE_LEN};
use crate::http::{Request, ResponseHead};
use crate::range::{self, ByteRange, RangeOutcome};
use crate::server::Shared;
use crate::stats::{unix_ms, LogEntry};
use crate::throttle::{chunk_size, Pacer};

/// A client that accepts no bytes for this long is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A response ready to be written.
#[derive(Debug)]
pub(crate) struct Reply {
    head: ResponseHead,
    body: Body,
    /// The Content-Length promised in the head.
    len: u64,
    keep_alive: bool,
    id: Option<String>,
    throttled: bool,
    /// Not counted in stats (the `/_stats` endpoint itself).
    internal: bool,
    /// After the body's bytes, neither send more nor close: a stalled body.
    stall: bool,
}

#[derive(Debug)]
enum Body {
    Bytes(Vec<u8>),
    File {
        path: PathBuf,
        start: u64,
        /// Bytes actually sent; less than the promised length when truncating on purpose.
        send: u64,
        rate: Option<u64>,
        /// Where in the file [`Behaviour::Garble`]'s damaged bytes start.
        garble: Option<u64>,
    },
}

impl Reply {
    fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            head: ResponseHead::new(status).header("Content-Type", content_type),
            len: body.len() as u64,
            body: Body::Bytes(body),
            keep_alive: true,
            id: None,
            throttled: false,
            internal: false,
            stall: false,
        }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply::bytes(status, "text/plain; charset=utf-8", body.as_bytes().to_vec())
    }

    pub fn html(body: &str) -> Reply {
        Reply::bytes(200, "text/html; charset=utf-8", body.as_bytes().to_vec())
    }

    /// A DASH manifest.
    pub fn mpd(body: String) -> Reply {
        Reply::bytes(200, "application/dash+xml", body.into_bytes())
    }

    pub fn json(value: &impl serde::Serialize) -> Reply {
        let body = serde_json::to_vec_pretty(value).expect("stats serialize");
        Reply::bytes(200, "application/json", body)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.head = self.head.header(name, value);
        self
    }

    /// Close the connection after this response.
    pub fn close(mut self) -> Reply {
        self.keep_alive = false;
        self
    }

    pub fn internal(mut self) -> Reply {
        self.internal = true;
        self
    }

    pub fn for_id(mut self, id: Option<&str>) -> Reply {
        self.id = id.map(str::to_owned);
        self
    }
}

/// A file response honouring Range when `ranges` is set; also says whether the served range is
/// open-ended (no usable Range, or `bytes=a-`), the shape media servers throttle.
pub(crate) fn file_reply(req: &Request, path: &Path, total: u64, content_type: &str, ranges: bool) -> (Reply, bool) {
    let header = req.header("range");
    let outcome = if ranges { range::resolve_header(header, total) } else { RangeOutcome::Full };
    let (status, len, content_range) = outcome.response_parts(total);
    let open_ended = match outcome {
        RangeOutcome::Full => true,
        RangeOutcome::Partial { .. } => header.and_then(ByteRange::parse).is_some_and(|r| r.is_open_ended()),
        RangeOutcome::Unsatisfiable => false,
    };
    let mut head = ResponseHead::new(status).header("Content-Type", content_type);
    if ranges {
        head = head.header("Accept-Ranges", "bytes");
    }
    if let Some(value) = content_range {
        head = head.header("Content-Range", value);
    }
    let body = match outcome {
        RangeOutcome::Unsatisfiable => Body::Bytes(Vec::new()),
        _ => Body::File { path: path.to_owned(), start: outcome.start(), send: len, rate: None, garble: None },
    };
    let reply = Reply { head, body, len, keep_alive: true, id: None, throttled: false, internal: false, stall: false };
    (reply, open_ended)
}

/// A media response (progressive video or one DASH track) shaped by the id's behaviour and the
/// open-range throttle.
pub(crate) fn media(
    req: &Request,
    (path, len): (&Path, u64),
    content_type: &str,
    (id, behaviour): (&str, Behaviour),
    shared: &Shared,
) -> Reply {
    let (mut reply, open_ended) = file_reply(req, path, len, content_type, behaviour != Behaviour::NoRange);
    let throttle = &shared.config.open_range_throttle;
    let throttled = throttle.enabled && open_ended && reply.len > throttle.threshold;
    let promised = reply.len;
    let mut stall = false;
    if let Body::File { send, rate, start, garble, .. } = &mut reply.body {
        if throttled {
            *rate = Some(throttle.rate);
        }
        match behaviour {
            Behaviour::Slow { bytes_per_sec } => *rate = Some(rate.map_or(bytes_per_sec, |r| r.min(bytes_per_sec))),
            Behaviour::Truncate { fraction } => *send = (promised as f64 * fraction).floor() as u64,
            Behaviour::Stall { fraction, count } => {
                // The body stalls if it reaches the stuck place (and the id's count allows one more).
                let at = (len as f64 * fraction).floor() as u64;
                if (*start..*start + promised).contains(&at)
                    && count.is_none_or(|n| shared.should_fail(&format!("{id}#stall"), n))
                {
                    *send = at - *start;
                    stall = true;
                }
            }
            Behaviour::Garble { fraction } => *garble = Some((len as f64 * fraction).floor() as u64),
            _ => {}
        }
    }
    if matches!(behaviour, Behaviour::Truncate { .. }) || stall {
        reply.keep_alive = false;
    }
    reply.stall = stall;
    if throttled {
        reply.throttled = true;
        reply = reply.header("X-Testsrc-Throttled", "open-range");
    }
    reply
}

/// Writes the reply. `Ok(true)` when the connection may serve another request; `Err` when the client
/// went away (not worth reporting: ffmpeg hangs up on every seek).
pub(crate) async fn send(
    stream: &mut TcpStream,
    reply: Reply,
    req: Option<&Request>,
    peer: SocketAddr,
    shared: &Shared,
) -> io::Result<bool> {
    let is_head = req.is_some_and(|r| r.method == "HEAD");
    let keep_alive = reply.keep_alive && req.is_some_and(Request::keep_alive);
    let started = SystemTime::now();
    let id = reply.id.as_deref();
    if !reply.internal {
        shared.recorder.response_started(peer.ip(), id, reply.head.status);
    }
    let mut written = 0u64;
    let result = async {
        write(stream, &reply.head.encode(reply.len, keep_alive)).await?;
        if !is_head {
            write_body(stream, &reply, shared, &mut written).await?;
        }
        stream.flush().await?;
        if reply.stall && !is_head {
            hold_until_hangup(stream).await;
        }
        Ok(())
    }
    .await;
    let promised = if is_head { 0 } else { reply.len };
    let complete = result.is_ok() && written == promised;
    if !reply.internal {
        let entry = LogEntry {
            time_ms: unix_ms(started),
            ip: peer.ip().to_string(),
            method: req.map_or_else(String::new, |r| r.method.clone()),
            path: req.map_or_else(String::new, |r| r.path.clone()),
            id: reply.id.clone(),
            range: req.and_then(|r| r.header("range")).map(str::to_owned),
            status: reply.head.status,
            bytes: written,
            throttled: reply.throttled,
            complete,
            proxied: req.is_some_and(|r| r.proxied),
            cookie: req.and_then(|r| r.header("cookie")).map(str::to_owned),
        };
        if shared.config.log_requests {
            let range = entry.range.as_deref().unwrap_or("-");
            let query = req.map(|r| r.query.as_str()).filter(|q| !q.is_empty()).map(|q| format!("?{q}"));
            let (ip, method, path, query) = (&entry.ip, &entry.method, &entry.path, query.unwrap_or_default());
            eprintln!("{ip} {method} {path}{query} [{range}] {} {}B", entry.status, entry.bytes);
        }
        shared.recorder.finished(entry);
    }
    result.map(|()| keep_alive && complete)
}

/// How long a stalled body keeps its connection open if the client never gives up.
const STALL_LIMIT: Duration = Duration::from_secs(600);

/// Sends nothing and keeps the connection open until the client closes it (or [`STALL_LIMIT`]).
async fn hold_until_hangup(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    let _ = timeout(STALL_LIMIT, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    match timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")),
    }
}

/// Writes the body chunk by chunk under the connection's pacing and the global bucket.
async fn write_body(stream: &mut TcpStream, reply: &Reply, shared: &Shared, written: &mut u64) -> io::Result<()> {
    let (mut source, mut remaining, rate, mut at, garble) = match &reply.body {
        Body::Bytes(bytes) => (Source::Bytes(bytes.as_slice()), bytes.len() as u64, None, 0, None),
        Body::File { path, start, send, rate, garble } => {
            let mut file = tokio::fs::File::open(path).await?;
            file.seek(io::SeekFrom::Start(*start)).await?;
            (Source::File(file), *send, *rate, *start, *garble)
        }
    };
    let bucket = shared.bucket.as_ref().filter(|_| !reply.internal);
    let mut pacer = rate.map(Pacer::new);
    // Small chunks under any limit, so a low global cap is paced smoothly rather than in bursts.
    let tightest = rate.into_iter().chain(bucket.map(|_| shared.config.bandwidth)).min();
    let mut chunk = vec![0u8; chunk_size(tightest)];
    while remaining > 0 {
        let n = remaining.min(chunk.len() as u64) as usize;
        source.read(&mut chunk[..n]).await?;
        if let Some(from) = garble {
            damage(&mut chunk[..n], at, from);
        }
        at += n as u64;
        if let Some(pacer) = &mut pacer {
            tokio::time::sleep_until(pacer.next_write_at(Instant::now()).into()).await;
        }
        if let Some(bucket) = bucket {
            tokio::time::sleep_until(bucket.reserve(n as u64, Instant::now()).into()).await;
        }
        write(stream, &chunk[..n]).await?;
        *written += n as u64;
        remaining -= n as u64;
        if let Some(pacer) = &mut pacer {
            pacer.record(n as u64);
        }
        if !reply.internal {
            shared.recorder.bytes_written(reply.id.as_deref(), n as u64);
        }
    }
    Ok(())
}

/// Damages the bytes of `chunk` (the file's bytes from `at` on) that fall in `[from, from + GARBLE_LEN)`.
fn damage(chunk: &mut [u8], at: u64, from: u64) {
    let end = at + chunk.len() as u64;
    let (lo, hi) = (from.max(at), (from + GARBLE_LEN).min(end));
    if lo < hi {
        for b in &mut chunk[(lo - at) as usize..(hi - at) as usize] {
            *b ^= 0xA5;
        }
    }
}

enum Source<'a> {
    Bytes(&'a [u8]),
    File(tokio::fs::File),
}

impl Source<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Source::Bytes(bytes) => {
                let (head, rest) = std::mem::take(bytes).split_at(buf.len());
                buf.copy_from_slice(head);
                *bytes = rest;
                Ok(())
            }
            Source::File(file) => file.read_exact(buf).await.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbled_bytes_are_the_same_whatever_the_chunks() {
        let file: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let from = 1000;
        let mut whole = file.clone();
        damage(&mut whole, 0, from);
        let changed: Vec<usize> = (0..file.len()).filter(|&i| whole[i] != file[i]).collect();
        assert_eq!(changed.first(), Some(&1000));
        assert_eq!(changed.len() as u64, GARBLE_LEN);
        for size in [1, 7, 100, 511, 512, 513, 4096] {
            let mut pieces = file.clone();
            for (i, chunk) in pieces.chunks_mut(size).enumerate() {
                damage(chunk, (i * size) as u64, from);
            }
            assert_eq!(pieces, whole, "chunks of {size}");
        }
    }
}

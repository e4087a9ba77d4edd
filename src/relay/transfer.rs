//! Serving one GET or HEAD for a registration: resolve the range, fetch it upstream in bounded pieces,
//! and stream each piece to ffmpeg as it arrives.

use std::time::Duration;

use std::os::fd::AsRawFd;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{error_response, ByteRange, ResponseHead};
use super::registry::{Entry, Meta, UpstreamError};
use super::upstream::{open_piece, Piece};
use super::RelayConfig;
use crate::governor::rate::HOLD_BOUND;

/// Writes to ffmpeg go out in slices this size. The relay's socket send buffer is small (see
/// `server.rs`); written whole, a chunk becomes one ~64 KB loopback segment that fills it, and each such
/// segment then waits for the receiver's delayed ACK (measured: 2 MB/s). In slices, several segments
/// are in flight, the receiver acknowledges at once, and the relay moves 0.5-1 GB/s.
const WRITE_SLICE: usize = 16 * 1024;

/// How long ffmpeg may leave our writes blocked before we give up on it; ffmpeg copying to a file
/// reads as fast as we deliver, so this only frees upstream connections held by a stuck client.
const DOWNSTREAM_STALL: Duration = Duration::from_secs(300);

/// How a request ended, which decides what happens to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A whole response went out; the connection may carry another request.
    Complete,
    /// ffmpeg hung up or stopped reading.
    ClientGone,
    /// The transfer broke after the head went out: the connection must be reset so that ffmpeg sees an
    /// error rather than a short file it might take for the end.
    Abort,
}

/// Answers one GET (or HEAD, with `head_only`) for `entry`.
pub(super) async fn serve(
    entry: &Entry,
    config: &RelayConfig,
    head_only: bool,
    range: Option<ByteRange>,
    out: &mut TcpStream,
) -> Outcome {
    let request = entry.note_downstream_request();
    let needs_length = head_only || matches!(range, Some(ByteRange::Suffix(_)));
    let meta = match entry.meta() {
        None if needs_length => match learn_length(entry, config, out).await {
            Ok(meta) => Some(meta),
            Err(None) => return Outcome::ClientGone,
            Err(Some(error)) => return fail_before_head(entry, error, out).await,
        },
        meta => meta,
    };
    let content_type = meta.as_ref().and_then(|m| m.content_type.clone());
    let Some((start, end)) = resolve(range, meta.as_ref().map(|m| m.total)) else {
        let total = meta.map_or(0, |m| m.total);
        let head = ResponseHead::new(416).header("Content-Range", format!("bytes */{total}"));
        return send(out, &head.header("Content-Length", 0).finish()).await;
    };
    if let Some(Meta { total: 0, .. }) = meta {
        // Only reachable without a Range: an empty resource is a complete, empty 200.
        return send(out, &ResponseHead::new(200).header("Content-Length", 0).finish()).await;
    }
    if head_only {
        let total = meta.map_or(0, |m| m.total);
        let head = response_head(range.is_some(), start, end.unwrap_or(total - 1).min(total - 1), total, content_type);
        return send(out, &head).await;
    }
    // The first bytes come from the cache when it has them (the length is known then), or else from
    // upstream before the head goes out, so that an upstream error status still reaches ffmpeg as a status.
    let mut ramp = 0;
    let (first, total) = match meta.as_ref().filter(|_| entry.cached(start, start).is_some()) {
        Some(meta) => (None, meta.total),
        None => {
            let last = entry.piece_end(start, end, meta.as_ref().map(|m| m.total), &mut ramp, config.request_size);
            match open_with_retries(entry, config, start, last, out).await {
                Ok(piece) => {
                    let total = piece.total;
                    (Some(piece), total)
                }
                Err(None) => return Outcome::ClientGone,
                Err(Some(error)) => return fail_before_head(entry, error, out).await,
            }
        }
    };
    let end = end.unwrap_or(total - 1).min(total - 1);
    let content_type = entry.meta().and_then(|m| m.content_type);
    if send(out, &response_head(range.is_some(), start, end, total, content_type)).await != Outcome::Complete {
        return Outcome::ClientGone;
    }
    stream(entry, config, Span { offset: start, end, total, request }, first, ramp, out).await
}

/// The bytes one response still has to deliver.
struct Span {
    offset: u64,
    end: u64,
    total: u64,
    /// Which of ffmpeg's requests for this URL it answers (0 for the first).
    request: u64,
}

/// The first byte and (if bounded) the last byte wanted, or `None` when the range cannot be satisfied.
/// A suffix range needs the total, which the caller has learned by then.
fn resolve(range: Option<ByteRange>, total: Option<u64>) -> Option<(u64, Option<u64>)> {
    let (start, end) = match range {
        None => return Some((0, None)),
        Some(ByteRange::From(a)) => (a, None),
        Some(ByteRange::FromTo(a, b)) => (a, Some(b)),
        Some(ByteRange::Suffix(n)) => {
            let total = total?;
            (total - n.min(total), None)
        }
    };
    match total {
        Some(total) if start >= total => None,
        _ => Some((start, end)),
    }
}

fn response_head(partial: bool, start: u64, end: u64, total: u64, content_type: Option<String>) -> Vec<u8> {
    let mut head = ResponseHead::new(if partial { 206 } else { 200 });
    if partial {
        head = head.header("Content-Range", format!("bytes {start}-{end}/{total}"));
    }
    head = head.header("Content-Length", end - start + 1).header("Accept-Ranges", "bytes");
    if let Some(content_type) = content_type {
        head = head.header("Content-Type", content_type);
    }
    // No `Connection: close` even when closing: ffmpeg then treats a short body as an error
    // ("Stream ends prematurely") instead of as the end of the file.
    head.finish()
}

/// A one-byte request, to answer HEAD or a suffix range before anything else revealed the length.
/// `Err(None)`: ffmpeg hung up while the request waited its turn.
async fn learn_length(entry: &Entry, config: &RelayConfig, out: &TcpStream) -> Result<Meta, Option<UpstreamError>> {
    let mut piece = open_with_retries(entry, config, 0, 0, out).await?;
    // The byte itself is not needed; reading it lets the connection go back to the client's pool.
    let _ = piece.next_chunk(entry, config.read_timeout).await;
    Ok(entry.meta().unwrap_or(Meta { total: piece.total, content_type: None }))
}

/// Waits for the egress's turn to ask upstream (its learned rate, and its hold while banned: ffmpeg waits on
/// the local connection instead of the request going into the ban), then opens a piece. `Err(None)`: ffmpeg
/// hung up meanwhile, nothing was asked.
async fn paced_piece(
    entry: &Entry,
    out: &TcpStream,
    start: u64,
    end: u64,
    head_timeout: Duration,
    retry: bool,
) -> Result<Piece, Option<UpstreamError>> {
    if let Some(gate) = &entry.gate {
        let waited = gate.wait(HOLD_BOUND, 1).await;
        // Another request of the clip met a 429 meanwhile (its wait ended at once): the clip ends a throttle
        // signal, whatever this one would be answered. A turn not taken is not part of the rate sent at.
        if entry.was_throttled() {
            if let Ok(at) = waited {
                gate.sent(1, 0, at);
            }
            return Err(Some(UpstreamError::throttled_before()));
        }
        let at = waited.map_err(|held| Some(UpstreamError::Held(held.0)))?;
        if !peer_open(out) {
            gate.sent(1, 0, at);
            return Err(None);
        }
    }
    open_piece(entry, start, end, head_timeout, retry).await.map_err(Some)
}

/// Opens a piece in its turn, retrying network failures. HTTP error statuses are not retried here: on the
/// first request they go straight back to ffmpeg, whose message the caller's failure classifier reads.
async fn open_with_retries(
    entry: &Entry,
    config: &RelayConfig,
    start: u64,
    end: u64,
    out: &TcpStream,
) -> Result<Piece, Option<UpstreamError>> {
    let mut attempt = 0;
    loop {
        match paced_piece(entry, out, start, end, config.connect_timeout, attempt > 0).await {
            Err(Some(UpstreamError::Transport(why))) if attempt < config.upstream_retries => {
                tracing::debug!(host = %entry.host, %why, attempt, "relay: retrying upstream request");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Answers ffmpeg when upstream failed before any response head went out.
async fn fail_before_head<W: AsyncWrite + Unpin>(entry: &Entry, error: UpstreamError, out: &mut W) -> Outcome {
    let status = match &error {
        UpstreamError::Status { status, .. } => *status,
        // Nothing was asked upstream: ffmpeg hears the service is unavailable, the clip is given back.
        UpstreamError::Held(_) => 503,
        _ => 502,
    };
    let mut response = error_response(status, &error.to_string());
    if status == 416 {
        // A range past the end is ffmpeg probing, not an upstream failure worth recording.
        if let Some(meta) = entry.meta() {
            let head = ResponseHead::new(416).header("Content-Range", format!("bytes */{}", meta.total));
            response = head.header("Content-Length", 0).finish();
        }
    } else {
        tracing::debug!(host = %entry.host, %error, "relay: upstream failed before the response");
        entry.note_error(error);
    }
    send(out, &response).await
}

/// Delivers `span` from the cache and from upstream pieces (starting with `first`, if already open),
/// remembering what arrives; transient upstream failures are retried from the current offset, and each
/// retry of the same piece counts against `upstream_retries`.
async fn stream(
    entry: &Entry,
    config: &RelayConfig,
    mut span: Span,
    mut first: Option<Piece>,
    mut ramp: u32,
    out: &mut TcpStream,
) -> Outcome {
    let mut failures = 0;
    let start = span.offset;
    while span.offset <= span.end {
        let opened = match first.take() {
            Some(piece) => Ok(piece),
            None => {
                if let Some(bytes) = entry.cached(span.offset, span.end) {
                    if send(out, &bytes).await != Outcome::Complete {
                        return Outcome::ClientGone;
                    }
                    span.offset += bytes.len() as u64;
                    continue;
                }
                if span.offset > start && !settle(out, config.read_timeout).await {
                    return Outcome::ClientGone;
                }
                // ffmpeg asked for this URL again since: it has moved on from this response (a seek).
                if span.offset > start && entry.downstream_requests() > span.request + 1 {
                    return Outcome::ClientGone;
                }
                if span.offset > start
                    && entry.outside_plan(span.offset)
                    && !still_wanted(entry, span.request, out).await
                {
                    return Outcome::ClientGone;
                }
                let last =
                    entry.piece_end(span.offset, Some(span.end), Some(span.total), &mut ramp, config.request_size);
                match paced_piece(entry, out, span.offset, last, config.connect_timeout, failures > 0).await {
                    Err(None) => return Outcome::ClientGone,
                    Err(Some(error)) => Err(error),
                    Ok(piece) => Ok(piece),
                }
            }
        };
        let error = match opened {
            Ok(piece) if piece.total != span.total => {
                let why = format!("resource length changed from {} to {}", span.total, piece.total);
                return abort(entry, UpstreamError::BadContentRange(why));
            }
            Ok(mut piece) => {
                let error = loop {
                    let at = piece.offset;
                    match piece.next_chunk(entry, config.read_timeout).await {
                        Ok(Some(chunk)) => {
                            entry.remember(at, &chunk);
                            if send(out, &chunk).await != Outcome::Complete {
                                drain(entry, config, piece).await;
                                return Outcome::ClientGone;
                            }
                        }
                        Ok(None) => break None,
                        Err(error) => break Some(error),
                    }
                };
                span.offset = piece.offset;
                error
            }
            Err(error) => Some(error),
        };
        match error {
            None => failures = 0,
            Some(error) if error.is_transient() && failures < config.upstream_retries => {
                tracing::debug!(host = %entry.host, %error, offset = span.offset, "relay: retrying upstream piece");
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
            }
            Some(error) => return abort(entry, error),
        }
    }
    Outcome::Complete
}

/// The most of a piece still read after ffmpeg hung up on it, and for how long.
const DRAIN_MAX: u64 = 256 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Keeps the rest of a small piece ffmpeg hung up on: upstream has mostly sent it already (it sits in our
/// socket buffer), and ffmpeg's next request often starts inside it (after a seek back, or the first
/// fragment right after the header).
async fn drain(entry: &Entry, config: &RelayConfig, mut piece: Piece) {
    if piece.is_done() || piece.end - piece.offset + 1 > DRAIN_MAX {
        return;
    }
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        loop {
            let at = piece.offset;
            match piece.next_chunk(entry, config.read_timeout).await {
                Ok(Some(chunk)) => entry.remember(at, &chunk),
                _ => return,
            }
        }
    })
    .await;
}

/// Waits until ffmpeg's kernel has acknowledged everything written so far (at most `limit`), then says
/// whether ffmpeg is still there. Without this the next upstream piece would be asked for as soon as the
/// last one fit into socket buffers, long before ffmpeg wanted it, and be wasted when ffmpeg hangs up
/// after reading what it needed (it seeks by closing the connection and opening another).
async fn settle(out: &TcpStream, limit: Duration) -> bool {
    let fd = out.as_raw_fd();
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_micros(500);
    loop {
        // A peer that hung up with bytes unread resets the connection, and the kernel keeps counting the
        // bytes it never acknowledged as queued: without this the response (its entry and every byte it
        // cached) would wait out `limit` after ffmpeg is gone.
        if !peer_open(out) {
            return false;
        }
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ for TCP) writes one int; fd stays open while `out` is borrowed.
        let ok = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } == 0;
        if !ok || queued == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    peer_open(out)
}

/// How long ffmpeg may take to move on once it has what it needs, before a piece outside the plan is
/// asked for anyway: once the socket buffers are drained, ffmpeg seeks away (a new request, then it closes
/// this connection) or ends within milliseconds, unless it is blocked reading because it needs more. A plan
/// that missed bytes ffmpeg needs costs this wait once a piece, and so does a clip whose format was refused
/// (ffmpeg then reads on from the header piece by piece before it gives up): at 4 s a refused DASH clip took
/// 16 s to reach its itag-18 fetch, so the wait stays at 1 s.
const OUTSIDE_PLAN_GRACE: Duration = Duration::from_secs(1);

/// Waits up to [`OUTSIDE_PLAN_GRACE`] for ffmpeg to move on from this response: it hangs up, or asks for
/// this URL again (a seek) after `request`. `true` if it did neither and so still wants the bytes that follow.
async fn still_wanted(entry: &Entry, request: u64, out: &TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + OUTSIDE_PLAN_GRACE;
    let mut pause = Duration::from_millis(2);
    while tokio::time::Instant::now() < deadline {
        if !peer_open(out) || entry.downstream_requests() > request + 1 {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    peer_open(out)
}

/// Whether ffmpeg's side of the connection is still open: no FIN and no reset seen (a peek, no wait).
fn peer_open(out: &TcpStream) -> bool {
    let fd = out.as_raw_fd();
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte peek into a local buffer; MSG_DONTWAIT keeps it from blocking the runtime.
    let n = unsafe { libc::recv(fd, byte.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    match n {
        // ffmpeg closed its side (FIN), or reset it because it closed with bytes unread.
        0 => false,
        n if n < 0 => {
            let e = std::io::Error::last_os_error();
            matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted)
        }
        _ => true,
    }
}

fn abort(entry: &Entry, error: UpstreamError) -> Outcome {
    tracing::debug!(host = %entry.host, %error, "relay: aborting the transfer");
    entry.note_error(error);
    Outcome::Abort
}

async fn send<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> Outcome {
    for part in bytes.chunks(WRITE_SLICE) {
        match tokio::time::timeout(DOWNSTREAM_STALL, out.write_all(part)).await {
            Ok(Ok(())) => {}
            _ => return Outcome::ClientGone,
        }
    }
    Outcome::Complete
}

/// 200 ms, 400 ms, 800 ms ... capped at 5 s, with ±25% jitter so parallel clips do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1 << attempt.min(5)).min(Duration::from_secs(5));
    base.mul_f64(0.75 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_ranges() {
        use ByteRange::*;
        let cases = [
            (None, None, Some((0, None))),
            (None, Some(100), Some((0, None))),
            (Some(From(10)), None, Some((10, None))),
            (Some(From(10)), Some(100), Some((10, None))),
            (Some(From(100)), Some(100), None),
            (Some(FromTo(5, 500)), Some(100), Some((5, Some(500)))),
            (Some(FromTo(5, 9)), None, Some((5, Some(9)))),
            (Some(Suffix(30)), Some(100), Some((70, None))),
            (Some(Suffix(300)), Some(100), Some((0, None))),
            (Some(Suffix(30)), None, None),
        ];
        for (range, total, want) in cases {
            assert_eq!(resolve(range, total), want, "{range:?} of {total:?}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for (attempt, low, high) in [(0, 150, 250), (1, 300, 500), (2, 600, 1000), (10, 3750, 6250)] {
            let ms = backoff(attempt).as_millis();
            assert!((low..=high).contains(&ms), "attempt {attempt}: {ms} ms");
        }
    }
}

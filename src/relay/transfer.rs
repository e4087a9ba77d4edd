//! Serving one GET or HEAD for a registration: resolve the range, fetch it upstream in bounded pieces,
//! and stream each piece to ffmpeg as it arrives.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::http::{error_response, ByteRange, ResponseHead};
use super::registry::{Entry, Meta, UpstreamError};
use super::upstream::{open_piece, Piece};
use super::RelayConfig;

/// Writes to ffmpeg go out in slices this size. The relay's socket send buffer is small (see
/// `server.rs`); written whole, a chunk becomes one ~64 KB loopback segment that fills it, and each such
/// segment then waits for the receiver's delayed ACK (measured: 2 MB/s). In slices, several segments
/// are in flight, the receiver acknowledges at once, and the relay moves 0.5-1 GB/s.
const WRITE_SLICE: usize = 16 * 1024;

/// How long ffmpeg may leave our writes blocked before we give up on it; ffmpeg copying to a file
/// reads as fast as we deliver, so this only frees upstream connections held by a stuck client.
const DOWNSTREAM_STALL: Duration = Duration::from_secs(300);

/// The first upstream piece of a response; each next piece doubles, up to the request size. ffmpeg reads
/// a clip's header and its window in separate requests and hangs up on each long before the end of the
/// file: small first pieces keep what the server sends past that point small, large later ones keep long
/// reads fast.
const FIRST_PIECE: u64 = 64 * 1024;

/// The size of the `index`-th upstream piece (0-based) of one response.
fn piece_size(index: u32, request_size: u64) -> u64 {
    FIRST_PIECE.checked_shl(index.min(40)).unwrap_or(u64::MAX).min(request_size).max(1)
}

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
pub(super) async fn serve<W: AsyncWrite + Unpin>(
    entry: &Entry,
    config: &RelayConfig,
    head_only: bool,
    range: Option<ByteRange>,
    out: &mut W,
) -> Outcome {
    let needs_length = head_only || matches!(range, Some(ByteRange::Suffix(_)));
    let meta = match entry.meta() {
        None if needs_length => match learn_length(entry, config).await {
            Ok(meta) => Some(meta),
            Err(error) => return fail_before_head(entry, error, out).await,
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
    let first_end = piece_end(start, end, meta.map(|m| m.total), piece_size(0, config.request_size));
    let piece = match open_with_retries(entry, config, start, first_end).await {
        Ok(piece) => piece,
        Err(error) => return fail_before_head(entry, error, out).await,
    };
    let total = piece.total;
    let end = end.unwrap_or(total - 1).min(total - 1);
    let content_type = entry.meta().and_then(|m| m.content_type);
    if send(out, &response_head(range.is_some(), start, end, total, content_type)).await != Outcome::Complete {
        return Outcome::ClientGone;
    }
    stream(entry, config, piece, end, out).await
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

/// The last byte of the next upstream request: within the request size, the wanted end, and the file.
fn piece_end(offset: u64, end: Option<u64>, total: Option<u64>, request_size: u64) -> u64 {
    let mut last = offset.saturating_add(request_size - 1);
    if let Some(end) = end {
        last = last.min(end);
    }
    if let Some(total) = total {
        last = last.min(total.saturating_sub(1)).max(offset);
    }
    last
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
async fn learn_length(entry: &Entry, config: &RelayConfig) -> Result<Meta, UpstreamError> {
    let mut piece = open_with_retries(entry, config, 0, 0).await?;
    // The byte itself is not needed; reading it lets the connection go back to the client's pool.
    let _ = piece.next_chunk(entry, config.read_timeout).await;
    Ok(entry.meta().unwrap_or(Meta { total: piece.total, content_type: None }))
}

/// Opens a piece, retrying network failures. HTTP error statuses are not retried here: on the first
/// request they go straight back to ffmpeg, whose message the caller's failure classifier reads.
async fn open_with_retries(entry: &Entry, config: &RelayConfig, start: u64, end: u64) -> Result<Piece, UpstreamError> {
    let mut attempt = 0;
    loop {
        match open_piece(entry, start, end, config.connect_timeout, attempt > 0).await {
            Err(UpstreamError::Transport(why)) if attempt < config.upstream_retries => {
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

/// Streams `piece` and the pieces after it up to `end`, retrying transient failures from the current
/// offset; each retry of the same stretch counts against `upstream_retries`.
async fn stream<W: AsyncWrite + Unpin>(
    entry: &Entry,
    config: &RelayConfig,
    mut piece: Piece,
    end: u64,
    out: &mut W,
) -> Outcome {
    let total = piece.total;
    let mut failures = 0;
    let mut index = 0;
    loop {
        let error = loop {
            match piece.next_chunk(entry, config.read_timeout).await {
                Ok(Some(chunk)) => {
                    if send(out, chunk.as_ref()).await != Outcome::Complete {
                        return Outcome::ClientGone;
                    }
                }
                Ok(None) => break None,
                Err(error) => break Some(error),
            }
        };
        let offset = piece.offset;
        drop(piece);
        match error {
            None if offset > end => return Outcome::Complete,
            None => {
                failures = 0;
                index += 1;
            }
            Some(error) => {
                if !error.is_transient() || failures >= config.upstream_retries {
                    return abort(entry, error);
                }
                tracing::debug!(host = %entry.host, %error, offset, "relay: retrying upstream piece");
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
            }
        }
        piece = loop {
            let last = piece_end(offset, Some(end), Some(total), piece_size(index, config.request_size));
            match open_piece(entry, offset, last, config.connect_timeout, failures > 0).await {
                Ok(next) if next.total != total => {
                    let why = format!("resource length changed from {total} to {}", next.total);
                    return abort(entry, UpstreamError::BadContentRange(why));
                }
                Ok(next) => break next,
                Err(error) if error.is_transient() && failures < config.upstream_retries => {
                    tracing::debug!(host = %entry.host, %error, offset, "relay: retrying upstream piece");
                    tokio::time::sleep(backoff(failures)).await;
                    failures += 1;
                }
                Err(error) => return abort(entry, error),
            }
        };
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
    fn pieces_ramp_up_to_the_request_size() {
        let table = [(0, 8 << 20, 64 << 10), (1, 8 << 20, 128 << 10), (7, 8 << 20, 8 << 20), (60, 8 << 20, 8 << 20)];
        for (index, request_size, want) in table {
            assert_eq!(piece_size(index, request_size), want, "piece {index}");
        }
        assert_eq!(piece_size(0, 1000), 1000);
    }

    #[test]
    fn pieces_stay_within_request_size_end_and_file() {
        // (offset, end, total, request_size, want)
        let cases = [
            (0, None, None, 64, 63),
            (100, None, None, 64, 163),
            (100, Some(120), None, 64, 120),
            (100, None, Some(130), 64, 129),
            (100, Some(200), Some(150), 64, 149),
            (7, Some(7), None, 64, 7),
            (0, None, None, 1, 0),
            (u64::MAX - 3, None, None, 64, u64::MAX),
        ];
        for (offset, end, total, size, want) in cases {
            let got = piece_end(offset, end, total, size);
            assert_eq!(got, want, "{offset} {end:?} {total:?} {size}");
            assert!(got - offset < size);
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

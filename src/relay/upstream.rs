//! The upstream side: one bounded `Range: bytes=a-b` request and reading its body chunk by chunk.

use std::time::Duration;

use bytes::Bytes;

use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, RANGE, RETRY_AFTER};
use reqwest::StatusCode;

use super::registry::{Entry, UpstreamError};
use crate::content_range::{self, ContentRange};

/// An upstream 206 answer whose body is being read.
pub(super) struct Piece {
    /// The next byte offset the body will deliver.
    pub offset: u64,
    /// The last byte (inclusive) this piece delivers, never beyond what was asked.
    pub end: u64,
    /// The resource length from `Content-Range`.
    pub total: u64,
    response: reqwest::Response,
}

/// Asks upstream for bytes `start..=end` (the caller keeps `end - start + 1` within the request size).
///
/// `retry` only labels the request for the counters. The time to the response head is bounded by
/// `head_timeout`, since the client (and so its own timeouts) belongs to the caller.
pub(super) async fn open_piece(
    entry: &Entry,
    start: u64,
    end: u64,
    head_timeout: Duration,
    retry: bool,
) -> Result<Piece, UpstreamError> {
    // Upstream said "stop" for this registration: asking again (ffmpeg retries a failed seek at once)
    // would only send more requests into the ban. The egress's breaker decides when to try again.
    if entry.was_throttled() {
        return Err(UpstreamError::throttled_before());
    }
    let span = end - start + 1;
    entry.note_request(span, retry);
    let request = entry
        .client
        .get(&entry.upstream_url)
        .headers(entry.headers.clone())
        .header(RANGE, format!("bytes={start}-{end}"))
        .send();
    let response = match tokio::time::timeout(head_timeout, request).await {
        Err(_) => Err(UpstreamError::Transport(format!("no response within {head_timeout:?}"))),
        Ok(Err(e)) => Err(UpstreamError::Transport(error_chain(&e))),
        Ok(Ok(response)) => Ok(response),
    };
    let status = response.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
    tracing::debug!(host = %entry.host, range = %format_args!("bytes={start}-{end}"), status, retry, "relay: upstream request");
    let response = response?;
    let content_range = response.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    match response.status() {
        StatusCode::PARTIAL_CONTENT => {}
        StatusCode::OK => return Err(UpstreamError::RangeUnsupported),
        status => {
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok());
                entry.note_throttled(retry_after.and_then(|v| v.trim().parse().ok()));
            }
            if let Some(ContentRange::Unsatisfied { total }) = content_range.as_deref().and_then(content_range::parse) {
                entry.set_meta(total, None);
            }
            let reason = status.canonical_reason().unwrap_or("Unknown Status").to_string();
            return Err(UpstreamError::Status { status: status.as_u16(), reason });
        }
    }
    let raw = content_range.unwrap_or_default();
    let Some(ContentRange::Bytes { start: got_start, end: got_end, total: Some(total) }) = content_range::parse(&raw)
    else {
        return Err(UpstreamError::BadContentRange(format!("{raw:?} for bytes={start}-{end}")));
    };
    if got_start != start {
        return Err(UpstreamError::BadContentRange(format!("{raw:?} for bytes={start}-{end}")));
    }
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    entry.set_meta(total, content_type);
    Ok(Piece { offset: start, end: got_end.min(end), total, response })
}

impl Piece {
    pub fn is_done(&self) -> bool {
        self.offset > self.end
    }

    /// The next chunk of this piece, trimmed to what was asked for; `Ok(None)` once the piece is complete.
    /// A body that ends early, stalls for `read_timeout`, or breaks is a transport error.
    pub async fn next_chunk(&mut self, entry: &Entry, read_timeout: Duration) -> Result<Option<Bytes>, UpstreamError> {
        if self.is_done() {
            return Ok(None);
        }
        let chunk = match tokio::time::timeout(read_timeout, self.response.chunk()).await {
            Err(_) => return Err(UpstreamError::Transport(format!("body stalled for {read_timeout:?}"))),
            Ok(Err(e)) => return Err(UpstreamError::Transport(error_chain(&e))),
            Ok(Ok(None)) => {
                return Err(UpstreamError::Transport(format!("piece ended at byte {} of {}", self.offset, self.end)))
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        // Count what was read even if we pass on less of it: that is what the egress paid for.
        entry.note_bytes(chunk.len() as u64);
        let wanted = self.end - self.offset + 1;
        let chunk = if (chunk.len() as u64) > wanted { chunk.slice(..wanted as usize) } else { chunk };
        self.offset += chunk.len() as u64;
        Ok(Some(chunk))
    }
}

/// reqwest's top-level message is often just "error sending request"; the causes say what happened.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governor::egress::{Egress, Route};
    use crate::relay::UpstreamError;

    /// A loopback port with nothing listening.
    fn dead_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// The relay's words for an upstream it cannot reach, from the real client of each kind of egress,
    /// are what the classifier takes for an outage signal (and so a clip waits instead of failing).
    #[tokio::test]
    async fn an_upstream_the_relay_cannot_reach_reads_as_unreachable() {
        let port = dead_port();
        let url = format!("http://127.0.0.1:{port}/videoplayback");
        let routes = [
            Route::Default,
            Route::Source("127.0.0.1".parse().unwrap()),
            Route::Proxy(format!("http://127.0.0.1:{}", dead_port())),
            Route::Proxy(format!("socks5://127.0.0.1:{}", dead_port())),
        ];
        for route in routes {
            let egress = Egress { name: format!("{route:?}"), route, cookies: None };
            let client = egress.client().unwrap();
            let error = client.get(&url).send().await.expect_err("nothing listens there");
            let text = UpstreamError::Transport(error_chain(&error)).to_string();
            assert!(crate::classify::unreachable(&text), "{}: {text}", egress.name);
            assert_eq!(crate::classify::classify(&text, None), crate::classify::Category::Network, "{text}");
        }
        // A transfer cut mid-way is not: the clip's failure, not the egress's.
        let cut = UpstreamError::Transport("piece ended at byte 1000 of 5000".into()).to_string();
        assert!(!crate::classify::unreachable(&cut), "{cut}");
    }
}

//! The one resumable HTTP download: GET a URL into `<dest>.part` with `Range: bytes=N-` resume, check the
//! length the server announced, fsync, then rename to `dest`. The CVDF mirror's tarballs and DeepMind's
//! annotation archives both come through here.
//!
//! A run killed mid-download leaves the `.part` behind and the next one asks for `bytes=N-`, N being its
//! length. A server that ignores the range (200), resumes elsewhere (206 at another offset) or refuses it
//! (416 without the length we hold) gets a fresh start; a 416 that says the file is exactly as long as the
//! `.part` means a run died between the last byte and the rename. The file is written with plain blocking
//! writes on purpose: a dropped future then cannot leave a write in flight that lands after the next run has
//! measured the file.
//!
//! Transient failures (a broken or stalled connection, 408, 429, 5xx) are retried with a growing pause;
//! attempts that do not make the `.part` longer are "fruitless", and `max_fruitless` of them in a row end the
//! download. Other 4xx answers end it at once.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::sync::watch;

use crate::content_range::{self, ContentRange};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attempts in a row that make the `.part` no longer before the download is given up.
    pub max_fruitless: u32,
    /// Bound on all attempts, including ones that made progress.
    pub max_attempts: u32,
    /// A response that sends nothing for this long is dropped and resumed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_fruitless: 5, max_attempts: 100, idle_timeout: Duration::from_secs(60) }
    }
}

/// What the caller wants to hear about while bytes arrive (all no-ops by default).
pub trait Progress: Sync {
    /// Bytes already on disk when the download began: a finished `dest` (then nothing is fetched) or the
    /// `.part` being resumed.
    fn existing(&self, _bytes: u64) {}
    /// The first answer came: the whole file's length when the server said.
    fn started(&self, _total: Option<u64>) {}
    /// `n` more bytes were written.
    fn bytes(&self, _n: u64) {}
    /// The `.part` (`had` bytes) was thrown away because the server would not continue it.
    fn discarded(&self, _had: u64) {}
    /// An attempt ended (a good moment to flush coalesced counts).
    fn attempt_ended(&self) {}
}

/// Progress nobody listens to.
pub struct Quiet;
impl Progress for Quiet {}

/// How a download ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Downloaded {
    /// `dest` holds the whole file, `bytes` long.
    Complete { bytes: u64 },
    /// `stop` turned true: the `.part` stays for the next run.
    Stopped,
}

/// Why a download did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server refused for good (404, 403, ...): retrying cannot help.
    #[error("{0}")]
    Refused(String),
    /// Transient failures went on for too long; the `.part` stays for the next run.
    #[error("{0}")]
    GaveUp(String),
    /// The local disk failed.
    #[error(transparent)]
    Local(anyhow::Error),
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s: OsString = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Downloads `url` into `dest` (see the module's notes). A `dest` that already exists is taken as finished.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    dest: &Path,
    limits: Limits,
    progress: &dyn Progress,
    stop: &mut watch::Receiver<bool>,
) -> Result<Downloaded, DownloadError> {
    if let Some(meta) = std::fs::metadata(dest).ok().filter(|m| m.is_file()) {
        tracing::debug!(url, "reusing a finished download");
        progress.started(Some(meta.len()));
        progress.existing(meta.len());
        return Ok(Downloaded::Complete { bytes: meta.len() });
    }
    let part = part_path(dest);
    if let Some(parent) = part.parent() {
        std::fs::create_dir_all(parent).map_err(|e| local(e, parent))?;
    }
    progress.existing(std::fs::metadata(&part).map_or(0, |m| m.len()));
    let attempt = Attempt { client, url, part: &part, limits, progress };
    let mut announced = false;
    let mut fruitless = 0;
    for n in 1..=limits.max_attempts {
        let have = std::fs::metadata(&part).map_or(0, |m| m.len());
        let result = attempt.run(have, &mut announced, stop).await;
        progress.attempt_ended();
        match result {
            Ok(Some(bytes)) => {
                std::fs::rename(&part, dest).map_err(|e| local(e, dest))?;
                return Ok(Downloaded::Complete { bytes });
            }
            Ok(None) => return Ok(Downloaded::Stopped),
            Err(Failed::Refused(message)) => return Err(DownloadError::Refused(message)),
            Err(Failed::Local(e)) => return Err(DownloadError::Local(e)),
            Err(Failed::Transient(message)) => {
                let now = std::fs::metadata(&part).map_or(0, |m| m.len());
                fruitless = if now > have { 0 } else { fruitless + 1 };
                if fruitless >= limits.max_fruitless || n == limits.max_attempts {
                    return Err(DownloadError::GaveUp(format!("{message} (gave up after {n} attempts)")));
                }
                let pause = backoff(fruitless);
                tracing::warn!(url, attempt = n, ?pause, "download interrupted: {message}");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stopped(stop) => return Ok(Downloaded::Stopped),
                }
            }
        }
    }
    Err(DownloadError::GaveUp("too many attempts".into()))
}

enum Failed {
    Refused(String),
    Transient(String),
    Local(anyhow::Error),
}

struct Attempt<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    part: &'a Path,
    limits: Limits,
    progress: &'a dyn Progress,
}

impl Attempt<'_> {
    /// One request from `have` on. `Ok(Some(total))` once the `.part` holds the whole file.
    async fn run(
        &self,
        have: u64,
        announced: &mut bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<u64>, Failed> {
        let mut req = self.client.get(self.url);
        if have > 0 {
            req = req.header(RANGE, format!("bytes={have}-"));
        }
        let sent = tokio::select! {
            r = tokio::time::timeout(self.limits.idle_timeout, req.send()) => r,
            () = stopped(stop) => return Ok(None),
        };
        let mut resp = match sent {
            Err(_) => return Err(Failed::Transient(format!("no answer within {:?}", self.limits.idle_timeout))),
            Ok(r) => r.map_err(|e| Failed::Transient(error_chain(&e)))?,
        };
        let status = resp.status().as_u16();
        let range = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).and_then(content_range::parse);
        let (start, total) = match status {
            206 => match range {
                Some(ContentRange::Bytes { start, total, .. }) if start == have => (start, total),
                _ => {
                    self.discard(have)?;
                    return Err(Failed::Transient(format!("the server resumed elsewhere than byte {have}")));
                }
            },
            200 => {
                if have > 0 {
                    tracing::debug!(url = self.url, "the server ignored Range; starting over");
                    self.discard(have)?;
                }
                (0, resp.content_length())
            }
            416 => match range.and_then(|r| r.total()) {
                Some(total) if total == have => return Ok(Some(have)),
                _ => {
                    self.discard(have)?;
                    return Err(Failed::Transient(format!("range bytes={have}- refused")));
                }
            },
            408 | 429 => return Err(Failed::Transient(format!("HTTP {status}"))),
            400..=499 => return Err(Failed::Refused(format!("HTTP {status}"))),
            _ => return Err(Failed::Transient(format!("HTTP {status}"))),
        };
        if !*announced {
            *announced = true;
            self.progress.started(total);
        }
        let mut file = open_at(self.part, start).map_err(|e| Failed::Local(local_error(e, self.part)))?;
        let mut written = start;
        let idle = self.limits.idle_timeout;
        loop {
            let next = tokio::select! {
                c = tokio::time::timeout(idle, resp.chunk()) => c,
                () = stopped(stop) => return Ok(None),
            };
            let chunk = match next {
                Err(_) => return Err(Failed::Transient(format!("no data for {idle:?}"))),
                Ok(Err(e)) => return Err(Failed::Transient(error_chain(&e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            file.write_all(&chunk).map_err(|e| Failed::Local(local_error(e, self.part)))?;
            written += chunk.len() as u64;
            self.progress.bytes(chunk.len() as u64);
        }
        match total {
            Some(total) if written < total => {
                Err(Failed::Transient(format!("the connection closed at byte {written} of {total}")))
            }
            Some(total) if written > total => {
                self.discard(written)?;
                Err(Failed::Transient(format!("the server sent {written} bytes of {total}")))
            }
            _ => {
                file.sync_all().map_err(|e| Failed::Local(local_error(e, self.part)))?;
                Ok(Some(written))
            }
        }
    }

    /// Throws away a `.part` the server will not continue.
    fn discard(&self, had: u64) -> Result<(), Failed> {
        File::create(self.part).map_err(|e| Failed::Local(local_error(e, self.part)))?;
        self.progress.discarded(had);
        Ok(())
    }
}

fn open_at(part: &Path, start: u64) -> std::io::Result<File> {
    let mut file = OpenOptions::new().create(true).truncate(false).write(true).open(part)?;
    file.set_len(start)?;
    file.seek(SeekFrom::Start(start))?;
    Ok(file)
}

fn local_error(e: std::io::Error, path: &Path) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("failed to write {}", path.display()))
}

fn local(e: std::io::Error, path: &Path) -> DownloadError {
    DownloadError::Local(local_error(e, path))
}

/// Resolves once `stop` turns true; never if its sender is gone without doing so.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); keep the chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

fn backoff(fruitless: u32) -> Duration {
    Duration::from_millis(500u64 << fruitless.min(6)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the test server does with request number `i` (0-based) for bytes `from..`.
    type Script = fn(usize, u64, u64) -> Reply;

    enum Reply {
        /// 206 (or 200 for no range) from `from`, sending only `send` bytes of it although announcing all.
        Range {
            send: Option<u64>,
        },
        /// 200 with the whole body, announcing all of it, sending only `send` bytes.
        Whole {
            send: Option<u64>,
        },
        Status(u16),
    }

    /// Serves `len` bytes (byte i is i % 251) by `script`; returns the URL and the log of Range headers.
    async fn serve(len: u64, script: Script) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/file.bin", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let from = head.lines().find_map(|l| l.strip_prefix("range: bytes=")).map(|r| r.trim().to_string());
                seen.lock().unwrap().push(from.clone().map(|f| format!("bytes={f}")).unwrap_or_default());
                let from: Option<u64> = from.and_then(|f| f.trim_end_matches('-').parse().ok());
                let body = |a: u64, b: u64| (a..b).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
                let (status, extra, start, send) = match script(i, from.unwrap_or(0), len) {
                    Reply::Status(code) => (code, String::new(), len, Some(0)),
                    Reply::Range { send } if from.is_some() => {
                        let f = from.unwrap();
                        (206, format!("content-range: bytes {f}-{}/{len}\r\n", len - 1), f, send)
                    }
                    Reply::Range { send } | Reply::Whole { send } => (200, String::new(), 0, send),
                };
                let announced = len - start;
                let payload = body(start, start + send.unwrap_or(announced).min(announced));
                let reply =
                    format!("HTTP/1.1 {status} X\r\ncontent-length: {announced}\r\n{extra}connection: close\r\n\r\n");
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.write_all(&payload).await;
                let _ = conn.shutdown().await;
                i += 1;
            }
        });
        (url, log)
    }

    fn quick() -> Limits {
        Limits { max_fruitless: 3, max_attempts: 20, idle_timeout: Duration::from_secs(10) }
    }

    async fn fetch(url: &str, dest: &Path) -> Result<Downloaded, DownloadError> {
        let (_tx, mut stop) = watch::channel(false);
        download(&reqwest::Client::new(), url, dest, quick(), &Quiet, &mut stop).await
    }

    fn expected(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_dropped_connection_resumes_within_the_run() {
        // The first two answers break off after 3000 bytes of what they announced.
        let (url, log) = serve(10_000, |i, _, _| Reply::Range { send: (i < 2).then_some(3000) }).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("file.bin");
        assert_eq!(fetch(&url, &dest).await.unwrap(), Downloaded::Complete { bytes: 10_000 });
        assert_eq!(std::fs::read(&dest).unwrap(), expected(10_000));
        assert_eq!(log.lock().unwrap().as_slice(), ["", "bytes=3000-", "bytes=6000-"]);
        assert!(!part_path(&dest).exists());
    }

    #[tokio::test]
    async fn a_server_that_ignores_ranges_and_breaks_at_the_same_place_is_given_up() {
        // Each answer starts over at byte 0 and breaks at 4000: the `.part` never grows past it.
        let (url, log) = serve(10_000, |_, _, _| Reply::Whole { send: Some(4000) }).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("file.bin");
        let err = fetch(&url, &dest).await.unwrap_err();
        assert!(matches!(err, DownloadError::GaveUp(_)), "{err}");
        assert!(err.to_string().contains("gave up after 4 attempts"), "{err}");
        // One attempt that made progress, then `max_fruitless` that did not.
        assert_eq!(log.lock().unwrap().len(), 4, "{:?}", log.lock().unwrap());
        assert_eq!(std::fs::read(part_path(&dest)).unwrap(), expected(4000), "the .part stays for the next run");
    }

    #[tokio::test]
    async fn refusals_end_at_once_and_throttles_are_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (url, log) = serve(100, |_, _, _| Reply::Status(404)).await;
        let err = fetch(&url, &dir.path().join("a")).await.unwrap_err();
        assert!(matches!(&err, DownloadError::Refused(m) if m == "HTTP 404"), "{err}");
        assert_eq!(log.lock().unwrap().len(), 1, "a 404 is not retried");

        let (url, log) =
            serve(100, |i, _, _| if i == 0 { Reply::Status(429) } else { Reply::Range { send: None } }).await;
        assert_eq!(fetch(&url, &dir.path().join("b")).await.unwrap(), Downloaded::Complete { bytes: 100 });
        assert_eq!(log.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_part_as_long_as_the_file_is_finished_by_a_416_and_a_finished_file_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("file.bin");
        std::fs::write(part_path(&dest), expected(500)).unwrap();
        let script: Script = |_, from, len| if from >= len { Reply::Status(416) } else { Reply::Range { send: None } };
        let (url, log) = serve(500, script).await;
        // The test server's 416 carries no length: the `.part` is thrown away and fetched again.
        assert_eq!(fetch(&url, &dest).await.unwrap(), Downloaded::Complete { bytes: 500 });
        assert_eq!(log.lock().unwrap().as_slice(), ["bytes=500-", ""]);
        assert_eq!(fetch(&url, &dest).await.unwrap(), Downloaded::Complete { bytes: 500 });
        assert_eq!(log.lock().unwrap().len(), 2, "a finished file is not fetched again");
    }

    #[tokio::test]
    async fn stopping_keeps_the_part() {
        let (url, _log) = serve(10_000, |_, _, _| Reply::Status(503)).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("file.bin");
        std::fs::write(part_path(&dest), expected(10)).unwrap();
        let (tx, mut stop) = watch::channel(false);
        let client = reqwest::Client::new();
        let fetching = download(&client, &url, &dest, quick(), &Quiet, &mut stop);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(true).unwrap();
        };
        let (result, ()) = tokio::join!(fetching, stopper);
        assert_eq!(result.unwrap(), Downloaded::Stopped);
        assert_eq!(std::fs::read(part_path(&dest)).unwrap(), expected(10));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn part_names() {
        assert_eq!(part_path(Path::new("/w/400/train/part_0.tar.gz")), Path::new("/w/400/train/part_0.tar.gz.part"));
    }
}

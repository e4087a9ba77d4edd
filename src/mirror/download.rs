//! Downloads one tarball into `<name>.part` with HTTP Range resume, then renames it to `<name>`.
//!
//! A run killed mid-tarball leaves the `.part` behind and the next run asks for `bytes=N-`, N being its
//! length. The file is written with plain blocking writes on purpose: a dropped future then cannot leave a
//! write in flight that lands after the next run has measured the file.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::sync::{mpsc::UnboundedSender, watch};

use super::lists::Tarball;
use super::report::{Counters, DiskMeter, MirrorEvent};
use super::types::{stopped, TarballFailure};
use crate::content_range::{self, ContentRange};

/// Attempts in a row that receive nothing before the tarball is given up.
const MAX_FRUITLESS: u32 = 5;
/// Bound on all attempts, including ones that made progress.
const MAX_ATTEMPTS: u32 = 100;
/// A response that sends nothing for this long is dropped and resumed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `Bytes` events are coalesced to about this many bytes or this much time.
const EVENT_BYTES: u64 = 1 << 20;
const EVENT_EVERY: Duration = Duration::from_millis(250);

pub(crate) struct Download<'a> {
    pub client: &'a reqwest::Client,
    pub tarball: &'a Tarball,
    /// Where the finished download goes.
    pub dest: &'a Path,
    pub events: &'a UnboundedSender<MirrorEvent>,
    pub counters: &'a Counters,
    pub meter: &'a DiskMeter,
}

pub(crate) enum Downloaded {
    Complete { bytes: u64 },
    Stopped,
}

enum AttemptError {
    /// Retrying cannot help (404, 403...).
    Permanent(String),
    /// Retry, resuming from what the `.part` holds.
    Transient { message: String, progressed: bool },
    /// The local disk failed: every other tarball would fail the same way.
    Local(anyhow::Error),
}

pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let mut s: OsString = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

impl Download<'_> {
    pub async fn run(&self, stop: &mut watch::Receiver<bool>) -> Result<Downloaded, TarballFailure> {
        if let Some(meta) = std::fs::metadata(self.dest).ok().filter(|m| m.is_file()) {
            tracing::debug!(tarball = %self.tarball.name, "reusing a finished download");
            self.announce(Some(meta.len()));
            self.meter.add(meta.len());
            return Ok(Downloaded::Complete { bytes: meta.len() });
        }
        let part = part_path(self.dest);
        if let Some(parent) = part.parent() {
            std::fs::create_dir_all(parent).map_err(|e| TarballFailure::local(e, parent))?;
        }
        self.meter.add(std::fs::metadata(&part).map_or(0, |m| m.len()));
        let mut announced = false;
        let mut fruitless = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let have = std::fs::metadata(&part).map_or(0, |m| m.len());
            match self.attempt(&part, have, &mut announced, stop).await {
                Ok(Some(bytes)) => {
                    std::fs::rename(&part, self.dest).map_err(|e| TarballFailure::local(e, self.dest))?;
                    return Ok(Downloaded::Complete { bytes });
                }
                Ok(None) => return Ok(Downloaded::Stopped),
                Err(AttemptError::Permanent(message)) => return Err(TarballFailure::Tarball(message)),
                Err(AttemptError::Local(e)) => return Err(TarballFailure::Fatal(e)),
                Err(AttemptError::Transient { message, progressed }) => {
                    fruitless = if progressed { 0 } else { fruitless + 1 };
                    if fruitless >= MAX_FRUITLESS || attempt == MAX_ATTEMPTS {
                        return Err(TarballFailure::Tarball(format!("{message} (gave up after {attempt} attempts)")));
                    }
                    let pause = backoff(fruitless);
                    tracing::warn!(tarball = %self.tarball.name, attempt, ?pause, "download interrupted: {message}");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stopped(stop) => return Ok(Downloaded::Stopped),
                    }
                }
            }
        }
        Err(TarballFailure::Tarball("too many attempts".into()))
    }

    fn announce(&self, total_bytes: Option<u64>) {
        let name = self.tarball.name.clone();
        let _ = self.events.send(MirrorEvent::TarballStarted { name, total_bytes });
    }

    /// One request from `have` on. `Ok(Some(total))` once the `.part` holds the whole tarball.
    async fn attempt(
        &self,
        part: &Path,
        have: u64,
        announced: &mut bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<u64>, AttemptError> {
        let mut req = self.client.get(&self.tarball.url);
        if have > 0 {
            req = req.header(RANGE, format!("bytes={have}-"));
        }
        let sent = tokio::select! {
            r = req.send() => r,
            () = stopped(stop) => return Ok(None),
        };
        let mut resp = sent.map_err(|e| transient(error_chain(&e), false))?;
        let status = resp.status().as_u16();
        let range = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).and_then(content_range::parse);
        let (start, total) = match status {
            206 => match range {
                Some(ContentRange::Bytes { start, total, .. }) if start == have => (start, total),
                _ => {
                    self.truncate(part, have)?;
                    return Err(transient(format!("the server resumed elsewhere than byte {have}"), true));
                }
            },
            200 => {
                if have > 0 {
                    tracing::debug!(tarball = %self.tarball.name, "the server ignored Range; starting over");
                    self.truncate(part, have)?;
                }
                (0, resp.content_length())
            }
            416 => match range.and_then(|r| r.total()) {
                Some(total) if total == have => return Ok(Some(have)),
                _ => {
                    self.truncate(part, have)?;
                    return Err(transient(format!("range bytes={have}- refused"), true));
                }
            },
            408 | 429 => return Err(transient(format!("HTTP {status}"), false)),
            400..=499 => return Err(AttemptError::Permanent(format!("HTTP {status} for {}", self.tarball.url))),
            _ => return Err(transient(format!("HTTP {status}"), false)),
        };
        if !*announced {
            *announced = true;
            self.announce(total);
        }
        let mut file = open_at(part, start).map_err(|e| AttemptError::Local(local(e, part)))?;
        let mut written = start;
        let mut unreported = 0u64;
        let mut last_event = Instant::now();
        let result = loop {
            let next = tokio::select! {
                c = tokio::time::timeout(IDLE_TIMEOUT, resp.chunk()) => c,
                () = stopped(stop) => break Ok(None),
            };
            let chunk = match next {
                Err(_) => break Err(transient(format!("no data for {IDLE_TIMEOUT:?}"), written > start)),
                Ok(Err(e)) => break Err(transient(error_chain(&e), written > start)),
                Ok(Ok(None)) => break Ok(Some(())),
                Ok(Ok(Some(chunk))) => chunk,
            };
            if let Err(e) = file.write_all(&chunk) {
                break Err(AttemptError::Local(local(e, part)));
            }
            let n = chunk.len() as u64;
            written += n;
            unreported += n;
            self.meter.add(n);
            Counters::bump(&self.counters.bytes_downloaded, n);
            if unreported >= EVENT_BYTES || last_event.elapsed() >= EVENT_EVERY {
                let _ = self.events.send(MirrorEvent::Bytes { n: std::mem::take(&mut unreported) });
                last_event = Instant::now();
            }
        };
        if unreported > 0 {
            let _ = self.events.send(MirrorEvent::Bytes { n: unreported });
        }
        if result?.is_none() {
            return Ok(None);
        }
        match total {
            Some(total) if written < total => {
                Err(transient(format!("the connection closed at byte {written} of {total}"), written > start))
            }
            Some(total) if written > total => {
                self.truncate(part, written)?;
                Err(transient(format!("the server sent {written} bytes of {total}"), false))
            }
            _ => {
                file.sync_all().map_err(|e| AttemptError::Local(local(e, part)))?;
                Ok(Some(written))
            }
        }
    }

    /// Throws away a `.part` the server will not continue.
    fn truncate(&self, part: &Path, had: u64) -> Result<(), AttemptError> {
        match File::create(part) {
            Ok(_) => {
                self.meter.sub(had);
                Ok(())
            }
            Err(e) => Err(AttemptError::Local(local(e, part))),
        }
    }
}

fn open_at(part: &Path, start: u64) -> std::io::Result<File> {
    let mut file = OpenOptions::new().create(true).truncate(false).write(true).open(part)?;
    file.set_len(start)?;
    file.seek(SeekFrom::Start(start))?;
    Ok(file)
}

fn transient(message: String, progressed: bool) -> AttemptError {
    AttemptError::Transient { message, progressed }
}

fn local(e: std::io::Error, path: &Path) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("failed to write {}", path.display()))
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

//! Downloads one tarball through the shared resumable downloader ([`crate::resumable`]), feeding the
//! mirror's progress events, byte counters and disk meter.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc::UnboundedSender, watch};

use super::lists::Tarball;
use super::report::{Counters, DiskMeter, MirrorEvent};
use super::types::TarballFailure;
use crate::resumable::{self, DownloadError, Limits, Progress};

pub(crate) use crate::resumable::Downloaded;

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

impl Download<'_> {
    pub async fn run(&self, stop: &mut watch::Receiver<bool>) -> Result<Downloaded, TarballFailure> {
        let progress = Events { download: self, unreported: Mutex::new((0, Instant::now())) };
        let url = &self.tarball.url;
        match resumable::download(self.client, url, self.dest, Limits::default(), &progress, stop).await {
            Ok(done) => Ok(done),
            Err(DownloadError::Local(e)) => Err(TarballFailure::Fatal(e)),
            Err(DownloadError::Refused(why)) => Err(TarballFailure::Tarball(format!("{why} for {url}"))),
            Err(DownloadError::GaveUp(why)) => Err(TarballFailure::Tarball(why)),
        }
    }
}

/// The mirror's side of a download's progress.
struct Events<'a, 'b> {
    download: &'a Download<'b>,
    /// Bytes not yet sent as an event, and when the last event went.
    unreported: Mutex<(u64, Instant)>,
}

impl Events<'_, '_> {
    fn flush(&self, force: bool) {
        let mut pending = self.unreported.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (n, last) = *pending;
        if n > 0 && (force || n >= EVENT_BYTES || last.elapsed() >= EVENT_EVERY) {
            let _ = self.download.events.send(MirrorEvent::Bytes { n });
            *pending = (0, Instant::now());
        }
    }
}

impl Progress for Events<'_, '_> {
    fn existing(&self, bytes: u64) {
        self.download.meter.add(bytes);
    }

    fn started(&self, total_bytes: Option<u64>) {
        let name = self.download.tarball.name.clone();
        let _ = self.download.events.send(MirrorEvent::TarballStarted { name, total_bytes });
    }

    fn bytes(&self, n: u64) {
        self.download.meter.add(n);
        Counters::bump(&self.download.counters.bytes_downloaded, n);
        self.unreported.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0 += n;
        self.flush(false);
    }

    fn discarded(&self, had: u64) {
        self.download.meter.sub(had);
    }

    fn attempt_ended(&self) {
        self.flush(true);
    }
}

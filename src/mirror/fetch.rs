//! The mirror run: list the tarballs, work through them in parallel, report what is left at the end.
//!
//! One slot of `concurrency` covers a tarball from its first byte until it is deleted, so disk use stays
//! near one tarball a slot plus the clips waiting for their verdict. Verifications share one semaphore.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Semaphore};

use super::claims::Claims;
use super::extract::TMP_PREFIX;
use super::lists::{list_tarballs, Tarball};
use super::report::{Counters, DiskMeter, MirrorEvent, MirrorStats, Wanted, CORRUPT};
use super::source::MirrorConfig;
use super::tarball::process;
use super::verify::Verifier;

/// Why a tarball did not finish.
pub(crate) enum Failure {
    /// This tarball only: report it and go on with the others.
    Tarball(String),
    /// The machine: stop everything and return the error.
    Fatal(anyhow::Error),
}

impl Failure {
    pub fn local(e: std::io::Error, path: &Path) -> Failure {
        Failure::Fatal(anyhow::Error::new(e).context(format!("failed to write {}", path.display())))
    }
}

/// Resolves once `stop` turns true; never if its sender is gone without doing so.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What every worker of one fetch shares.
pub(crate) struct Shared {
    pub cfg: MirrorConfig,
    pub client: reqwest::Client,
    pub events: mpsc::UnboundedSender<MirrorEvent>,
    pub claims: Claims,
    pub counters: Counters,
    pub meter: DiskMeter,
    /// Numbers temp files.
    pub seq: AtomicU64,
    /// The caller's stop, or a fatal error here.
    pub stop: watch::Receiver<bool>,
    pub verifier: Verifier,
    pub verify_slots: Arc<Semaphore>,
    /// Open once K400's replacement tarball is done: train parts extract only after it.
    pub replacement_done: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    fatal: Mutex<Option<anyhow::Error>>,
}

/// Downloads the configured splits of the mirror and places every clip of `wanted` found in them.
///
/// Wanted clips that get neither `ClipDone` nor `ClipBad` are in no tarball; their count is
/// `wanted_without_clip`, meaningful when [`MirrorStats::is_complete`]. Returns `Err` for what stops the
/// whole run (unreadable path lists, a full disk, ffmpeg missing); a failed tarball is an event.
pub async fn fetch(
    cfg: &MirrorConfig,
    wanted: HashMap<String, Wanted>,
    client: reqwest::Client,
    events: mpsc::UnboundedSender<MirrorEvent>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<MirrorStats> {
    anyhow::ensure!(cfg.concurrency >= 1, "mirror concurrency must be at least 1");
    for dir in [&cfg.work_dir, &cfg.tmp_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    sweep_tmp(&cfg.tmp_dir)?;
    let (abort, inner_stop) = watch::channel(*stop.borrow());
    let forward = {
        let (abort, mut outer) = (abort.clone(), stop.clone());
        // Ends with the fetch even when the caller drops it: `closed` fires once the workers are gone.
        tokio::spawn(async move {
            tokio::select! {
                () = stopped(&mut outer) => {
                    abort.send_replace(true);
                }
                () = abort.closed() => {}
            }
        })
    };
    let mut listing_stop = inner_stop.clone();
    let tarballs = tokio::select! {
        t = list_tarballs(cfg, &client) => t,
        () = stopped(&mut listing_stop) => Ok(Vec::new()),
    };
    let tarballs = match tarballs {
        Ok(t) => t,
        Err(e) => {
            forward.abort();
            return Err(e);
        }
    };
    tracing::info!(dataset = %cfg.dataset, tarballs = tarballs.len(), wanted = wanted.len(), "fetching from the mirror");
    let (replacement_done, _) = watch::channel(!tarballs.iter().any(|t| t.replacement));
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        client,
        events,
        claims: Claims::new(wanted),
        counters: Counters::default(),
        meter: DiskMeter::default(),
        seq: AtomicU64::new(0),
        stop: inner_stop,
        abort,
        fatal: Mutex::new(None),
        verifier: Verifier { ffmpeg: cfg.ffmpeg.clone(), ffprobe: cfg.ffprobe.clone() },
        verify_slots: Arc::new(Semaphore::new(cfg.verify_concurrency.max(1))),
        replacement_done,
    });
    futures_util::stream::iter(tarballs)
        .map(|t| process(shared.clone(), t))
        .buffer_unordered(cfg.concurrency)
        .collect::<Vec<()>>()
        .await;
    forward.abort();
    if let Some(e) = shared.fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    Ok(finish(&shared, *stop.borrow()))
}

/// Reports the replacement's bad clips no train part overturned, and totals up.
fn finish(sh: &Shared, stopped: bool) -> MirrorStats {
    let mut stats = sh.counters.snapshot();
    let left = sh.claims.leftover();
    if !stopped {
        for (w, message) in left.bad {
            stats.clips_bad += 1;
            let _ = sh.events.send(MirrorEvent::ClipBad { clip_id: w.clip_id, category: CORRUPT, message });
        }
    }
    stats.wanted_without_clip = left.unseen;
    stats.peak_disk_bytes = sh.meter.peak();
    stats.stopped = stopped;
    stats
}

/// Temp clips of a run that was killed; only ours, by prefix.
fn sweep_tmp(dir: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

impl Shared {
    /// Reports a failed tarball, or stops everything for a fatal error.
    pub fn fail(&self, t: &Tarball, failure: Failure) {
        match failure {
            Failure::Tarball(message) => {
                tracing::warn!(tarball = %t.name, "tarball failed: {message}");
                Counters::bump(&self.counters.tarballs_failed, 1);
                let _ = self.events.send(MirrorEvent::TarballFailed { name: t.name.clone(), message });
            }
            Failure::Fatal(e) => self.fatal(e),
        }
    }

    /// Records the first fatal error and stops every worker.
    pub fn fatal(&self, e: anyhow::Error) {
        tracing::error!("mirror fetch stopping: {e:#}");
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
        self.abort.send_replace(true);
    }
}

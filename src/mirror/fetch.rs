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
use super::lists::list_tarballs;
use super::report::{Counters, DiskMeter, MirrorEvent, MirrorStats, Wanted, CORRUPT};
use super::shared::Shared;
use super::source::MirrorConfig;
use super::tarball::process;
use super::types::stopped;
use super::verify::Verifier;

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

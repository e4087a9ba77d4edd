//! One tarball from first byte to last clip: skip it if an earlier run finished it, download it, extract
//! it on a blocking thread while its clips are verified as they arrive, place the good ones, clean up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::download::{Download, Downloaded};
use super::extract::{ExtractJob, Extracted, Extraction};
use super::lists::Tarball;
use super::report::{Counters, MirrorEvent, CORRUPT};
use super::shared::Shared;
use super::types::{stopped, TarballFailure};
use super::verify::Verdict;

/// Opens the replacement gate when dropped, whatever happened to the replacement tarball.
struct Gate<'a>(&'a watch::Sender<bool>);

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// The clip names a finished tarball held, kept beside it so that a rerun can skip it.
fn listing_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".clips");
    PathBuf::from(s)
}

pub(crate) async fn process(sh: Arc<Shared>, t: Tarball) {
    let _gate = t.replacement.then(|| Gate(&sh.replacement_done));
    let mut stop = sh.stop.clone();
    if *stop.borrow() {
        return;
    }
    let dest = t.local_path(&sh.cfg.work_dir);
    if skip_finished(&sh, &t, &dest) {
        return;
    }
    let download = Download {
        client: &sh.client,
        tarball: &t,
        dest: &dest,
        events: &sh.events,
        counters: &sh.counters,
        meter: &sh.meter,
    };
    let bytes = match download.run(&mut stop).await {
        Ok(Downloaded::Complete { bytes }) => bytes,
        Ok(Downloaded::Stopped) => return,
        Err(f) => return sh.fail(&t, f),
    };
    if t.split == "train" && !t.replacement {
        let mut gate = sh.replacement_done.subscribe();
        tokio::select! {
            _ = gate.wait_for(|open| *open) => {}
            () = stopped(&mut stop) => return,
        }
    }
    let outcome = extract_and_verify(&sh, &t, &dest).await;
    if matches!(outcome, Ok(None)) {
        // Stopped: the finished download stays for the next run.
        return;
    }
    if !sh.cfg.keep_tarballs && std::fs::remove_file(&dest).is_ok() {
        sh.meter.sub(bytes);
    }
    match outcome {
        Ok(Some(names)) => {
            let listing = listing_path(&dest);
            if let Err(e) = write_listing(&listing, &names) {
                tracing::warn!(path = %listing.display(), "failed to save a tarball's clip list: {e}");
            }
            Counters::bump(&sh.counters.tarballs, 1);
            let _ = sh.events.send(MirrorEvent::TarballDone { name: t.name.clone(), bytes });
        }
        Ok(None) => {}
        Err(f) => sh.fail(&t, f),
    }
}

/// True when an earlier run extracted this tarball and none of its clips is still wanted.
fn skip_finished(sh: &Shared, t: &Tarball, dest: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(listing_path(dest)) else {
        return false;
    };
    let names: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    if sh.claims.any_open(names.iter().copied()) {
        return false;
    }
    for name in names.into_iter().filter(|n| !sh.claims.is_known(n)) {
        Counters::bump(&sh.counters.unmatched_clips, 1);
        let _ = sh.events.send(MirrorEvent::Unmatched { file_name: name.to_string(), tarball: t.name.clone() });
    }
    tracing::debug!(tarball = %t.name, "skipping a tarball extracted by an earlier run");
    Counters::bump(&sh.counters.tarballs_skipped, 1);
    true
}

fn write_listing(path: &Path, names: &[String]) -> std::io::Result<()> {
    let mut text = names.join("\n");
    text.push('\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Extracts on a blocking thread while clips are verified as they come. `Ok(None)` when stopped.
async fn extract_and_verify(
    sh: &Arc<Shared>,
    t: &Tarball,
    archive: &Path,
) -> Result<Option<Vec<String>>, TarballFailure> {
    let (tx, mut rx) = mpsc::channel::<Extracted>(2);
    let job = ExtractJob { shared: sh.clone(), archive: archive.to_path_buf(), tarball: t.name.clone(), out: tx };
    let extraction = tokio::task::spawn_blocking(move || job.run());
    let mut checks = JoinSet::new();
    while let Some(item) = rx.recv().await {
        let permit = sh.verify_slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (sh, tarball, deferrable) = (sh.clone(), t.name.clone(), t.replacement);
        checks.spawn(async move {
            // A broken machine (ffprobe missing, disk full) stops every worker at once, not after this
            // tarball's remaining clips have all failed the same way.
            if let Err(e) = check_and_place(&sh, item, &tarball, deferrable).await {
                sh.fatal(e);
            }
            drop(permit);
        });
    }
    let extracted =
        extraction.await.map_err(|e| TarballFailure::Fatal(anyhow::anyhow!("extraction thread failed: {e}")))?;
    // Every check is awaited: an aborted one would leave its temp clip behind.
    while let Some(joined) = checks.join_next().await {
        if let Err(e) = joined {
            sh.fatal(anyhow::anyhow!("verification task failed: {e}"));
        }
    }
    match extracted? {
        // A stop (or a fatal error) during verification released some clips: the tarball is not finished.
        Extraction::Done(_) if *sh.stop.borrow() => Ok(None),
        Extraction::Done(names) => Ok(Some(names)),
        Extraction::Stopped => Ok(None),
    }
}

async fn check_and_place(sh: &Shared, item: Extracted, tarball: &str, deferrable: bool) -> anyhow::Result<()> {
    let mut stop = sh.stop.clone();
    let verdict = sh.verifier.check(&item.tmp, item.wanted.expected_duration, &mut stop).await;
    let discard = |release: bool| {
        let _ = std::fs::remove_file(&item.tmp);
        sh.meter.sub(item.size);
        if release {
            sh.claims.release(&item.name);
        }
    };
    match verdict {
        Err(e) => {
            discard(true);
            Err(e.into())
        }
        Ok(Verdict::Stopped) => {
            discard(true);
            Ok(())
        }
        Ok(Verdict::Bad(message)) => {
            discard(false);
            tracing::info!(clip = %item.name, %tarball, "bad clip in the mirror: {message}");
            if sh.claims.bad(&item.name, deferrable, &message) {
                Counters::bump(&sh.counters.clips_bad, 1);
                let _ =
                    sh.events.send(MirrorEvent::ClipBad { clip_id: item.wanted.clip_id, category: CORRUPT, message });
            }
            Ok(())
        }
        Ok(Verdict::Good { duration }) => {
            let (tmp, dest) = (item.tmp.clone(), item.wanted.dest.clone());
            let placed = tokio::task::spawn_blocking(move || place(&tmp, &dest)).await;
            if let Err(e) = placed.map_err(anyhow::Error::from).and_then(|r| r.map_err(anyhow::Error::from)) {
                discard(true);
                return Err(e.context(format!("failed to place {}", item.wanted.dest.display())));
            }
            sh.meter.sub(item.size);
            sh.claims.placed(&item.name);
            Counters::bump(&sh.counters.clips_placed, 1);
            let tarball = tarball.to_string();
            let _ = sh.events.send(MirrorEvent::ClipDone {
                clip_id: item.wanted.clip_id,
                size: item.size,
                duration,
                tarball,
            });
            Ok(())
        }
    }
}

/// Moves a verified temp file to its final name: fsync the data, rename, fsync the folder (the same
/// steps as `outdir::place`, kept here so this module stands alone).
fn place(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::File::open(tmp)?.sync_all()?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(tmp, dest)?;
    if let Some(parent) = dest.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

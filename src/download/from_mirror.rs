//! The mirror phase of `--source mirror|auto`: take every clip the CVDF mirror has from its tarballs,
//! record each in the journal like a YouTube clip, and leave the rest to YouTube (auto) or record them as
//! missing (mirror).

use crate::classify::Category;
use crate::config::Config;
use crate::config::Source;
use crate::journal::{self, Attempt, Done, Failed, Journal, State};
use crate::mirror::{self, MirrorConfig, MirrorEvent, MirrorStats, Wanted};
use crate::outdir::OutDir;
use crate::plan::{clip_file_name, ClipKey, Plan};
use crate::progress::{Event, Reporter};
use crate::tools::process::StopSignal;
use std::collections::{HashMap, HashSet};

/// What the mirror phase did, for the summary.
#[derive(Debug, Clone, Default)]
pub struct MirrorPhase {
    pub stats: MirrorStats,
    pub placed: u64,
    pub bad: u64,
    pub missing: u64,
    /// (clip id, final path, clip seconds) of clips placed in this run.
    pub placed_clips: Vec<(i64, std::path::PathBuf, f64)>,
    /// Clips in the tarballs that no annotation row (done or not) asks for.
    pub unmatched: u64,
}

pub async fn run(
    cfg: &Config,
    out: &OutDir,
    journal: &mut Journal,
    plan: &Plan,
    run_id: i64,
    reporter: &mut dyn Reporter,
    stop: StopSignal,
) -> anyhow::Result<MirrorPhase> {
    let m = cfg.mirror.as_ref().expect("mirror settings for --source mirror|auto");
    let in_plan: HashSet<&ClipKey> = plan.jobs.iter().map(|j| &j.key).collect();
    let mut wanted = HashMap::new();
    let mut names = HashMap::new();
    let mut paths = HashMap::new();
    let mut splits = std::collections::BTreeSet::new();
    let mut known = HashSet::new();
    for rec in journal.clips()? {
        known.insert(clip_file_name(&rec.key));
        if !in_plan.contains(&rec.key) || rec.state != State::Pending {
            continue;
        }
        let dest = out.clip_path(&rec.rel_path)?;
        let name = clip_file_name(&rec.key);
        names.insert(rec.id, rec.key.youtube_id.clone());
        paths.insert(rec.id, dest.clone());
        splits.insert(rec.split.clone().unwrap_or_else(|| "test".into()));
        let expected_duration = (rec.key.end_ms - rec.key.start_ms) as f64 / 1000.0;
        wanted.insert(name, Wanted { clip_id: rec.id, dest, expected_duration });
    }
    let mut phase = MirrorPhase::default();
    if wanted.is_empty() {
        return Ok(phase);
    }
    let state = out.root().join(journal::STATE_DIR);
    let mut mcfg = MirrorConfig::new(m.dataset, state.join("mirror"), out.tmp());
    mcfg.base_url = m.base_url.clone();
    mcfg.concurrency = m.concurrency;
    mcfg.keep_tarballs = m.keep_tarballs;
    mcfg.ffmpeg = cfg.ffmpeg.clone();
    mcfg.ffprobe = cfg.ffprobe.clone();
    // Only the splits some wanted clip is in: a validate-only run must not read train's tarballs.
    mcfg.splits = if cfg.filters.splits.is_empty() { splits.into_iter().collect() } else { cfg.filters.splits.clone() };
    let ids: Vec<i64> = wanted.values().map(|w| w.clip_id).collect();
    reporter.note(&format!("taking {} clips from the CVDF mirror at {}", ids.len(), m.base_url));

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(30)).build()?;
    let fetch = mirror::fetch(&mcfg, wanted, client, tx, stop);
    tokio::pin!(fetch);
    let mut heard = HashSet::new();
    let started_ms = journal::now_ms();
    // One event: counted, recorded in the journal, and remembered when it placed a clip.
    let mut handle = |ev: MirrorEvent, phase: &mut MirrorPhase, heard: &mut HashSet<i64>| -> anyhow::Result<()> {
        if let MirrorEvent::Unmatched { file_name, .. } = &ev {
            phase.unmatched += u64::from(!known.contains(file_name));
        }
        if let Some((id, secs)) = record(cfg.source, ev, journal, run_id, started_ms, &names, heard, phase, reporter)? {
            phase.placed_clips.push((id, paths[&id].clone(), secs));
        }
        Ok(())
    };
    let result = loop {
        tokio::select! {
            r = &mut fetch => break r,
            Some(ev) = rx.recv() => handle(ev, &mut phase, &mut heard)?,
        }
    };
    while let Ok(ev) = rx.try_recv() {
        handle(ev, &mut phase, &mut heard)?;
    }
    phase.stats = result?;
    if let Some(encode) = &m.reencode {
        reencode(cfg, out, journal, encode, &phase.placed_clips, reporter).await?;
    }
    if phase.stats.is_complete() {
        for id in ids.iter().filter(|id| !heard.contains(id)) {
            phase.missing += 1;
            if cfg.source == Source::Mirror {
                journal.record_failure(
                    *id,
                    &Failed {
                        state: State::Failed,
                        category: Category::MissingFromMirror.as_str(),
                        message: "the CVDF mirror has no clip for this row",
                        stderr_tail: "",
                        attempts: 1,
                        next_attempt_ms: None,
                        bytes_fetched: 0,
                    },
                )?;
            }
        }
    }
    Ok(phase)
}

#[allow(clippy::too_many_arguments)]
fn record(
    source: Source,
    ev: MirrorEvent,
    journal: &mut Journal,
    run_id: i64,
    started_ms: i64,
    names: &HashMap<i64, String>,
    heard: &mut HashSet<i64>,
    phase: &mut MirrorPhase,
    reporter: &mut dyn Reporter,
) -> anyhow::Result<Option<(i64, f64)>> {
    let attempt = |clip_id, outcome, category, message| Attempt {
        clip_id,
        run_id,
        started_ms,
        finished_ms: journal::now_ms(),
        outcome,
        category,
        message,
        bytes_fetched: 0,
        download_s: 0.0,
        encode_s: 0.0,
        egress: "mirror",
    };
    match ev {
        MirrorEvent::Bytes { n } => reporter.event(Event::MirrorBytes { n }),
        MirrorEvent::TarballStarted { .. } => {}
        MirrorEvent::TarballDone { name, .. } => reporter.event(Event::Tarball { name: &name, ok: true }),
        MirrorEvent::TarballFailed { name, message } => {
            reporter.note(&format!("mirror tarball {name} failed: {message}"));
            reporter.event(Event::Tarball { name: &name, ok: false });
        }
        MirrorEvent::Unmatched { .. } => {}
        MirrorEvent::ClipDone { clip_id, size, duration, tarball } => {
            heard.insert(clip_id);
            phase.placed += 1;
            let done =
                Done { size_bytes: size, duration_s: duration, source: format!("mirror:{tarball}"), ..Done::default() };
            journal.record_done(clip_id, &done)?;
            journal.record_attempt(&attempt(clip_id, "done", None, None))?;
            let id = names.get(&clip_id).map(String::as_str).unwrap_or("");
            reporter.event(Event::Done { id, bytes: 0 });
            return Ok(Some((clip_id, duration)));
        }
        MirrorEvent::ClipBad { clip_id, category, message } => {
            heard.insert(clip_id);
            phase.bad += 1;
            journal.record_attempt(&attempt(clip_id, "failed", Some(category), Some(&message)))?;
            if source == Source::Mirror {
                let f = Failed {
                    state: State::Failed,
                    category,
                    message: &message,
                    stderr_tail: "",
                    attempts: 1,
                    next_attempt_ms: None,
                    bytes_fetched: 0,
                };
                journal.record_failure(clip_id, &f)?;
                let id = names.get(&clip_id).map(String::as_str).unwrap_or("");
                reporter.event(Event::Failed { id, category, message: &message });
            }
        }
    }
    Ok(None)
}

/// Re-encodes placed mirror clips to the user's target, `--encode-jobs` at a time, each through temp space
/// and an atomic rename like every clip.
async fn reencode(
    cfg: &Config,
    out: &OutDir,
    journal: &mut Journal,
    encode: &crate::tools::ffmpeg::Encode,
    clips: &[(i64, std::path::PathBuf, f64)],
    reporter: &mut dyn Reporter,
) -> anyhow::Result<()> {
    let ffmpeg =
        std::sync::Arc::new(crate::tools::ffmpeg::Ffmpeg { ffmpeg: cfg.ffmpeg.clone(), ffprobe: cfg.ffprobe.clone() });
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(cfg.encode_jobs));
    let mut set = tokio::task::JoinSet::new();
    for (id, dest, secs) in clips.iter().cloned() {
        let (ffmpeg, slots, encode) = (ffmpeg.clone(), slots.clone(), encode.clone());
        let tmp = out.tmp().join(format!("reencode-{id}.mp4"));
        set.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore never closes");
            let (_tx, mut stop) = tokio::sync::watch::channel(false);
            let t = std::time::Instant::now();
            // The re-encode replaces the mirror's clip only once it reads back packet for packet as written.
            let result = match ffmpeg.cut(&dest, 0.0, secs + 1.0, &encode, &tmp, &mut stop).await {
                Ok(Some(written)) => crate::tools::mp4clip::check(&ffmpeg, &tmp, &written, &mut stop).await.map(|_| ()),
                Ok(None) => Ok(()),
                Err(f) => Err(f),
            };
            let result = match result {
                Ok(()) => crate::outdir::place(&tmp, &dest).map_err(|e| e.to_string()),
                Err(f) => Err(f.message),
            };
            let _ = std::fs::remove_file(&tmp);
            (id, dest, result, t.elapsed().as_secs_f64())
        });
    }
    while let Some(joined) = set.join_next().await {
        let (id, dest, result, secs) = joined?;
        match result {
            Ok(()) => {
                let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
                journal.record_reencode(id, size, secs)?;
            }
            Err(message) => {
                reporter.note(&format!("re-encoding {} failed, kept the mirror's clip: {message}", dest.display()))
            }
        }
    }
    Ok(())
}

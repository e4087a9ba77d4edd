//! `kinetics-dl verify`: re-checks every done clip on disk against the journal and returns the broken
//! ones to pending, so the next `download` repairs them.
//!
//! A clip is good when its file exists, has the recorded size and sha256, ffprobe finds a video stream
//! lasting within 0.35 s of the recorded duration, and ffmpeg decodes it without a word. Broken files are
//! moved to `OUT/.kinetics-dl/broken/` rather than left in place: `download` adopts any decodable file it
//! finds at a clip's path, and a file with the wrong bytes may well decode. Clips without a recorded
//! sha256 get one, so later manifests need not hash them again.

use crate::classify::Category;
use crate::journal::read::ClipRow;
use crate::journal::{Journal, STATE_DIR};
use crate::manifest::build::sha256_file;
use crate::tools::ffmpeg::Ffmpeg;
use crate::tools::process::StopSignal;
use crate::tools::Failure;
use anyhow::Context;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};

/// How far ffprobe's duration may stray from the journal's.
pub use crate::tools::ffmpeg::DURATION_TOLERANCE_S;
/// Where broken files are moved, inside OUT.
pub const BROKEN_DIR: &str = "broken";

/// What `verify` is asked for.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The output folder of a download.
    pub out: PathBuf,
    /// Clips checked at once [default: cores].
    pub jobs: Option<usize>,
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
    /// The ffprobe program.
    pub ffprobe: PathBuf,
}

/// What is wrong with a clip.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("the file is missing")]
    Missing,
    #[error("{actual} bytes instead of {expected}")]
    Size { expected: i64, actual: u64 },
    #[error("sha256 {} instead of {}", short(.actual), short(.expected))]
    Checksum { expected: String, actual: String },
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("no video stream")]
    NoVideo,
    /// An audio-only clip (`.flac`, `.wav`, `.m4a`) without an audio stream.
    #[error("no audio stream")]
    NoAudio,
    #[error("lasts {actual:.2} s instead of {expected:.2} s")]
    Duration { expected: f64, actual: f64 },
    #[error("no duration (expected {expected:.2} s)")]
    NoDuration { expected: f64 },
    #[error("does not decode: {0}")]
    Undecodable(String),
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// What a verification found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub checked: usize,
    pub broken: Vec<(String, Problem)>,
    pub hashes_recorded: usize,
}

/// ffmpeg or ffprobe cannot run: no clip can be judged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ToolsBroken(pub String);

/// Checks every done clip, `jobs` at a time, and records the verdicts in the journal as they come.
pub async fn verify(out: &Path, ffmpeg: &Ffmpeg, jobs: usize) -> anyhow::Result<VerifyReport> {
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    for version in [ffmpeg.version(&mut stop.clone()).await, ffmpeg.probe_version(&mut stop.clone()).await] {
        version.map_err(|f| ToolsBroken(f.message))?;
    }
    let mut journal = Journal::open_existing(out)?;
    let done: Vec<ClipRow> = journal
        .clip_rows()
        .context("failed to read the clips of the journal")?
        .into_iter()
        .filter(ClipRow::is_done)
        .collect();
    let mut outcome = VerifyReport { checked: done.len(), ..VerifyReport::default() };
    let mut results = futures_util::stream::iter(done)
        .map(|clip| {
            let mut stop = stop.clone();
            async move {
                let mut sha256 = None;
                let problem = judge(out, &clip, ffmpeg, &mut stop, &mut sha256).await?;
                anyhow::Ok((clip, problem, sha256))
            }
        })
        .buffer_unordered(jobs);
    while let Some(verdict) = results.next().await {
        let (clip, problem, sha256) = verdict?;
        record(&mut journal, out, &clip, problem, sha256, &mut outcome)?;
    }
    outcome.broken.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(outcome)
}

/// The clip's problem, cheapest checks first (`None`: good); fills in the file's sha256 when it reads.
async fn judge(
    out: &Path,
    clip: &ClipRow,
    ffmpeg: &Ffmpeg,
    stop: &mut StopSignal,
    sha256: &mut Option<String>,
) -> anyhow::Result<Option<Problem>> {
    let path = &out.join(&clip.rel_path);
    let size = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        _ => return Ok(Some(Problem::Missing)),
    };
    if let Some(expected) = clip.size_bytes.filter(|&s| s != size as i64) {
        return Ok(Some(Problem::Size { expected, actual: size }));
    }
    let hashing = path.to_path_buf();
    let sha = match tokio::task::spawn_blocking(move || sha256_file(&hashing)).await? {
        Ok(sha) => sha256.insert(sha).clone(),
        Err(e) => return Ok(Some(Problem::Unreadable(e.to_string()))),
    };
    if let Some(expected) = clip.sha256.as_ref().filter(|e| !e.eq_ignore_ascii_case(&sha)) {
        return Ok(Some(Problem::Checksum { expected: expected.clone(), actual: sha }));
    }
    let probe = match ffmpeg.probe(path, stop).await {
        Ok(p) => p,
        Err(f) => return tool_failure(f).map(Some),
    };
    if is_audio_clip(path) {
        if !probe.has_audio {
            return Ok(Some(Problem::NoAudio));
        }
    } else if !probe.has_video {
        return Ok(Some(Problem::NoVideo));
    }
    if let Some(problem) = duration_problem(clip.duration_s, probe.duration) {
        return Ok(Some(problem));
    }
    match ffmpeg.decode_check(path, stop).await {
        Ok(()) => Ok(None),
        Err(f) => tool_failure(f).map(Some),
    }
}

/// Whether a clip file is an `--audio-only` clip, by its extension.
fn is_audio_clip(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("flac" | "wav" | "m4a"))
}

/// A tool's complaint is the clip's problem, unless the tool itself cannot run (then no clip is judged).
fn tool_failure(f: Failure) -> anyhow::Result<Problem> {
    if f.category == Category::Environment {
        return Err(ToolsBroken(f.message).into());
    }
    Ok(Problem::Undecodable(f.message))
}

/// Whether ffprobe's duration matches the journal's (any positive duration when none was recorded).
fn duration_problem(recorded: Option<f64>, probed: Option<f64>) -> Option<Problem> {
    let expected = recorded.unwrap_or(0.0);
    match (recorded, probed) {
        (_, None) => Some(Problem::NoDuration { expected }),
        (Some(want), Some(got)) if (got - want).abs() > DURATION_TOLERANCE_S => {
            Some(Problem::Duration { expected, actual: got })
        }
        (None, Some(got)) if got <= 0.0 => Some(Problem::Duration { expected, actual: got }),
        _ => None,
    }
}

/// Records one verdict: a missing sha256 for a good clip; for a broken one, its file moved aside and the
/// clip back to pending with its attempts cleared.
fn record(
    journal: &mut Journal,
    out: &Path,
    clip: &ClipRow,
    problem: Option<Problem>,
    sha256: Option<String>,
    outcome: &mut VerifyReport,
) -> anyhow::Result<()> {
    let Some(problem) = problem else {
        if clip.sha256.is_none() {
            journal.record_sha256(clip.id, sha256.as_deref())?;
            outcome.hashes_recorded += 1;
        }
        return Ok(());
    };
    if problem != Problem::Missing {
        quarantine(out, &clip.rel_path)?;
    }
    journal.return_to_pending(clip.id, &format!("verify: {problem}"))?;
    outcome.broken.push((clip.rel_path.clone(), problem));
    Ok(())
}

/// Moves a broken file under `OUT/.kinetics-dl/broken/`, keeping its relative path (and the evidence).
fn quarantine(out: &Path, rel: &str) -> anyhow::Result<()> {
    let dest = out.join(STATE_DIR).join(BROKEN_DIR).join(rel);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::rename(out.join(rel), &dest).with_context(|| format!("failed to move {rel} to {}", dest.display()))
}

/// The report printed to stdout.
pub fn render(o: &VerifyReport, out: &Path) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let good = o.checked - o.broken.len();
    let _ = writeln!(s, "checked {} done clips: {good} good, {} broken", o.checked, o.broken.len());
    if o.hashes_recorded > 0 {
        let _ = writeln!(s, "recorded the sha256 of {} clips", o.hashes_recorded);
    }
    if o.broken.is_empty() {
        return s;
    }
    for (path, problem) in &o.broken {
        let _ = writeln!(s, "  broken  {path}: {problem}");
    }
    let _ = writeln!(
        s,
        "returned {} clips to pending (broken files moved to {}); run `kinetics-dl download` with the same \
         annotations and --out {} to fetch them again",
        o.broken.len(),
        out.join(STATE_DIR).join(BROKEN_DIR).display(),
        out.display()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_well() {
        let sums = Problem::Checksum { expected: "a".repeat(64), actual: "b".repeat(64) };
        let table = [
            (Problem::Missing, "the file is missing"),
            (Problem::Size { expected: 10, actual: 4 }, "4 bytes instead of 10"),
            (sums, "sha256 bbbbbbbbbbbb instead of aaaaaaaaaaaa"),
            (Problem::Duration { expected: 10.0, actual: 4.5 }, "lasts 4.50 s instead of 10.00 s"),
            (Problem::NoDuration { expected: 10.0 }, "no duration (expected 10.00 s)"),
        ];
        for (p, want) in table {
            assert_eq!(p.to_string(), want);
        }
    }

    #[test]
    fn duration_table() {
        // (recorded, probed, broken?) with the 0.35 s tolerance.
        let table = [
            (Some(10.0), Some(10.0), false),
            (Some(10.0), Some(10.34), false),
            (Some(10.0), Some(9.66), false),
            (Some(10.0), Some(10.4), true),
            (Some(10.0), Some(9.5), true),
            (Some(10.0), None, true),
            (None, Some(3.0), false),
            (None, Some(0.0), true),
            (None, None, true),
        ];
        for (recorded, probed, broken) in table {
            assert_eq!(duration_problem(recorded, probed).is_some(), broken, "{recorded:?} {probed:?}");
        }
    }

    #[test]
    fn render_lists_broken_clips_and_what_to_do() {
        let o = VerifyReport {
            checked: 3,
            broken: vec![("validate/a/x.mp4".into(), Problem::Missing)],
            hashes_recorded: 2,
        };
        let text = render(&o, Path::new("/data/k400"));
        for needle in [
            "checked 3 done clips: 2 good, 1 broken",
            "sha256 of 2 clips",
            "validate/a/x.mp4: the file is missing",
            "--out /data/k400",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let clean = render(&VerifyReport { checked: 3, ..VerifyReport::default() }, Path::new("o"));
        assert_eq!(clean, "checked 3 done clips: 3 good, 0 broken\n");
    }
}

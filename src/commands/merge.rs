//! `kinetics-dl merge --out FINAL SOURCES...`: one standard output folder from shard or worker folders.
//!
//! Each source is locked and its settings checked; every done clip's file is hashed (and checked against
//! the sha256 its journal recorded, or its recorded size); for a clip in several sources, done beats failed
//! beats pending, and of two done copies the one whose file verifies wins. Everything is built in FINAL's
//! temp folder (`.FINAL.merging` beside it, cleared first, so a merge killed midway reruns cleanly) and
//! renamed into place; `--mode move` removes the sources' clip files only after that rename.
//!
//! With `--db URL --fleet NAME` the fleet's record is the arbiter: of several copies of a clip, the one whose
//! sha256 the fleet recorded when its worker completed the clip (under a lease it still held) wins, and the
//! merge says which clips the record names but no source holds, and which sources hold clips the record
//! does not know as done.

use crate::exit_codes::{self, Usage, UsageExt};
use crate::journal::read::ClipRow;
use crate::journal::Journal;
use crate::manifest::build::sha256_file;
use crate::outdir::OutDir;
use crate::plan::ClipKey;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How clip files reach FINAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A hard link (a copy across filesystems).
    Hardlink,
    Copy,
    /// Linked or copied, then removed from the source once FINAL is in place.
    Move,
}

#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub out: PathBuf,
    pub sources: Vec<PathBuf>,
    pub mode: Mode,
    /// The fleet database whose record decides between copies.
    pub arbiter: Option<crate::fleet::FleetRef>,
}

/// The fleet's done clips by clip key.
fn fleet_record(a: &crate::fleet::FleetRef) -> anyhow::Result<BTreeMap<String, crate::fleet::DoneRecord>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let records = rt.block_on(async {
        let db = a.open().await.or_usage()?;
        db.done_record().await
    })?;
    Ok(records.into_iter().map(|r| (r.clip_key.clone(), r)).collect())
}

/// The settings that change a clip's bytes or place: sources must agree on each.
const PINNED: [&str; 9] =
    ["max_height", "trim", "short_side", "fps", "no_audio", "crf", "preset", "class_dirs", "url_template"];

fn usage(msg: String) -> anyhow::Error {
    Usage(anyhow::anyhow!(msg)).into()
}

/// One source's candidate for a clip.
struct Candidate {
    source: usize,
    row: ClipRow,
    /// For a done clip: its file's sha256 when the file verifies, else why not.
    verified: Option<Result<String, String>>,
}

impl Candidate {
    /// done and verified (3) > failed (2) > pending (1) > done with a broken file (0).
    fn rank(&self) -> u8 {
        match (self.row.state.as_str(), &self.verified) {
            ("done", Some(Ok(_))) => 3,
            ("failed", _) => 2,
            ("pending", _) => 1,
            _ => 0,
        }
    }
}

pub fn run(o: &MergeOptions) -> anyhow::Result<i32> {
    if o.sources.is_empty() {
        return Err(usage("merge needs at least one source folder".into()));
    }
    let final_dir = std::path::absolute(&o.out)?;
    if final_dir.exists() && std::fs::read_dir(&final_dir)?.next().is_some() {
        return Err(usage(format!("{} exists and is not empty; merge into a new folder", final_dir.display())));
    }
    let name = final_dir.file_name().ok_or_else(|| usage(format!("bad --out {}", final_dir.display())))?;
    let temp = final_dir.with_file_name(format!(".{}.merging", name.to_string_lossy()));

    // Lock every source (no download may run in it meanwhile) and check that they agree.
    let mut locks = Vec::new();
    let mut journals = Vec::new();
    for src in &o.sources {
        let src = std::path::absolute(src)?;
        if src == final_dir {
            return Err(usage(format!("{} is both a source and --out", src.display())));
        }
        let journal = Journal::open_existing(&src)?;
        locks.push(OutDir::open(&src).map_err(Usage)?);
        journals.push((src, journal));
    }
    check_settings(&journals)?;
    let mut record = match &o.arbiter {
        Some(a) => Some(fleet_record(a)?),
        None => None,
    };

    // Every candidate of every clip, done clips hashed.
    let mut by_key: BTreeMap<(String, i64, i64), Vec<Candidate>> = BTreeMap::new();
    for (i, (root, journal)) in journals.iter().enumerate() {
        for row in journal.clip_rows()? {
            let verified = (row.state == "done").then(|| verify(root, &row));
            by_key.entry((row.youtube_id.clone(), row.start_ms, row.end_ms)).or_default().push(Candidate {
                source: i,
                row,
                verified,
            });
        }
    }
    let mut picks: Vec<Vec<i64>> = vec![vec![]; journals.len()];
    let mut winners = Vec::new();
    let mut arbitration = Arbitration::default();
    for (key, mut cands) in by_key {
        for c in cands.iter().filter(|c| matches!(c.verified, Some(Err(_)))) {
            let why = c.verified.as_ref().and_then(|v| v.as_ref().err()).cloned().unwrap_or_default();
            eprintln!("{}: {why}", journals[c.source].0.join(&c.row.rel_path).display());
        }
        // The fleet's record first (its copy wins), then by rank; stable: among equals the first source named.
        let recorded = record.as_mut().and_then(|r| r.remove(&crate::fleet::clip_key(&clip_key(&key))));
        let is_recorded = |c: &Candidate| match (&recorded, &c.verified) {
            (Some(r), Some(Ok(sha))) => r.sha256.as_deref() == Some(sha.as_str()),
            _ => false,
        };
        cands.sort_by_key(|c| (std::cmp::Reverse(is_recorded(c)), std::cmp::Reverse(c.rank())));
        let best = cands.swap_remove(0);
        if record.is_some() {
            arbitrate(&key, recorded.as_ref(), &best, is_recorded(&best), &journals, &mut arbitration);
        }
        let others: Vec<_> = cands.iter().filter(|c| c.rank() == 3).collect();
        if record.is_some() {
            arbitration.set_aside += others.len() as u64;
        }
        for other in others {
            if other.verified != best.verified && record.is_none() {
                eprintln!(
                    "{} {}-{}: done in {} and {} with different bytes; both verify, kept the first",
                    key.0,
                    key.1,
                    key.2,
                    journals[best.source].0.display(),
                    journals[other.source].0.display()
                );
            }
        }
        picks[best.source].push(best.row.id);
        winners.push(best);
    }

    // Build FINAL's temp folder: layout, journal, clips, logs.
    if temp.exists() {
        std::fs::remove_dir_all(&temp).with_context(|| format!("failed to clear {}", temp.display()))?;
    }
    let out = OutDir::open(&temp)?;
    let mut merged = Journal::open(&Journal::path_in(out.root()))?;
    let shards: Vec<Option<String>> = journals.iter().map(|(_, j)| j.shard()).collect::<anyhow::Result<_>>()?;
    let same_shard = shards.windows(2).all(|w| w[0] == w[1]);
    merged.pin_shard(if same_shard { shards[0].as_deref() } else { None })?;
    for (i, (root, _)) in journals.iter().enumerate() {
        merged.import_clips(&Journal::path_in(root), &picks[i])?;
    }
    for (root, _) in &journals {
        merged.import_history(&Journal::path_in(root))?;
    }
    let (mut placed, mut broken) = (0u64, 0u64);
    for w in &winners {
        let key = ClipKey { youtube_id: w.row.youtube_id.clone(), start_ms: w.row.start_ms, end_ms: w.row.end_ms };
        let id = merged.clip_id(&key)?.context("a merged clip is missing from the merged journal")?;
        match &w.verified {
            Some(Ok(sha)) => {
                place(&journals[w.source].0.join(&w.row.rel_path), &out.root().join(&w.row.rel_path), o.mode)?;
                merged.record_sha256(id, Some(sha))?;
                placed += 1;
            }
            Some(Err(why)) => {
                merged.return_to_pending(id, &format!("merge: {why}"))?;
                broken += 1;
            }
            None => {}
        }
    }
    crate::download::logs::write(&merged, out.root()).context("failed to write stats.csv and failed.csv")?;
    drop(merged);
    drop(out);
    if final_dir.exists() {
        std::fs::remove_dir(&final_dir)?;
    }
    std::fs::rename(&temp, &final_dir)
        .with_context(|| format!("failed to rename {} to {}", temp.display(), final_dir.display()))?;
    if o.mode == Mode::Move {
        for w in winners.iter().filter(|w| matches!(w.verified, Some(Ok(_)))) {
            std::fs::remove_file(journals[w.source].0.join(&w.row.rel_path))?;
        }
    }
    drop(locks);
    eprintln!(
        "merged {} sources into {}: {} clips, {placed} files placed, {broken} broken files left pending",
        journals.len(),
        final_dir.display(),
        winners.len()
    );
    if let (Some(a), Some(rest)) = (&o.arbiter, record) {
        arbitration.in_no_source.extend(rest.into_values());
        eprintln!("{}", arbitration.summary(&a.name));
    }
    Ok(exit_codes::SUCCESS)
}

fn clip_key(key: &(String, i64, i64)) -> ClipKey {
    ClipKey { youtube_id: key.0.clone(), start_ms: key.1, end_ms: key.2 }
}

/// What the fleet's record decided, for the merge's last lines.
#[derive(Default)]
struct Arbitration {
    /// Clips whose copy of record was found and placed.
    by_record: u64,
    /// Copies other than the record's that were set aside.
    set_aside: u64,
    /// Done in the record; the sources hold another verified copy (kept) or none.
    record_missing: u64,
    /// Done and verified in a source, not done in the record (a completion that never reached it).
    unrecorded: u64,
    /// Done in the record, in none of the sources at all.
    in_no_source: Vec<crate::fleet::DoneRecord>,
}

impl Arbitration {
    fn summary(&self, fleet: &str) -> String {
        let mut s = format!(
            "fleet {fleet}'s record decided: {} clips from the copy it names, {} other copies set aside, {} \
             whose recorded copy no source holds, {} done in a source but not in the record",
            self.by_record, self.set_aside, self.record_missing, self.unrecorded
        );
        if !self.in_no_source.is_empty() {
            let workers: std::collections::BTreeSet<&str> =
                self.in_no_source.iter().map(|r| r.worker.as_str()).collect();
            s.push_str(&format!(
                "\n{} clips done in fleet {fleet} are in none of these folders (made by {}): is a worker's folder \
                 missing from the command?",
                self.in_no_source.len(),
                workers.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        s
    }
}

/// Notes how the record decided one clip, saying so where it could not.
fn arbitrate(
    key: &(String, i64, i64),
    recorded: Option<&crate::fleet::DoneRecord>,
    best: &Candidate,
    best_is_recorded: bool,
    journals: &[(PathBuf, Journal)],
    a: &mut Arbitration,
) {
    let (id, start, end) = key;
    let source = journals[best.source].0.display();
    match recorded {
        Some(_) if best_is_recorded => a.by_record += 1,
        Some(r) => {
            a.record_missing += 1;
            let kept = if best.rank() == 3 { format!("kept {source}'s verified copy") } else { "none kept".into() };
            eprintln!(
                "{id} {start}-{end}: the fleet's copy of record ({} by worker {}, sha256 {}) is in no source; {kept}",
                r.location,
                r.worker,
                r.sha256.as_deref().unwrap_or("unknown")
            );
        }
        None if best.rank() == 3 => {
            a.unrecorded += 1;
            eprintln!("{id} {start}-{end}: done in {source} but not in the fleet's record (kept; it verifies)");
        }
        None => {}
    }
}

/// Refuses sources whose clips were made with different settings, naming the first that differs.
fn check_settings(journals: &[(PathBuf, Journal)]) -> anyhow::Result<()> {
    let mut first: Option<(usize, serde_json::Value)> = None;
    for (i, (root, journal)) in journals.iter().enumerate() {
        let Some(s) = journal.last_settings()? else { continue };
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        let Some((j, base)) = &first else {
            first = Some((i, v));
            continue;
        };
        for key in PINNED {
            if v.get(key) != base.get(key) {
                return Err(usage(format!(
                    "{} and {} were made with different {key} ({} vs {}): their clips cannot be merged",
                    journals[*j].0.display(),
                    root.display(),
                    base.get(key).unwrap_or(&serde_json::Value::Null),
                    v.get(key).unwrap_or(&serde_json::Value::Null)
                )));
            }
        }
    }
    Ok(())
}

/// A done clip's file hashed and checked against its record: its sha256, or why it does not verify.
fn verify(root: &Path, row: &ClipRow) -> Result<String, String> {
    let path = root.join(&row.rel_path);
    let size = std::fs::metadata(&path).map_err(|e| format!("done in the journal but unreadable: {e}"))?.len();
    let sha = sha256_file(&path).map_err(|e| format!("unreadable: {e}"))?;
    match (&row.sha256, row.size_bytes) {
        (Some(want), _) if *want != sha => Err(format!("sha256 {sha} differs from the journal's {want}")),
        (_, Some(want)) if want as u64 != size => Err(format!("{size} bytes, the journal says {want}")),
        _ => Ok(sha),
    }
}

/// Puts a clip file at `dest` (parents created) by `mode`; a hard link falls back to a copy.
fn place(src: &Path, dest: &Path, mode: Mode) -> anyhow::Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if mode != Mode::Copy && std::fs::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dest).with_context(|| format!("failed to copy {} to {}", src.display(), dest.display()))?;
    Ok(())
}

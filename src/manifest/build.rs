//! The manifest document: every clip of the journal with its outcome, and for done clips the bytes that
//! prove it (sha256, size, duration), where they came from and how they were made.
//!
//! The document is deterministic (no timestamps of its own, clips sorted by key, one clip a line), so two
//! researchers can compare datasets with `diff`, `git` or just the `fingerprint`.

use crate::journal::read::{ClipRow, Reader, RunRow};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

/// Bumped when a field changes meaning; readers refuse newer versions.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub kinetics_dl_manifest: u32,
    pub generator: String,
    /// sha256 over the sorted lines `youtube_id\tstart_ms\tend_ms\tsha256\n` of the done clips: equal
    /// fingerprints mean the same clips with the same bytes.
    pub fingerprint: String,
    pub counts: Counts,
    pub runs: Vec<RunRow>,
    pub clips: Vec<Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub pending: u64,
    pub broken: u64,
}

/// What became of a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipOutcome {
    Done,
    Failed,
    Pending,
    /// The journal says done but the file is missing or has another size: `kinetics-dl verify` repairs it.
    Broken,
}

/// One clip (one or more identical annotation rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub youtube_id: String,
    pub time_start: f64,
    pub time_end: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Every label of a clip with several (AudioSet, AVA-Kinetics), the first being `label`; absent for a
    /// clip with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// AVA-Kinetics: the keyframe's person boxes, each with its action and person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<crate::annotations::PersonBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    pub path: String,
    pub rows: i64,
    pub outcome: ClipOutcome,
    /// Failure category (failed clips) or what is wrong with the file (broken clips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// `youtube`, `adopted` or `mirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The yt-dlp format id, or the mirror tarball the clip came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_video: bool,
    /// The run (see `runs`: encode settings, tool versions) that produced the clip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
}

impl Entry {
    /// The clip's identity, exact to the millisecond.
    pub fn key(&self) -> (String, i64, i64) {
        (self.youtube_id.clone(), ms(self.time_start), ms(self.time_end))
    }
}

fn ms(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

/// Builds the manifest of OUT from its journal, hashing done clips whose sha256 is not recorded yet.
pub fn build(out: &Path) -> anyhow::Result<Manifest> {
    let journal = Reader::open(out)?;
    let clips = journal.clips().context("failed to read the clips of the journal")?;
    let runs = journal.runs().context("failed to read the runs of the journal")?;
    let done_runs = journal.done_run_by_clip().context("failed to read the attempts of the journal")?;
    let hashes = hash_missing(out, &clips);
    let mut entries: Vec<Entry> =
        clips.iter().zip(hashes).map(|(c, h)| entry(out, c, h, done_runs.get(&c.id).copied())).collect();
    entries.sort_by(by_key);
    Ok(assemble(entries, runs))
}

/// Manifest order, (youtube_id, time_start, time_end) to the millisecond, without copying the ids.
fn by_key(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    (a.youtube_id.as_str(), ms(a.time_start), ms(a.time_end)).cmp(&(
        b.youtube_id.as_str(),
        ms(b.time_start),
        ms(b.time_end),
    ))
}

/// How many clips in the streamed manifest are checked and hashed at once, on all cores.
const BATCH: usize = 4096;

/// Where a clip's JSON line and fingerprint line are in the streamed manifest's scratch file.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    offset: u64,
    json: u32,
    fingerprint: u32,
}

/// Builds OUT's manifest and writes it to `dest` (as [`write`] does [`build`]'s) without holding it in
/// memory. The clips are read in storage order (reading them in key order visits the table's pages at
/// random, several times slower), a batch at a time (files checked and missing hashes computed on all
/// cores); each one's JSON line goes to a scratch file and its place in manifest order comes from the
/// journal's key index. The lines are then copied in that order into the manifest after its header (counts
/// and runs), whose fingerprint, known only after the last clip, is written last. Returns the counts and the
/// fingerprint.
pub fn build_and_write(out: &Path, dest: &Path) -> anyhow::Result<(Counts, String)> {
    use std::os::unix::fs::FileExt;
    let journal = Reader::open(out)?;
    let read = || -> rusqlite::Result<_> {
        journal.snapshot()?;
        Ok((journal.runs()?, journal.done_run_by_clip()?, journal.ids_by_key()?))
    };
    let (runs, done_runs, ids_by_key) = read().context("failed to read the journal")?;
    // (clip id, place in manifest order), by id: the order the clips are read in.
    let mut places: Vec<(i64, u32)> = ids_by_key.into_iter().enumerate().map(|(i, id)| (id, i as u32)).collect();
    places.sort_unstable_by_key(|p| p.0);
    let pid = std::process::id();
    let lines = dest.with_extension(format!("lines.tmp{pid}"));
    let tmp = dest.with_extension(format!("tmp{pid}"));
    let write = || -> anyhow::Result<(Counts, String)> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&lines)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut spans = vec![Span::default(); places.len()];
        let (mut offset, mut next) = (0u64, 0usize);
        let mut counts = Counts::default();
        let mut batch: Vec<ClipRow> = Vec::with_capacity(BATCH);
        let mut flush = |batch: &mut Vec<ClipRow>| -> anyhow::Result<()> {
            let entries = entries(out, batch, &done_runs);
            for (c, e) in batch.drain(..).zip(entries) {
                while places.get(next).is_some_and(|p| p.0 < c.id) {
                    next += 1;
                }
                let place = match places.get(next) {
                    Some(&(id, place)) if id == c.id => place as usize,
                    _ => anyhow::bail!("clip {} of the journal is missing from its key index", c.id),
                };
                count(&mut counts, &e);
                let json = serde_json::to_string(&e)?;
                let fingerprint = if e.outcome == ClipOutcome::Done { fingerprint_text(&e) } else { String::new() };
                w.write_all(json.as_bytes())?;
                w.write_all(fingerprint.as_bytes())?;
                spans[place] = Span { offset, json: json.len() as u32, fingerprint: fingerprint.len() as u32 };
                offset += (json.len() + fingerprint.len()) as u64;
            }
            Ok(())
        };
        journal
            .each_clip(|c| {
                batch.push(c);
                if batch.len() == BATCH {
                    flush(&mut batch)?;
                }
                Ok(())
            })
            .context("failed to read the clips of the journal")?;
        flush(&mut batch)?;
        anyhow::ensure!(counts.total == spans.len() as u64, "the journal's clips and its key index disagree");
        let lines = w.into_inner().map_err(|e| e.into_error())?;
        // The header goes first with a stand-in fingerprint of the same length, the clips after it straight
        // into the manifest's temporary file; the fingerprint, known once every clip went by, is then
        // written over the stand-in. The file is renamed into place only after that.
        let generator = format!("kinetics-dl {}", env!("CARGO_PKG_VERSION"));
        let stand_in = "0".repeat(64);
        let mut header = Vec::new();
        write_header(&mut header, FORMAT_VERSION, &generator, &stand_in, &counts, &runs)?;
        // The first such key is the fingerprint's: it comes before the runs, the only free text in the header.
        let key = b"\"fingerprint\": \"";
        let at = header.windows(key.len()).position(|w| w == key).expect("the header's fingerprint") + key.len();
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        w.write_all(&header)?;
        // In manifest order: each clip's line from the scratch file (in the page cache: it was just written).
        let mut hasher = Sha256::new();
        let mut buf = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            buf.resize(s.json as usize + s.fingerprint as usize, 0);
            lines.read_exact_at(&mut buf, s.offset)?;
            let (json, fingerprint) = buf.split_at(s.json as usize);
            w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            w.write_all(json)?;
            hasher.update(fingerprint);
        }
        drop(lines);
        writeln!(w, "\n]\n}}")?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        let fingerprint = crate::units::hex(&hasher.finalize());
        file.write_all_at(fingerprint.as_bytes(), at as u64)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        Ok((counts, fingerprint))
    };
    let result = write();
    let _ = std::fs::remove_file(&lines);
    result
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("failed to write the manifest {}", dest.display()))
}

/// The entries of a batch of clips, in order: their files checked and missing hashes computed on all cores.
fn entries(out: &Path, clips: &[ClipRow], done_runs: &std::collections::HashMap<i64, i64>) -> Vec<Entry> {
    let one = |c: &ClipRow| {
        let hashed = (c.is_done() && c.sha256.is_none()).then(|| sha256_file(&out.join(&c.rel_path)));
        entry(out, c, hashed, done_runs.get(&c.id).copied())
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    if workers < 2 || clips.len() < 64 {
        return clips.iter().map(one).collect();
    }
    let chunk = clips.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            clips.chunks(chunk).map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a manifest thread panicked")).collect()
    })
}

fn count(counts: &mut Counts, e: &Entry) {
    counts.total += 1;
    match e.outcome {
        ClipOutcome::Done => counts.done += 1,
        ClipOutcome::Failed => counts.failed += 1,
        ClipOutcome::Pending => counts.pending += 1,
        ClipOutcome::Broken => counts.broken += 1,
    }
}

/// Puts entries and runs together with their counts and fingerprint.
pub fn assemble(clips: Vec<Entry>, runs: Vec<RunRow>) -> Manifest {
    let mut counts = Counts::default();
    for e in &clips {
        count(&mut counts, e);
    }
    Manifest {
        kinetics_dl_manifest: FORMAT_VERSION,
        generator: format!("kinetics-dl {}", env!("CARGO_PKG_VERSION")),
        fingerprint: fingerprint(&clips),
        counts,
        runs,
        clips,
    }
}

fn entry(out: &Path, c: &ClipRow, hashed: Option<std::io::Result<String>>, run: Option<i64>) -> Entry {
    let mut e = Entry {
        youtube_id: c.youtube_id.clone(),
        time_start: c.start_ms as f64 / 1000.0,
        time_end: c.end_ms as f64 / 1000.0,
        label: c.label.clone(),
        labels: if c.extra_labels.is_empty() {
            Vec::new()
        } else {
            c.label.iter().chain(&c.extra_labels).cloned().collect()
        },
        boxes: c.boxes.clone(),
        split: c.split.clone(),
        path: c.rel_path.clone(),
        rows: c.rows,
        outcome: match c.state.as_str() {
            "done" => ClipOutcome::Done,
            "failed" => ClipOutcome::Failed,
            _ => ClipOutcome::Pending,
        },
        category: c.category.clone().filter(|_| c.state == "failed"),
        sha256: None,
        size_bytes: None,
        duration_s: None,
        source: None,
        format_id: None,
        whole_video: false,
        run: None,
    };
    if e.outcome != ClipOutcome::Done {
        return e;
    }
    match file_problem(out, c).or_else(|| hashed.as_ref().and_then(|h| h.as_ref().err()).map(|e| e.to_string())) {
        Some(problem) => {
            e.outcome = ClipOutcome::Broken;
            e.category = Some(problem);
        }
        None => {
            e.sha256 = c.sha256.clone().or_else(|| hashed.and_then(Result::ok));
            e.size_bytes = c.size_bytes;
            e.duration_s = c.duration_s;
            e.source = c.source.clone();
            e.format_id = c.format_id.clone();
            e.whole_video = c.whole_video;
            e.run = run;
        }
    }
    e
}

/// Cheap checks only (existence and size); `verify` does the deep ones.
fn file_problem(out: &Path, c: &ClipRow) -> Option<String> {
    match std::fs::metadata(out.join(&c.rel_path)) {
        Err(_) => Some("file missing".into()),
        Ok(m) if c.size_bytes.is_some_and(|s| s != m.len() as i64) => {
            Some(format!("size {} instead of {}", m.len(), c.size_bytes.unwrap_or(0)))
        }
        Ok(_) => None,
    }
}

/// Hashes, on all cores, the done clips whose sha256 the journal lacks; `None` for the others.
fn hash_missing(out: &Path, clips: &[ClipRow]) -> Vec<Option<std::io::Result<String>>> {
    let todo: Vec<usize> = (0..clips.len()).filter(|&i| clips[i].is_done() && clips[i].sha256.is_none()).collect();
    let mut results: Vec<Option<std::io::Result<String>>> = (0..clips.len()).map(|_| None).collect();
    if todo.is_empty() {
        return results;
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(todo.len());
    let chunk = todo.len().div_ceil(workers);
    let hashed: Vec<(usize, std::io::Result<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter().map(|&i| (i, sha256_file(&out.join(&clips[i].rel_path)))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a hashing thread panicked")).collect()
    });
    for (i, h) in hashed {
        results[i] = Some(h);
    }
    results
}

/// The lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = crate::outdir::open_clip(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::units::hex(&hasher.finalize()))
}

/// The dataset's fingerprint (see [`Manifest::fingerprint`]).
pub fn fingerprint(clips: &[Entry]) -> String {
    let mut done: Vec<_> = clips.iter().filter(|e| e.outcome == ClipOutcome::Done).collect();
    done.sort_by(|a, b| by_key(a, b));
    let mut hasher = Sha256::new();
    for e in done {
        fingerprint_line(&mut hasher, e);
    }
    crate::units::hex(&hasher.finalize())
}

/// A done clip's line of the fingerprint.
fn fingerprint_line(hasher: &mut Sha256, e: &Entry) {
    hasher.update(fingerprint_text(e).as_bytes());
}

fn fingerprint_text(e: &Entry) -> String {
    let (s, t) = (ms(e.time_start), ms(e.time_end));
    format!("{}\t{s}\t{t}\t{}\n", e.youtube_id, e.sha256.as_deref().unwrap_or(""))
}

/// Writes the manifest as one JSON document with one clip a line (readable diffs), atomically.
pub fn write(manifest: &Manifest, dest: &Path) -> anyhow::Result<()> {
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> anyhow::Result<()> {
        let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
        let m = manifest;
        write_header(&mut w, m.kinetics_dl_manifest, &m.generator, &m.fingerprint, &m.counts, &m.runs)?;
        for (i, e) in manifest.clips.iter().enumerate() {
            write!(w, "{}\n{}", if i == 0 { "" } else { "," }, serde_json::to_string(e)?)?;
        }
        writeln!(w, "\n]\n}}")?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("failed to write the manifest {}", dest.display()))
}

/// Everything before the clips, up to and with `"clips": [`.
fn write_header(
    w: &mut impl Write,
    version: u32,
    generator: &str,
    fingerprint: &str,
    counts: &Counts,
    runs: &[RunRow],
) -> anyhow::Result<()> {
    writeln!(w, "{{")?;
    writeln!(w, "\"kinetics_dl_manifest\": {version},")?;
    writeln!(w, "\"generator\": {},", serde_json::to_string(generator)?)?;
    writeln!(w, "\"fingerprint\": {},", serde_json::to_string(fingerprint)?)?;
    writeln!(w, "\"counts\": {},", serde_json::to_string(counts)?)?;
    writeln!(w, "\"runs\": {},", serde_json::to_string_pretty(runs)?)?;
    write!(w, "\"clips\": [")?;
    Ok(())
}

/// Reads a manifest written by [`write`] (or any JSON with the same fields).
pub fn read(path: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read(path).with_context(|| format!("failed to read the manifest {}", path.display()))?;
    let m: Manifest =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a kinetics-dl manifest", path.display()))?;
    anyhow::ensure!(
        m.kinetics_dl_manifest <= FORMAT_VERSION,
        "{} has manifest version {}, newer than this kinetics-dl reads ({FORMAT_VERSION}); upgrade kinetics-dl",
        path.display(),
        m.kinetics_dl_manifest
    );
    Ok(m)
}

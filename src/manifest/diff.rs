//! Comparing two datasets: which clips each has that the other lacks, which differ in bytes, and why the
//! gaps exist (the failure category, or pending, or not in the other's annotations).

use super::build::{self, ClipOutcome, Entry, Manifest};
use anyhow::Context;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// How many clips of each list the table shows (the JSON has them all).
const TABLE_EXAMPLES: usize = 10;

/// Why the other side lacks a clip: `not_annotated`, `pending`, `broken`, or the failure category.
pub const NOT_ANNOTATED: &str = "not_annotated";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideSummary {
    pub source: String,
    pub fingerprint: String,
    pub total: u64,
    pub done: u64,
}

/// A clip present on one side only, or on both with different bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffClip {
    pub youtube_id: String,
    pub time_start: f64,
    pub time_end: f64,
    pub label: Option<String>,
    pub path: String,
    /// For one-sided clips: why the other side lacks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_a: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_b: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub a: SideSummary,
    pub b: SideSummary,
    pub identical: bool,
    /// Done on both sides with the same bytes.
    pub same: u64,
    pub only_in_a: Vec<DiffClip>,
    pub only_in_b: Vec<DiffClip>,
    pub different_bytes: Vec<DiffClip>,
    /// Why B lacks clips A has, by reason.
    pub b_gaps: BTreeMap<String, u64>,
    /// Why A lacks clips B has, by reason.
    pub a_gaps: BTreeMap<String, u64>,
}

/// Reads one side: a manifest file, or an output folder (built from its journal when it has one, which is
/// always current, else read from its `manifest.json`).
pub fn load_side(path: &Path) -> anyhow::Result<Manifest> {
    if path.is_file() {
        return build::read(path);
    }
    anyhow::ensure!(path.is_dir(), "{} is neither a manifest nor an output folder", path.display());
    if crate::journal::read::journal_path(path).is_file() {
        return build::build(path).with_context(|| format!("failed to build the manifest of {}", path.display()));
    }
    let file = path.join(super::DEFAULT_FILE);
    anyhow::ensure!(file.is_file(), "{} has neither a journal nor a {}", path.display(), super::DEFAULT_FILE);
    build::read(&file)
}

/// Compares two manifests.
pub fn diff(a: &Manifest, a_source: &str, b: &Manifest, b_source: &str) -> Diff {
    let (ia, ib) = (index(a), index(b));
    let mut d = Diff {
        a: summary(a, a_source),
        b: summary(b, b_source),
        identical: false,
        same: 0,
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
        different_bytes: Vec::new(),
        b_gaps: BTreeMap::new(),
        a_gaps: BTreeMap::new(),
    };
    for e in a.clips.iter().filter(|e| e.outcome == ClipOutcome::Done) {
        match ib.get(&e.key()) {
            Some(other) if other.outcome == ClipOutcome::Done => {
                if other.sha256 == e.sha256 {
                    d.same += 1;
                } else {
                    let mut c = clip(e, None);
                    c.sha256_a = e.sha256.clone();
                    c.sha256_b = other.sha256.clone();
                    d.different_bytes.push(c);
                }
            }
            other => {
                let why = reason(other.copied());
                *d.b_gaps.entry(why.clone()).or_default() += 1;
                d.only_in_a.push(clip(e, Some(why)));
            }
        }
    }
    for e in b.clips.iter().filter(|e| e.outcome == ClipOutcome::Done) {
        let other = ia.get(&e.key()).copied();
        if other.is_some_and(|o| o.outcome == ClipOutcome::Done) {
            continue;
        }
        let why = reason(other);
        *d.a_gaps.entry(why.clone()).or_default() += 1;
        d.only_in_b.push(clip(e, Some(why)));
    }
    d.identical = d.only_in_a.is_empty() && d.only_in_b.is_empty() && d.different_bytes.is_empty();
    d
}

fn index(m: &Manifest) -> HashMap<(String, i64, i64), &Entry> {
    m.clips.iter().map(|e| (e.key(), e)).collect()
}

fn summary(m: &Manifest, source: &str) -> SideSummary {
    SideSummary {
        source: source.to_string(),
        fingerprint: m.fingerprint.clone(),
        total: m.counts.total,
        done: m.counts.done,
    }
}

fn reason(other: Option<&Entry>) -> String {
    match other {
        None => NOT_ANNOTATED.into(),
        Some(o) => match o.outcome {
            ClipOutcome::Failed => o.category.clone().unwrap_or_else(|| "other".into()),
            ClipOutcome::Pending => "pending".into(),
            ClipOutcome::Broken => "broken".into(),
            ClipOutcome::Done => unreachable!("done clips are not gaps"),
        },
    }
}

fn clip(e: &Entry, reason: Option<String>) -> DiffClip {
    DiffClip {
        youtube_id: e.youtube_id.clone(),
        time_start: e.time_start,
        time_end: e.time_end,
        label: e.label.clone(),
        path: e.path.clone(),
        reason,
        sha256_a: None,
        sha256_b: None,
    }
}

/// The human-readable table.
pub fn render(d: &Diff) -> String {
    let mut s = String::new();
    for (name, side) in [("A", &d.a), ("B", &d.b)] {
        let _ = writeln!(s, "{name}  {}", side.source);
        let _ = writeln!(s, "   {} of {} clips done, fingerprint {}", side.done, side.total, short(&side.fingerprint));
    }
    let _ = writeln!(s);
    if d.identical {
        let _ = writeln!(s, "identical: the same {} clips with the same bytes", d.same);
        return s;
    }
    let rows = [
        ("done in both, same bytes", d.same as usize),
        ("done in both, different bytes", d.different_bytes.len()),
        ("only in A", d.only_in_a.len()),
        ("only in B", d.only_in_b.len()),
    ];
    for (what, n) in rows {
        let _ = writeln!(s, "  {what:<32}{n:>9}");
    }
    gaps(&mut s, "why B lacks A's clips", &d.b_gaps);
    gaps(&mut s, "why A lacks B's clips", &d.a_gaps);
    examples(&mut s, "different bytes", &d.different_bytes);
    examples(&mut s, "only in A", &d.only_in_a);
    examples(&mut s, "only in B", &d.only_in_b);
    s
}

fn gaps(s: &mut String, title: &str, gaps: &BTreeMap<String, u64>) {
    if gaps.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{title}:");
    let mut sorted: Vec<_> = gaps.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (why, n) in sorted {
        let _ = writeln!(s, "  {why:<32}{n:>9}");
    }
}

fn examples(s: &mut String, title: &str, clips: &[DiffClip]) {
    if clips.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{title} ({}):", clips.len());
    for c in clips.iter().take(TABLE_EXAMPLES) {
        let why = c.reason.as_deref().map(|r| format!("  [{r}]")).unwrap_or_default();
        let _ = writeln!(s, "  {}{why}", c.path);
    }
    if clips.len() > TABLE_EXAMPLES {
        let _ = writeln!(s, "  … and {} more (--json lists them all)", clips.len() - TABLE_EXAMPLES);
    }
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

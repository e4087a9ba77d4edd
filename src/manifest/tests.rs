//! Unit tests of the manifest: fingerprints, the document's round trip, and the diff's bookkeeping.

use super::build::{self, assemble, fingerprint, ClipOutcome, Entry};
use super::diff::{self, NOT_ANNOTATED};

fn entry(id: &str, start: f64, outcome: ClipOutcome, extra: Option<&str>) -> Entry {
    Entry {
        youtube_id: id.into(),
        time_start: start,
        time_end: start + 10.0,
        label: Some("air drumming".into()),
        labels: Vec::new(),
        boxes: Vec::new(),
        split: Some("validate".into()),
        path: format!("validate/air_drumming/{id}.mp4"),
        rows: 1,
        outcome,
        category: if outcome == ClipOutcome::Failed { extra.map(String::from) } else { None },
        sha256: if outcome == ClipOutcome::Done { extra.map(String::from) } else { None },
        size_bytes: None,
        duration_s: None,
        source: None,
        format_id: None,
        whole_video: false,
        run: None,
    }
}

#[test]
fn fingerprint_depends_on_done_clips_and_bytes_only() {
    let base = vec![entry("a", 1.0, ClipOutcome::Done, Some("h1")), entry("b", 2.0, ClipOutcome::Done, Some("h2"))];
    let fp = fingerprint(&base);
    let cases: Vec<(&str, Vec<Entry>, bool)> = vec![
        ("same clips in another order", vec![base[1].clone(), base[0].clone()], true),
        (
            "a failed clip added",
            [base.clone(), vec![entry("c", 3.0, ClipOutcome::Failed, Some("private"))]].concat(),
            true,
        ),
        ("a pending clip added", [base.clone(), vec![entry("c", 3.0, ClipOutcome::Pending, None)]].concat(), true),
        ("different bytes", vec![base[0].clone(), entry("b", 2.0, ClipOutcome::Done, Some("h3"))], false),
        ("a clip missing", vec![base[0].clone()], false),
        ("another window", vec![base[0].clone(), entry("b", 2.5, ClipOutcome::Done, Some("h2"))], false),
    ];
    for (what, clips, same) in cases {
        assert_eq!(fingerprint(&clips) == fp, same, "{what}");
    }
    assert_eq!(fp.len(), 64);
}

#[test]
fn keys_are_exact_to_the_millisecond() {
    let table = [(104.0, 104_000), (17.5, 17_500), (0.001, 1), (3599.999, 3_599_999)];
    for (secs, ms) in table {
        assert_eq!(entry("x", secs, ClipOutcome::Pending, None).key().1, ms, "{secs}");
    }
}

#[test]
fn written_manifest_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut done = entry("--nQbRBEz2s", 104.0, ClipOutcome::Done, Some("ab"));
    done.size_bytes = Some(12345);
    done.duration_s = Some(10.0);
    done.run = Some(1);
    let m = assemble(
        vec![done, entry("b", 1.0, ClipOutcome::Failed, Some("private")), entry("c", 2.0, ClipOutcome::Pending, None)],
        vec![],
    );
    assert_eq!((m.counts.total, m.counts.done, m.counts.failed, m.counts.pending), (3, 1, 1, 1));
    let path = dir.path().join("manifest.json");
    build::write(&m, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // One clip a line, so that line-based tools diff manifests well.
    assert_eq!(text.lines().filter(|l| l.contains("\"youtube_id\"")).count(), 3, "{text}");
    assert_eq!(build::read(&path).unwrap(), m);
}

#[test]
fn newer_manifest_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = assemble(vec![], vec![]);
    m.kinetics_dl_manifest = build::FORMAT_VERSION + 1;
    let path = dir.path().join("m.json");
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = build::read(&path).unwrap_err().to_string();
    assert!(err.contains("upgrade kinetics-dl"), "{err}");
}

#[test]
fn diff_sorts_clips_into_gaps_with_reasons() {
    let a = assemble(
        vec![
            entry("same", 0.0, ClipOutcome::Done, Some("h")),
            entry("bytes", 0.0, ClipOutcome::Done, Some("h1")),
            entry("failed_in_b", 0.0, ClipOutcome::Done, Some("h")),
            entry("pending_in_b", 0.0, ClipOutcome::Done, Some("h")),
            entry("absent_in_b", 0.0, ClipOutcome::Done, Some("h")),
            entry("failed_in_a", 0.0, ClipOutcome::Failed, Some("unavailable")),
            entry("both_failed", 0.0, ClipOutcome::Failed, Some("private")),
        ],
        vec![],
    );
    let b = assemble(
        vec![
            entry("same", 0.0, ClipOutcome::Done, Some("h")),
            entry("bytes", 0.0, ClipOutcome::Done, Some("h2")),
            entry("failed_in_b", 0.0, ClipOutcome::Failed, Some("http_404")),
            entry("pending_in_b", 0.0, ClipOutcome::Pending, None),
            entry("failed_in_a", 0.0, ClipOutcome::Done, Some("h")),
            entry("only_b", 0.0, ClipOutcome::Done, Some("h")),
            entry("both_failed", 0.0, ClipOutcome::Failed, Some("private")),
        ],
        vec![],
    );
    let d = diff::diff(&a, "a", &b, "b");
    assert!(!d.identical);
    assert_eq!(d.same, 1);
    let ids = |v: &[diff::DiffClip]| v.iter().map(|c| c.youtube_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&d.different_bytes), ["bytes"]);
    assert_eq!(ids(&d.only_in_a), ["failed_in_b", "pending_in_b", "absent_in_b"]);
    assert_eq!(ids(&d.only_in_b), ["failed_in_a", "only_b"]);
    let gaps = |v: &[(&str, u64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    assert_eq!(d.b_gaps, gaps(&[("http_404", 1), ("pending", 1), (NOT_ANNOTATED, 1)]));
    assert_eq!(d.a_gaps, gaps(&[("unavailable", 1), (NOT_ANNOTATED, 1)]));
    let table = diff::render(&d);
    for needle in ["only in A", "http_404", "different bytes (1)", "validate/air_drumming/bytes.mp4"] {
        assert!(table.contains(needle), "{needle} in\n{table}");
    }
    let same = diff::diff(&a, "a", &a, "a2");
    assert!(same.identical && same.a_gaps.is_empty());
    assert!(diff::render(&same).contains("identical"));
}

/// A journal of `n` clips in an order other than their keys', most done with a small file (some with a
/// recorded sha256, some to hash, one missing, one resized), some failed, some pending.
fn journal_with_clips(out: &std::path::Path, n: usize) {
    use crate::journal::{Done, Failed, Journal, State};
    use crate::plan::{ClipKey, Job};
    let mut j = Journal::open(&Journal::path_in(out)).unwrap();
    let jobs: Vec<Job> = (0..n)
        .map(|i| {
            // Ids in reverse of insertion order, two clips for some videos.
            let id = format!("v{:010}", (n - i) / 2);
            let key = ClipKey {
                youtube_id: id.clone(),
                start_ms: (i % 2) as i64 * 20_000,
                end_ms: (i % 2) as i64 * 20_000 + 10_000,
            };
            let rel_path = format!("train/cls_{}/{id}_{}.mp4", i % 7, i % 2).into();
            Job {
                key,
                label: Some(format!("cls {}", i % 7)),
                split: Some("train".into()),
                rel_path,
                rows: 1,
                ..Job::default()
            }
        })
        .collect();
    j.sync_plan(&jobs).unwrap();
    for (i, c) in j.clips().unwrap().into_iter().enumerate() {
        match i % 10 {
            8 => {
                let f = Failed {
                    state: State::Failed,
                    category: "private",
                    message: "m",
                    stderr_tail: "",
                    attempts: 1,
                    next_attempt_ms: None,
                    bytes_fetched: 0,
                };
                j.record_failure(c.id, &f).unwrap();
            }
            9 => {}
            _ => {
                let path = out.join(&c.rel_path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let body = format!("clip {i}\n");
                if i != 3 {
                    std::fs::write(&path, &body).unwrap();
                }
                let size = if i == 5 { 1 } else { body.len() as u64 };
                let done = Done {
                    size_bytes: size,
                    duration_s: 10.0,
                    source: "youtube".into(),
                    format_id: "18".into(),
                    ..Done::default()
                };
                j.record_done(c.id, &done).unwrap();
                if i % 3 == 0 {
                    j.record_sha256(c.id, Some(&build::sha256_file(&path).unwrap_or_default())).unwrap();
                }
            }
        }
    }
}

#[test]
fn the_streamed_manifest_is_the_document_built_in_memory_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join(crate::journal::STATE_DIR)).unwrap();
    // More clips than one batch of the streamed writer.
    journal_with_clips(&out, 9_001);
    let in_memory = build::build(&out).unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    build::write(&in_memory, &a).unwrap();
    let (counts, fingerprint) = build::build_and_write(&out, &b).unwrap();
    assert_eq!(counts, in_memory.counts);
    assert_eq!(fingerprint, in_memory.fingerprint);
    assert!(counts.broken == 2 && counts.failed > 0 && counts.pending > 0 && counts.done > 0, "{counts:?}");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), std::fs::read_to_string(&a).unwrap());
    assert_eq!(build::read(&b).unwrap(), in_memory);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "no temp file left: {leftovers:?}");
}

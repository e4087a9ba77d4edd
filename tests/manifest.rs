//! `manifest`, `diff` and `verify` against real journals and real clips made by ffmpeg.

use kinetics_dl::commands;
use kinetics_dl::exit_codes;
use kinetics_dl::journal::Journal;
use kinetics_dl::manifest::{self, diff, DiffOptions, ManifestOptions};
use kinetics_dl::verify::VerifyOptions;
use rusqlite::{params, Connection};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes a real clip of `secs` seconds; `tone` makes clips differ in bytes.
fn make_clip(path: &Path, secs: u32, tone: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("ffmpeg")
        .args("-v error -y -f lavfi -i testsrc2=size=320x180:rate=15 -f lavfi".split(' '))
        .arg("-i")
        .arg(format!("sine=frequency={tone}"))
        .args(["-t", &secs.to_string()])
        .args("-c:v libx264 -preset ultrafast -c:a aac -shortest".split(' '))
        .arg(path)
        .status()
        .expect("ffmpeg is needed for these tests");
    assert!(status.success());
}

/// sha256 by coreutils, independent of the code under test.
fn sha256sum(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

struct Out {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Out {
    fn new() -> Out {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::create_dir_all(path.join(".kinetics-dl")).unwrap();
        drop(Journal::open(&Journal::path_in(&path)).unwrap());
        let o = Out { _dir: dir, path };
        o.db()
            .execute(
                "INSERT INTO runs (id, started_ms, finished_ms, command, settings, ytdlp_version, ffmpeg_version, exit_code)
                 VALUES (1, 1000, 9000, 'download', '{\"crf\":23,\"preset\":\"veryfast\",\"trim\":\"exact\"}', '2026.10.26', 'ffmpeg version 5.1', 0)",
                [],
            )
            .unwrap();
        o
    }

    fn db(&self) -> Connection {
        Connection::open(Journal::path_in(&self.path)).unwrap()
    }

    /// A done clip with a real file; `with_sha` records its sha256 in the journal too.
    fn done(&self, id: &str, secs: u32, tone: u32, with_sha: bool) -> PathBuf {
        let path = self.path.join(Self::rel(id));
        make_clip(&path, secs, tone);
        self.record_done(id, &path, with_sha)
    }

    /// A done clip whose file is a copy of another's (the same bytes in two datasets).
    fn done_copy(&self, id: &str, from: &Path) -> PathBuf {
        let path = self.path.join(Self::rel(id));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(from, &path).unwrap();
        self.record_done(id, &path, false)
    }

    fn rel(id: &str) -> String {
        format!("validate/air_drumming/{id}_000000_000010.mp4")
    }

    fn record_done(&self, id: &str, path: &Path, with_sha: bool) -> PathBuf {
        let o = Command::new("ffprobe")
            .args("-v error -show_entries format=duration -of csv=p=0".split(' '))
            .arg(path)
            .output()
            .unwrap();
        let duration: f64 = String::from_utf8(o.stdout).unwrap().trim().parse().unwrap();
        let size = std::fs::metadata(path).unwrap().len() as i64;
        let sha = with_sha.then(|| sha256sum(path));
        let db = self.db();
        db.execute(
            "INSERT INTO clips (youtube_id, start_ms, end_ms, label, split, rel_path, state, attempts, bytes_fetched,
               size_bytes, duration_s, download_s, encode_s, format_id, source, sha256)
             VALUES (?1, 0, 10000, 'air drumming', 'validate', ?2, 'done', 1, ?3, ?3, ?4, 1.0, 0.5, '18', 'youtube', ?5)",
            params![id, Self::rel(id), size, duration, sha],
        )
        .unwrap();
        db.execute(
            "INSERT INTO attempts (clip_id, run_id, started_ms, finished_ms, outcome, egress) VALUES (?1, 1, 2000, 3000, 'done', 'default')",
            params![db.last_insert_rowid()],
        )
        .unwrap();
        path.to_path_buf()
    }

    fn not_done(&self, id: &str, state: &str, category: Option<&str>) {
        self.db()
            .execute(
                "INSERT INTO clips (youtube_id, start_ms, end_ms, label, split, rel_path, state, category, attempts)
                 VALUES (?1, 0, 10000, 'zumba', 'validate', ?2, ?3, ?4, 1)",
                params![id, format!("validate/zumba/{id}_000000_000010.mp4"), state, category],
            )
            .unwrap();
    }

    fn state(&self, id: &str) -> (String, Option<String>, i64, Option<String>, Option<String>) {
        self.db()
            .query_row(
                "SELECT state, category, attempts, sha256, message FROM clips WHERE youtube_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap()
    }
}

fn manifest_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn manifest_records_every_clip_and_is_reproducible() {
    let out = Out::new();
    let b = out.done("bbbbbbbbbbb", 2, 300, true);
    let a = out.done("aaaaaaaaaaa", 3, 500, false);
    out.not_done("ccccccccccc", "failed", Some("unavailable"));
    out.not_done("ddddddddddd", "pending", None);
    let args = ManifestOptions { out: out.path.clone(), output: None };
    assert_eq!(commands::manifest::run(&args).unwrap(), 0);
    let m = manifest_json(&out.path.join("manifest.json"));
    assert_eq!(m["counts"], serde_json::json!({"total": 4, "done": 2, "failed": 1, "pending": 1, "broken": 0}));
    let clips = m["clips"].as_array().unwrap();
    let ids: Vec<&str> = clips.iter().map(|c| c["youtube_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc", "ddddddddddd"], "sorted by key");
    for (clip, path) in clips.iter().zip([&a, &b]) {
        assert_eq!(clip["outcome"], "done");
        assert_eq!(clip["sha256"].as_str().unwrap(), sha256sum(path));
        assert_eq!(clip["size_bytes"].as_u64().unwrap(), std::fs::metadata(path).unwrap().len());
        assert!(clip["duration_s"].as_f64().unwrap() > 1.5);
        assert_eq!(
            (clip["source"].as_str(), clip["format_id"].as_str(), clip["run"].as_i64()),
            (Some("youtube"), Some("18"), Some(1))
        );
    }
    assert_eq!((clips[2]["outcome"].as_str(), clips[2]["category"].as_str()), (Some("failed"), Some("unavailable")));
    assert_eq!(clips[3]["outcome"], "pending");
    assert!(clips[3].get("sha256").is_none());
    assert_eq!(m["runs"][0]["settings"]["crf"], 23);
    assert_eq!(m["runs"][0]["ytdlp_version"], "2026.10.26");
    // The manifest only reads: the missing hash is computed, not written back (verify records hashes).
    assert_eq!(out.state("aaaaaaaaaaa").3, None);

    let again = out.path.join("again.json");
    assert_eq!(
        commands::manifest::run(&ManifestOptions { out: out.path.clone(), output: Some(again.clone()) }).unwrap(),
        0
    );
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(out.path.join("manifest.json")).unwrap());

    std::fs::remove_file(&a).unwrap();
    assert_eq!(
        commands::manifest::run(&ManifestOptions { out: out.path.clone(), output: Some(again.clone()) }).unwrap(),
        0
    );
    let broken = manifest_json(&again);
    assert_eq!(broken["counts"]["broken"], 1);
    assert_eq!(
        (broken["clips"][0]["outcome"].as_str(), broken["clips"][0]["category"].as_str()),
        (Some("broken"), Some("file missing"))
    );
    assert_ne!(broken["fingerprint"], m["fingerprint"]);
}

#[test]
fn diff_finds_gaps_and_different_bytes() {
    let a = Out::new();
    let same = a.done("same0000000", 2, 300, false);
    a.done("changed0000", 2, 400, false);
    a.done("failsinb000", 2, 500, false);
    let b = Out::new();
    b.done_copy("same0000000", &same);
    b.done("changed0000", 2, 700, false);
    b.not_done("failsinb000", "failed", Some("http_404"));
    b.done("onlyinb0000", 2, 600, false);
    assert_eq!(commands::manifest::run(&ManifestOptions { out: b.path.clone(), output: None }).unwrap(), 0);

    // A as a folder (built from its journal), B as its manifest file.
    let ma = diff::load_side(&a.path).unwrap();
    let mb = diff::load_side(&b.path.join("manifest.json")).unwrap();
    let d = diff::diff(&ma, "a", &mb, "b");
    assert_eq!(d.same, 1);
    let ids = |v: &[diff::DiffClip]| v.iter().map(|c| c.youtube_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&d.different_bytes), ["changed0000"]);
    assert_eq!(ids(&d.only_in_a), ["failsinb000"]);
    assert_eq!(d.only_in_a[0].reason.as_deref(), Some("http_404"));
    assert_eq!(ids(&d.only_in_b), ["onlyinb0000"]);
    assert_eq!(d.only_in_b[0].reason.as_deref(), Some(diff::NOT_ANNOTATED));
    let table = diff::render(&d);
    assert!(table.contains("why B lacks A's clips") && table.contains("http_404"), "{table}");

    let args = |x: &Out, y: &Path| DiffOptions { a: x.path.clone(), b: y.to_path_buf(), json: true };
    assert_eq!(commands::manifest::run_diff(&args(&a, &b.path)), manifest::DIFFERENT);
    assert_eq!(
        commands::manifest::run_diff(&args(&b, &b.path.join("manifest.json"))),
        0,
        "a folder equals its manifest"
    );
    assert_eq!(commands::manifest::run_diff(&args(&a, &a.path.join("nothing-here"))), exit_codes::USAGE);
}

fn verify_args(out: &Out) -> VerifyOptions {
    VerifyOptions { out: out.path.clone(), jobs: Some(2), ffmpeg: "ffmpeg".into(), ffprobe: "ffprobe".into() }
}

#[test]
fn verify_returns_broken_clips_to_pending_and_records_hashes() {
    let out = Out::new();
    let good = out.done("good0000000", 2, 300, false);
    out.done("hashed00000", 2, 350, true);
    let truncated = out.done("truncated00", 2, 400, false);
    let tampered = out.done("tampered000", 2, 450, true);
    let missing = out.done("missing0000", 2, 500, false);
    out.done("shorter0000", 2, 550, false);
    let garbled = out.done("garbled0000", 3, 600, false);
    out.not_done("failed00000", "failed", Some("private"));

    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut bytes = std::fs::read(&tampered).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&tampered, &bytes).unwrap();
    std::fs::remove_file(&missing).unwrap();
    out.db().execute("UPDATE clips SET duration_s = 6.0 WHERE youtube_id = 'shorter0000'", []).unwrap();
    // Same size, no recorded hash: only probing and decoding can tell.
    let mut bytes = std::fs::read(&garbled).unwrap();
    let (from, to) = (bytes.len() / 4, bytes.len() * 3 / 4);
    bytes[from..to].iter_mut().for_each(|b| *b = 0x5a);
    std::fs::write(&garbled, &bytes).unwrap();

    // Another kinetics-dl working in OUT keeps verify out.
    let lock = kinetics_dl::outdir::OutDir::open(&out.path).unwrap();
    let held = commands::verify::run(&verify_args(&out)).unwrap_err();
    assert_eq!(commands::exit_code(&held), exit_codes::USAGE, "{held:#}");
    assert!(format!("{held:#}").contains("already working in"), "{held:#}");
    drop(lock);
    // A broken ffprobe judges nothing.
    let no_probe = VerifyOptions { ffprobe: "/nonexistent/ffprobe".into(), ..verify_args(&out) };
    let broken = commands::verify::run(&no_probe).unwrap_err();
    assert_eq!(commands::exit_code(&broken), exit_codes::USAGE, "{broken:#}");
    assert_eq!(out.state("truncated00").0, "done");

    assert_eq!(commands::verify::run(&verify_args(&out)).unwrap(), exit_codes::INCOMPLETE);
    for id in ["truncated00", "tampered000", "missing0000", "shorter0000", "garbled0000"] {
        let (state, category, attempts, sha, message) = out.state(id);
        assert_eq!((state.as_str(), category, attempts, sha), ("pending", None, 0, None), "{id}");
        assert!(message.is_some_and(|m| m.starts_with("verify: ")), "{id}");
    }
    assert!(out.state("truncated00").4.unwrap().contains("bytes instead of"));
    assert!(out.state("tampered000").4.unwrap().contains("sha256"));
    assert!(out.state("shorter0000").4.unwrap().contains("instead of 6.00 s"));
    assert_eq!(out.state("good0000000").0, "done");
    assert_eq!(out.state("good0000000").3, Some(sha256sum(&good)), "a missing hash is recorded");
    assert_eq!(out.state("failed00000").0, "failed", "failed clips are not touched");
    // Broken files leave the clip paths (download would adopt a decodable one) but are kept aside.
    let broken_dir = out.path.join(".kinetics-dl/broken");
    for path in [&truncated, &tampered, &garbled] {
        assert!(!path.exists(), "{}", path.display());
        assert!(broken_dir.join(path.strip_prefix(&out.path).unwrap()).is_file());
    }
    assert_eq!(commands::verify::run(&verify_args(&out)).unwrap(), exit_codes::SUCCESS, "only good clips are done now");
}

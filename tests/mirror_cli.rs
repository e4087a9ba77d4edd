//! End-to-end tests of `download --source mirror|auto`: the real binary against a tiny K400-style CVDF
//! mirror served by the local test source, with the test source's synthetic videos standing in for YouTube.
//!
//! The mirror holds 10 s clips in gzip tarballs (two flat train parts and K400's replacement tarball), a
//! path list naming them under the real S3 base, and an annotation CSV with rows the mirror has, a row it
//! lacks, a row whose clip is zero bytes, and a packed clip no row asks for.

mod common;
#[path = "common/mirror_fixtures.rs"]
mod mirror_fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{video_log, Output, Running};
use kinetics_testsrc::{Config, TestServer};
use mirror_fixtures::{write_tar, Entry, REAL_BASE};

/// Length of every mirror clip and of every row's window, like Kinetics.
const CLIP_SECS: u32 = 10;
/// Frames per second of the test source's synthetic videos (its default profile).
const SOURCE_FPS: u32 = 15;
/// The pipeline's tolerance on a clip's duration (a frame or two at each end).
const DURATION_TOLERANCE: f64 = 0.35;
/// No run of these tiny plans comes near this, even on a loaded 2-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// Stands for the youtube id in the cached clip's title. It has the length of every id here, so each
/// packed copy carries its own id without moving a byte of the MP4 structure, and a clip placed at the
/// wrong path shows.
const TITLE_PLACEHOLDER: &[u8] = b"@@@@@@@@@@@";

const PART_0: &str = "400/train/part_0.tar.gz";
const PART_1: &str = "400/train/part_1.tar.gz";
/// kinetics-dl asks for it by itself whenever K400's train split is wanted, as the real mirror has it.
const REPLACEMENT: &str = "400/replacement_for_corrupted_k400.tgz";
const REPLACEMENT_DIR: &str = "replacement_for_corrupted_k400";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A good clip in this tarball, with a row.
    Good(&'static str),
    /// Zero bytes in this tarball, with a row.
    ZeroByte(&'static str),
    /// A row the mirror has no clip for.
    Absent,
    /// A good clip in this tarball that no row asks for.
    NoRow(&'static str),
}

#[derive(Debug)]
struct Clip {
    id: &'static str,
    start: u32,
    label: &'static str,
    kind: Kind,
}

const CLIPS: [Clip; 7] = [
    Clip { id: "mcgood00001", start: 0, label: "abseiling", kind: Kind::Good(PART_0) },
    Clip { id: "mcgood00002", start: 5, label: "air drumming", kind: Kind::Good(PART_0) },
    Clip { id: "mczero00001", start: 0, label: "abseiling", kind: Kind::ZeroByte(PART_0) },
    Clip { id: "mcgood00003", start: 3, label: "zumba", kind: Kind::Good(PART_1) },
    Clip { id: "mcnorow0001", start: 0, label: "zumba", kind: Kind::NoRow(PART_1) },
    Clip { id: "mcrepl00001", start: 0, label: "zumba", kind: Kind::Good(REPLACEMENT) },
    Clip { id: "mcabsent001", start: 10, label: "zumba", kind: Kind::Absent },
];

impl Clip {
    fn end(&self) -> u32 {
        self.start + CLIP_SECS
    }

    fn file_name(&self) -> String {
        format!("{}_{:06}_{:06}.mp4", self.id, self.start, self.end())
    }

    /// `train/{class}/{file}` with the default `--class-dirs underscore`.
    fn rel_path(&self) -> PathBuf {
        Path::new("train").join(self.label.replace(' ', "_")).join(self.file_name())
    }

    fn has_row(&self) -> bool {
        !matches!(self.kind, Kind::NoRow(_))
    }

    fn tarball(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Good(t) | Kind::ZeroByte(t) | Kind::NoRow(t) => Some(t),
            Kind::Absent => None,
        }
    }

    /// What the tarball holds for this clip.
    fn packed_bytes(&self) -> Vec<u8> {
        match self.kind {
            Kind::ZeroByte(_) => Vec::new(),
            _ => clip_bytes(self.id),
        }
    }
}

fn clips(pick: impl Fn(&Clip) -> bool) -> Vec<&'static Clip> {
    CLIPS.iter().filter(|c| pick(c)).collect()
}

/// A 10 s 160x90 clip with [`TITLE_PLACEHOLDER`] as its title, made with ffmpeg once per machine (cached in
/// the temp dir, written privately then renamed because test processes may race).
fn base_clip() -> &'static [u8] {
    static CLIP: OnceLock<Vec<u8>> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = std::env::temp_dir().join("kinetics-mirror-cli-fixture-v1");
        std::fs::create_dir_all(&dir).expect("create the fixture cache");
        let path = dir.join("clip-10s.mp4");
        if let Ok(bytes) = std::fs::read(&path) {
            if !bytes.is_empty() {
                return bytes;
            }
        }
        let tmp = dir.join(format!("clip-10s.{}.tmp.mp4", std::process::id()));
        let video = format!("testsrc2=size=160x90:rate=15:duration={CLIP_SECS}");
        let audio = format!("sine=frequency=440:duration={CLIP_SECS}");
        let title = format!("title={}", std::str::from_utf8(TITLE_PLACEHOLDER).unwrap());
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", &video])
            .args(["-f", "lavfi", "-i", &audio, "-c:v", "libx264", "-preset", "ultrafast", "-g", "15"])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-shortest", "-fflags", "+bitexact"])
            .args(["-metadata", &title])
            .arg(&tmp)
            .status()
            .expect("run ffmpeg to make the fixture clip");
        assert!(status.success(), "ffmpeg failed to make {}", tmp.display());
        std::fs::rename(&tmp, &path).expect("store the fixture clip");
        std::fs::read(&path).expect("read the fixture clip")
    })
}

/// The base clip with `id` as its title: distinct bytes for every clip, all decoding the same.
fn clip_bytes(id: &str) -> Vec<u8> {
    let base = base_clip();
    assert_eq!(id.len(), TITLE_PLACEHOLDER.len(), "fixture ids have the placeholder's length");
    let at: Vec<usize> = base
        .windows(TITLE_PLACEHOLDER.len())
        .enumerate()
        .filter_map(|(i, w)| (w == TITLE_PLACEHOLDER).then_some(i))
        .collect();
    assert_eq!(at.len(), 1, "the title placeholder occurs exactly once in the fixture clip");
    let mut bytes = base.to_vec();
    bytes[at[0]..at[0] + id.len()].copy_from_slice(id.as_bytes());
    bytes
}

/// A mirror folder, its annotations and a test source serving it under `/files`.
struct Setup {
    tmp: tempfile::TempDir,
    annotations: PathBuf,
    server: TestServer,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("mirror");
        for tarball in [PART_0, PART_1, REPLACEMENT] {
            let folder = if tarball == REPLACEMENT { format!("{REPLACEMENT_DIR}/") } else { "./".to_string() };
            let mut entries = vec![Entry::dir(folder.clone())];
            for c in clips(|c| c.tarball() == Some(tarball)) {
                let raw = Some(c.packed_bytes());
                entries.push(Entry { path: format!("{folder}{}", c.file_name()), content: None, raw });
            }
            write_tar(&root, tarball, true, &entries);
        }
        let list: String = [PART_0, PART_1].iter().map(|t| format!("{REAL_BASE}/{t}\n")).collect();
        std::fs::write(root.join("400/train/k400_train_path.txt"), list).unwrap();

        let mut csv = String::from("label,youtube_id,time_start,time_end,split\n");
        for c in clips(Clip::has_row) {
            let label = if c.label.contains(' ') { format!("\"{}\"", c.label) } else { c.label.to_string() };
            csv.push_str(&format!("{label},{},{},{},train\n", c.id, c.start, c.end()));
        }
        let annotations = tmp.path().join("train.csv");
        std::fs::write(&annotations, csv).unwrap();

        // 30 s synthetic videos: every row's window fits.
        let config = Config::for_tests().with_static_dir(&root);
        let server = kinetics_testsrc::spawn(config, "127.0.0.1:0".parse().unwrap()).expect("the test source starts");
        Setup { tmp, annotations, server }
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    fn download_args(&self, source: &str, dataset: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["download".into(), "--out".into(), self.out().into()];
        args.extend(["--annotations".into(), self.annotations.clone().into()]);
        let mirror_url = format!("{}/files", self.server.base_url());
        for a in ["--source", source, "--mirror-dataset", dataset, "--split", "train", "--mirror-url", &mirror_url] {
            args.push(a.into());
        }
        // The default path: the watch page and the default format choice.
        for a in ["--url-template", &self.server.watch_url_template(), "--retry-delay", "0s", "-j", "2"] {
            args.push(a.into());
        }
        args
    }

    /// Request counts per served path, once no response is still being written.
    fn requests_by_path(&self) -> BTreeMap<String, u64> {
        let stats = self.server.wait_idle(Duration::from_secs(30)).expect("the test source goes idle");
        let mut by_path = BTreeMap::new();
        for entry in &stats.log {
            *by_path.entry(entry.path.clone()).or_insert(0) += 1;
        }
        by_path
    }

    /// Ids of every `/v/{id}.mp4` request (the YouTube path).
    fn video_ids_requested(&self) -> BTreeSet<String> {
        let stats = self.server.wait_idle(Duration::from_secs(30)).expect("the test source goes idle");
        // Every request for a video (page, manifest, media) names its id; one naming none shows as its path.
        let mut ids: BTreeSet<String> = video_log(&stats).into_iter().map(|e| e.id.unwrap_or(e.path)).collect();
        ids.extend(stats.ids.into_keys());
        ids
    }

    /// Requests for tarballs under `/files`, per path.
    fn tarball_requests(&self) -> BTreeMap<String, u64> {
        let is_tarball = |p: &str| p.starts_with("/files/") && (p.ends_with(".tar.gz") || p.ends_with(".tgz"));
        self.requests_by_path().into_iter().filter(|(p, _)| is_tarball(p)).collect()
    }
}

/// Runs the real binary to its end with the tests' scrubbed environment, killed after `RUN_LIMIT`.
fn kinetics_dl(args: &[OsString]) -> Output {
    Running::download(args).wait(RUN_LIMIT)
}

/// The first number of the summary line starting with `prefix` (`done`, `mirror:`).
fn summary_number(ran: &Output, prefix: &str) -> Option<u64> {
    let line = ran.stderr.lines().map(str::trim).find(|l| l.starts_with(prefix))?;
    line[prefix.len()..].split_whitespace().next()?.parse().ok()
}

fn status_json(out: &Path) -> serde_json::Value {
    let ran = kinetics_dl(&["status".into(), "--json".into(), "--out".into(), out.into()]);
    assert_eq!(ran.code, Some(0), "status exits 0; stderr:\n{}", ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("status --json is JSON ({e}):\n{}", ran.stdout))
}

fn counts(value: &serde_json::Value) -> BTreeMap<String, u64> {
    let object = value.as_object().unwrap_or_else(|| panic!("an object of counts: {value}"));
    object.iter().map(|(k, v)| (k.clone(), v.as_u64().expect("a count"))).collect()
}

fn map<const N: usize>(items: [(&str, u64); N]) -> BTreeMap<String, u64> {
    items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// One clip's journal row: state, category, source.
type JournalRow = (String, Option<String>, Option<String>);

fn journal(out: &Path) -> BTreeMap<String, JournalRow> {
    let path = out.join(".kinetics-dl").join("journal.sqlite");
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn.prepare("SELECT youtube_id, state, category, source FROM clips").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// `youtube_id -> category` of every row of failed.csv.
fn failed_csv(out: &Path) -> BTreeMap<String, String> {
    let mut reader = csv::Reader::from_path(out.join("failed.csv")).expect("failed.csv exists");
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("failed.csv has {name}"));
    let (id, category) = (col("youtube_id"), col("category"));
    reader.records().map(|r| r.unwrap()).map(|r| (r[id].to_string(), r[category].to_string())).collect()
}

/// Every file under OUT outside the state folder, relative to OUT.
fn clip_files(out: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            let rel = path.strip_prefix(out).unwrap().to_path_buf();
            if rel.starts_with(".kinetics-dl") {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                dirs.push(path);
            } else if rel.extension().is_some_and(|e| e == "mp4") {
                found.insert(rel);
            }
        }
    }
    found
}

/// Every good mirror clip sits at its path with the bytes packed for it, recorded as from its tarball.
#[track_caller]
fn assert_mirror_clips(out: &Path) {
    let journal = journal(out);
    for c in clips(|c| matches!(c.kind, Kind::Good(_))) {
        let path = out.join(c.rel_path());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes == clip_bytes(c.id), "{} holds other bytes than the mirror's clip for {}", path.display(), c.id);
        let source = format!("mirror:{}", c.tarball().unwrap());
        assert_eq!(journal[c.id], ("done".into(), None, Some(source)), "journal row of {}", c.id);
    }
    assert!(!journal.contains_key("mcnorow0001"), "a clip without a row is not planned");
}

#[test]
fn mirror_source_takes_what_the_mirror_has_and_fails_the_rest() {
    let s = Setup::new();
    let out = s.out();
    let ran = kinetics_dl(&s.download_args("mirror", "k400"));

    assert_mirror_clips(&out);
    let want: BTreeSet<PathBuf> = clips(|c| matches!(c.kind, Kind::Good(_))).iter().map(|c| c.rel_path()).collect();
    assert_eq!(clip_files(&out), want, "only the mirror's good clips are in OUT; stderr:\n{}", ran.stderr);
    let failed = failed_csv(&out);
    let want_failed = [("mcabsent001", "missing_from_mirror"), ("mczero00001", "corrupt")];
    let want_failed: BTreeMap<String, String> =
        want_failed.iter().map(|(i, c)| (i.to_string(), c.to_string())).collect();
    assert_eq!(failed, want_failed, "failed.csv");

    let status = status_json(&out);
    assert_eq!(counts(&status["by_source"]), map([("mirror", 4)]), "by_source: {status:#}");
    assert_eq!(counts(&status["failed"]), map([("corrupt", 1), ("missing_from_mirror", 1)]), "failed: {status:#}");
    assert_eq!((status["done"].as_u64(), status["pending"].as_u64()), (Some(4), Some(0)), "{status:#}");
    assert_eq!(s.video_ids_requested(), BTreeSet::new(), "--source mirror never asks the YouTube path");

    assert_eq!(summary_number(&ran, "mirror:"), Some(4), "the summary's mirror line; stderr:\n{}", ran.stderr);
    assert_eq!(
        summary_number(&ran, "done"),
        Some(4),
        "the summary counts each done clip once; stderr:\n{}",
        ran.stderr
    );
    assert_eq!(ran.code, Some(0), "every row is done or failed for good; stderr:\n{}", ran.stderr);
}

#[test]
fn auto_source_fetches_what_the_mirror_lacks_or_has_broken_from_youtube() {
    let s = Setup::new();
    let out = s.out();
    let ran = kinetics_dl(&s.download_args("auto", "k400"));

    assert_mirror_clips(&out);
    let want: BTreeSet<PathBuf> = clips(Clip::has_row).iter().map(|c| c.rel_path()).collect();
    assert_eq!(clip_files(&out), want, "every row's clip is in OUT; stderr:\n{}", ran.stderr);
    let journal = journal(&out);
    for c in clips(|c| matches!(c.kind, Kind::Absent | Kind::ZeroByte(_))) {
        assert_eq!(journal[c.id].0, "done", "{}", c.id);
        let path = out.join(c.rel_path());
        let secs = probe_duration(&path);
        assert!((secs - f64::from(CLIP_SECS)).abs() <= DURATION_TOLERANCE, "{}: lasts {secs:.3} s", c.id);
        let frames = kinetics_testsrc::clip_frame_numbers(&path).unwrap_or_else(|e| panic!("{}: {e:#}", c.id));
        let want = (c.start * SOURCE_FPS, c.end() * SOURCE_FPS - 1);
        assert_eq!(frames, want, "{}: the test source's frames of the row's window", c.id);
    }
    assert_eq!(failed_csv(&out), BTreeMap::new(), "nothing failed");

    let status = status_json(&out);
    assert_eq!(counts(&status["by_source"]), map([("mirror", 4), ("youtube", 2)]), "by_source: {status:#}");
    assert_eq!((status["done"].as_u64(), status["pending"].as_u64()), (Some(6), Some(0)), "{status:#}");
    let want_ids: BTreeSet<String> = ["mcabsent001", "mczero00001"].map(String::from).into();
    assert_eq!(s.video_ids_requested(), want_ids, "the YouTube path is asked for exactly the missing and broken rows");
    assert_eq!(summary_number(&ran, "mirror:"), Some(4), "the summary's mirror line; stderr:\n{}", ran.stderr);
    assert_eq!(ran.code, Some(0), "stderr:\n{}", ran.stderr);
}

#[test]
fn rerun_of_a_finished_mirror_download_fetches_no_tarball() {
    let s = Setup::new();
    let out = s.out();
    let first = kinetics_dl(&s.download_args("mirror", "k400"));
    let tarballs = s.tarball_requests();
    let want: BTreeMap<String, u64> =
        [PART_0, PART_1, REPLACEMENT].iter().map(|t| (format!("/files/{t}"), 1)).collect();
    assert_eq!(tarballs, want, "the first run downloads each tarball once; stderr:\n{}", first.stderr);
    let journal_before = journal(&out);
    let files_before: Vec<(PathBuf, Vec<u8>)> =
        clip_files(&out).into_iter().map(|p| (p.clone(), std::fs::read(out.join(&p)).unwrap())).collect();

    let rerun = kinetics_dl(&s.download_args("mirror", "k400"));
    assert_eq!(s.tarball_requests(), want, "the rerun downloads no tarball: the journal says done or failed");
    assert_eq!(journal(&out), journal_before, "the rerun changes no clip's state");
    let files_after: Vec<(PathBuf, Vec<u8>)> =
        clip_files(&out).into_iter().map(|p| (p.clone(), std::fs::read(out.join(&p)).unwrap())).collect();
    assert!(files_after == files_before, "the rerun leaves the clips as they were");
    assert_eq!(s.video_ids_requested(), BTreeSet::new(), "--source mirror never asks the YouTube path");
    assert_eq!(rerun.code, Some(0), "first run's stderr:\n{}\nrerun's stderr:\n{}", first.stderr, rerun.stderr);
}

#[test]
fn unknown_mirror_dataset_is_a_usage_error() {
    let s = Setup::new();
    // `k700` is a real Kinetics release, but the mirror hosts only k700-2020.
    for dataset in ["k800", "k700", ""] {
        let ran = kinetics_dl(&s.download_args("mirror", dataset));
        assert_eq!(ran.code, Some(2), "--mirror-dataset {dataset:?}; stderr:\n{}", ran.stderr);
        assert!(ran.stderr.contains("k400"), "the error names the datasets there are: {}", ran.stderr);
    }
    assert_eq!(s.server.stats().total_requests, 0, "nothing was fetched");
    assert!(!out_has_clips(&s.out()), "nothing was written");
}

fn out_has_clips(out: &Path) -> bool {
    out.is_dir() && !clip_files(out).is_empty()
}

fn probe_duration(path: &Path) -> f64 {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(output.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().unwrap_or_else(|e| panic!("ffprobe duration {text:?} of {}: {e}", path.display()))
}

#[test]
fn mirror_reencode_brings_mirror_clips_to_the_target() {
    let s = Setup::new();
    let out = s.out();
    let mut args = s.download_args("mirror", "k400");
    args.extend(["--mirror-reencode", "--short-side", "60", "--fps", "10"].map(OsString::from));
    let ran = kinetics_dl(&args);
    assert_eq!(ran.code, Some(0), "stderr:\n{}", ran.stderr);
    for c in clips(|c| matches!(c.kind, Kind::Good(_))) {
        let path = out.join(c.rel_path());
        let media = common::probe(&path);
        // The mirror's clips are 160x90 at 15 fps; re-encoded, they have the target's short side and rate.
        assert_eq!((media.width.min(media.height), media.fps.round() as u32), (60, 10), "{}: {media:?}", c.id);
        assert!((media.duration - f64::from(CLIP_SECS)).abs() <= common::DURATION_TOLERANCE, "{}: {media:?}", c.id);
        assert!(std::fs::read(&path).unwrap() != clip_bytes(c.id), "{} kept the mirror's bytes", c.id);
    }
}

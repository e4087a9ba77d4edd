//! Reading what a run left behind: the journal (read-only SQLite), `stats.csv`/`failed.csv`, `status --json`,
//! and the clips themselves through ffprobe, ffmpeg and the test source's frame-number strip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::{Connection, OpenFlags};

use super::{os, run, Row, DURATION_TOLERANCE, FPS, VIDEO_SECS};

/// Runs the real ffmpeg quietly (overwriting outputs) and asserts it succeeded: for tests that make media.
pub fn ffmpeg(args: &[&str]) {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(o.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

pub fn journal_path(out: &Path) -> PathBuf {
    out.join(".kinetics-dl").join("journal.sqlite")
}

/// One row of the journal's `clips` table.
#[derive(Debug, Clone)]
pub struct JournalClip {
    pub id: i64,
    pub youtube_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub label: Option<String>,
    pub split: Option<String>,
    pub rel_path: String,
    pub rows: i64,
    pub state: String,
    pub category: Option<String>,
    pub attempts: i64,
    pub whole_video: bool,
    pub source: Option<String>,
    pub bytes_fetched: Option<i64>,
    pub size_bytes: Option<i64>,
    /// Which trim made a done clip (`exact`, `copy`, `smart`, `exact (why not smart)`).
    pub trim: Option<String>,
}

/// The journal, read-only, waiting for a running kinetics-dl's writes instead of failing on a lock.
pub fn open_journal(out: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(journal_path(out), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn try_journal_clips(out: &Path) -> rusqlite::Result<Vec<JournalClip>> {
    let conn = open_journal(out)?;
    let mut stmt = conn.prepare(
        "SELECT id, youtube_id, start_ms, end_ms, label, split, rel_path, rows, state, category, attempts,
                whole_video, source, bytes_fetched, size_bytes, trim FROM clips ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(JournalClip {
            id: r.get(0)?,
            youtube_id: r.get(1)?,
            start_ms: r.get(2)?,
            end_ms: r.get(3)?,
            label: r.get(4)?,
            split: r.get(5)?,
            rel_path: r.get(6)?,
            rows: r.get(7)?,
            state: r.get(8)?,
            category: r.get(9)?,
            attempts: r.get(10)?,
            whole_video: r.get::<_, i64>(11)? != 0,
            source: r.get(12)?,
            bytes_fetched: r.get(13)?,
            size_bytes: r.get(14)?,
            trim: r.get(15)?,
        })
    })?;
    rows.collect()
}

/// Every clip the journal knows, in plan order.
pub fn journal_clips(out: &Path) -> Vec<JournalClip> {
    try_journal_clips(out).expect("the journal is readable")
}

/// Clips in state `done`, or 0 while the journal does not exist yet (for polling a running download).
pub fn done_count(out: &Path) -> usize {
    try_journal_clips(out).map(|c| c.iter().filter(|c| c.state == "done").count()).unwrap_or(0)
}

/// One row of the journal's `attempts` table, with its clip's id.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub youtube_id: String,
    pub run_id: i64,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub outcome: String,
    pub category: Option<String>,
    pub egress: String,
}

/// The test source's video requests (watch pages, manifests, media), by arrival.
pub fn video_log(stats: &kinetics_testsrc::Stats) -> Vec<kinetics_testsrc::LogEntry> {
    let mut log: Vec<_> =
        stats.log.iter().filter(|e| e.path.starts_with("/v/") || e.path == "/watch").cloned().collect();
    log.sort_by_key(|e| e.time_ms);
    log
}

/// One throttle signal the journal recorded (`throttle_events`), in the order they came.
#[derive(Debug, Clone)]
pub struct ThrottleEvent {
    pub run_id: i64,
    pub egress: String,
    pub at_ms: i64,
    pub category: String,
    /// The cool-off this signal started; `None` when the breaker was already open.
    pub cooloff_s: Option<f64>,
    /// Requests of the throttled job that were answered with a throttle signal.
    pub wasted: u64,
}

impl ThrottleEvent {
    /// When the breaker this event opened lets a probe through (unix ms).
    pub fn reopens_ms(&self) -> Option<i64> {
        self.cooloff_s.map(|c| self.at_ms + (c * 1000.0).round() as i64)
    }
}

/// Every throttle event of the journal, by time (an error while a run may still be creating it).
pub fn try_throttle_events(out: &Path) -> rusqlite::Result<Vec<ThrottleEvent>> {
    let conn = open_journal(out)?;
    let mut stmt = conn
        .prepare("SELECT run_id, egress, at_ms, category, cooloff_s, wasted FROM throttle_events ORDER BY at_ms, id")?;
    let rows = stmt.query_map([], |r| {
        Ok(ThrottleEvent {
            run_id: r.get(0)?,
            egress: r.get(1)?,
            at_ms: r.get(2)?,
            category: r.get(3)?,
            cooloff_s: r.get(4)?,
            wasted: r.get::<_, i64>(5)? as u64,
        })
    })?;
    rows.collect()
}

/// [`try_throttle_events`], for a journal that is there.
pub fn throttle_events(out: &Path) -> Vec<ThrottleEvent> {
    try_throttle_events(out).expect("throttle_events is readable")
}

/// Every attempt, in the order they started.
pub fn attempts(out: &Path) -> Vec<AttemptRow> {
    let conn = open_journal(out).expect("the journal opens");
    let mut stmt = conn
        .prepare(
            "SELECT c.youtube_id, a.run_id, a.started_ms, a.finished_ms, a.outcome, a.category, COALESCE(a.egress, '')
             FROM attempts a JOIN clips c ON c.id = a.clip_id ORDER BY a.started_ms, a.id",
        )
        .expect("attempts query");
    let rows = stmt
        .query_map([], |r| {
            Ok(AttemptRow {
                youtube_id: r.get(0)?,
                run_id: r.get(1)?,
                started_ms: r.get(2)?,
                finished_ms: r.get(3)?,
                outcome: r.get(4)?,
                category: r.get(5)?,
                egress: r.get(6)?,
            })
        })
        .expect("attempts");
    rows.collect::<Result<_, _>>().expect("attempt rows")
}

/// `kinetics-dl status --out OUT --json`, parsed.
pub fn status_json(out: &Path) -> serde_json::Value {
    let mut args = os(["status", "--json", "--out"]);
    args.push(out.into());
    let o = run(&args);
    o.expect_code(0);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("status --json is JSON ({e}):\n{}", o.stdout))
}

/// A CSV file as its header and its rows keyed by column.
#[derive(Debug)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<BTreeMap<String, String>>,
}

impl Table {
    /// The rows whose `youtube_id` is `id`.
    pub fn for_id(&self, id: &str) -> Vec<&BTreeMap<String, String>> {
        self.rows.iter().filter(|r| r["youtube_id"] == id).collect()
    }
}

pub fn read_csv(path: &Path) -> Table {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = reader.headers().expect("a header").iter().map(str::to_owned).collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.expect("a CSV record");
            headers.iter().cloned().zip(r.iter().map(str::to_owned)).collect()
        })
        .collect();
    Table { headers, rows }
}

/// What ffprobe says about a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    /// The video stream's average frame rate.
    pub fps: f64,
    pub has_audio: bool,
}

pub fn probe(path: &Path) -> Media {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("{} has no video stream", path.display()));
    let rate = video["avg_frame_rate"].as_str().unwrap_or("0/1");
    let (n, d) = rate.split_once('/').unwrap_or((rate, "1"));
    let (n, d): (f64, f64) = (n.parse().unwrap_or(0.0), d.parse().unwrap_or(1.0));
    Media {
        duration: v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).expect("a duration"),
        width: video["width"].as_u64().expect("a width") as u32,
        height: video["height"].as_u64().expect("a height") as u32,
        fps: if d > 0.0 { n / d } else { 0.0 },
        has_audio: streams.iter().any(|s| s["codec_type"] == "audio"),
    }
}

/// Decodes the whole file; `Err` with ffmpeg's complaint when it is not a clean, complete video.
pub fn decode_check(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", out.status, stderr.trim()))
    }
}

/// Every file under `dir`, recursively (symlinks are listed, not followed).
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every `.mp4` in OUT outside kinetics-dl's own state folder.
pub fn clip_files(out: &Path) -> Vec<PathBuf> {
    all_files(out)
        .into_iter()
        .filter(|p| !p.strip_prefix(out).unwrap().starts_with(".kinetics-dl"))
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect()
}

/// `{id}_{start:06}_{end:06}.mp4`, milliseconds after a dot when a time is fractional (the CVDF naming).
pub fn clip_name(id: &str, start: f64, end: f64) -> String {
    let t = |s: f64| {
        let ms = (s * 1000.0).round() as i64;
        if ms % 1000 == 0 {
            format!("{:06}", ms / 1000)
        } else {
            format!("{:06}.{:03}", ms / 1000, ms % 1000)
        }
    };
    format!("{id}_{}_{}.mp4", t(start), t(end))
}

/// How long a correct clip lasts: its window, cut short where the video ends.
pub fn expected_duration(start: f64, end: f64) -> f64 {
    end.min(VIDEO_SECS) - start
}

/// The frame numbers a frame-accurate cut starts and ends with, by the README's rule counted frame by
/// frame: a clip holds the source frames whose time `t = n / FPS` satisfies `start <= t < end` (cut short
/// where the video ends); a window with no frame time inside keeps the frame on screen at `start`.
pub fn expected_frames(start: f64, end: f64) -> (u32, u32) {
    let fps = f64::from(FPS);
    let in_video = (VIDEO_SECS * fps).round() as u32;
    // Slack of 1e-7 s: 17.4 s is frame 261's time, though not once written in binary.
    let inside: Vec<u32> = (0..in_video)
        .filter(|&n| {
            let t = f64::from(n) / fps;
            t >= start - 1e-7 && t < end - 1e-7
        })
        .collect();
    match (inside.first(), inside.last()) {
        (Some(&first), Some(&last)) => (first, last),
        _ => {
            let on_screen = (0..in_video).take_while(|&n| f64::from(n) / fps <= start + 1e-7).last().unwrap_or(0);
            (on_screen, on_screen)
        }
    }
}

/// First and last frame number of a clip, read from the test source's strip.
pub fn frames(path: &Path) -> (u32, u32) {
    kinetics_testsrc::clip_frame_numbers(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// The frame number of every frame of a clip, in order.
pub fn frame_sequence(path: &Path) -> Vec<u32> {
    let numbers = kinetics_testsrc::clip_frame_sequence(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    numbers
        .iter()
        .enumerate()
        .map(|(i, n)| n.unwrap_or_else(|| panic!("{}: frame {i} has an unreadable number", path.display())))
        .collect()
}

/// Checks that every frame of a clip carries `want` in the test source's tag strip (profiles with a `tag`):
/// a clip cut from another video's stream fails here even when its frame numbers are right.
#[track_caller]
pub fn assert_tag(path: &Path, want: u32) {
    let tags = kinetics_testsrc::clip_tags(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    assert!(!tags.is_empty(), "{} has no frames", path.display());
    let wrong: Vec<_> = tags.iter().enumerate().filter(|(_, t)| **t != Some(want)).take(5).collect();
    assert!(wrong.is_empty(), "{}: frames with another tag than {want}: {wrong:?}", path.display());
}

/// Where a frame sequence is not the source's frames one after another: `(index, previous, this)`.
pub fn sequence_breaks(numbers: &[u32]) -> Vec<(usize, u32, u32)> {
    numbers.windows(2).enumerate().filter(|(_, w)| w[1] != w[0] + 1).map(|(i, w)| (i + 1, w[0], w[1])).collect()
}

/// Checks one done clip against its row: it is at the row's path (default class folders), lasts as long as
/// its window, and holds exactly the source's frames whose times are in `[time_start, time_end)`, each once.
#[track_caller]
pub fn assert_clip(out: &Path, row: &Row) {
    assert_clip_at(&out.join(row.rel_path()), row);
}

/// [`assert_clip`] for a clip at a path of the caller's choosing.
#[track_caller]
pub fn assert_clip_at(path: &Path, row: &Row) {
    assert!(path.is_file(), "{} is missing", path.display());
    let media = probe(path);
    let want = expected_duration(row.start, row.end);
    assert!(
        (media.duration - want).abs() <= DURATION_TOLERANCE,
        "{}: lasts {:.3} s, expected {want:.3} s",
        row.id,
        media.duration
    );
    let numbers = frame_sequence(path);
    let (first, last) = (numbers[0], numbers[numbers.len() - 1]);
    assert_eq!((first, last), expected_frames(row.start, row.end), "{}: first and last frame numbers", row.id);
    assert_eq!(sequence_breaks(&numbers), vec![], "{}: frames repeated or skipped (index, previous, this)", row.id);
}

/// One packet of a local media file (any stream), as ffprobe lists it.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    pub pts: f64,
    pub size: u64,
    /// Byte offset in the file.
    pub pos: u64,
}

/// Every packet of a local media file, from ffprobe.
pub fn packets(path: &Path) -> Vec<Packet> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=pts_time,size,pos", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            Some(Packet { pts: f.next()?.parse().ok()?, size: f.next()?.parse().ok()?, pos: f.next()?.parse().ok()? })
        })
        .collect()
}

/// The packets with `start <= pts < end`: what a clip's window occupies in the source.
pub fn in_window(packets: &[Packet], start: f64, end: f64) -> impl Iterator<Item = &Packet> {
    packets.iter().filter(move |p| (start..end).contains(&p.pts))
}

/// Bytes of the packets with `start <= pts < end`.
pub fn window_bytes(packets: &[Packet], start: f64, end: f64) -> u64 {
    in_window(packets, start, end).map(|p| p.size).sum()
}

/// Bytes before the first `mdat`/`moof` box: the MP4 header any reader of a window reads first.
pub fn mp4_header_len(path: &Path) -> u64 {
    let data = std::fs::read(path).expect("the MP4 is readable");
    let mut pos = 0usize;
    loop {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        if matches!(&data[pos + 4..pos + 8], b"mdat" | b"moof") {
            return pos as u64;
        }
        pos += size;
    }
}

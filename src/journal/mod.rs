//! The journal: an SQLite database inside OUT that records every clip's state, so a rerun resumes.
//!
//! One writer (the run's event loop) owns the connection. WAL mode keeps readers (`status`) from blocking
//! it, and every state change is its own transaction, so a SIGKILL loses at most the change in flight.

mod merge;
pub mod read;
mod schema;

use crate::plan::{ClipKey, Job};
use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use schema::VERSION as SCHEMA_VERSION;

/// Where kinetics-dl keeps its own files inside OUT.
pub const STATE_DIR: &str = ".kinetics-dl";
pub const FILE_NAME: &str = "journal.sqlite";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Done,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Done => "done",
            State::Failed => "failed",
        }
    }
    /// A `state` cell: `done`, `failed`, anything else pending.
    pub fn parse(s: &str) -> State {
        match s {
            "done" => State::Done,
            "failed" => State::Failed,
            _ => State::Pending,
        }
    }
}

/// A clip as the journal knows it.
#[derive(Debug, Clone)]
pub struct ClipRecord {
    pub id: i64,
    pub key: ClipKey,
    pub label: Option<String>,
    pub split: Option<String>,
    pub rel_path: PathBuf,
    pub state: State,
    pub category: Option<String>,
    pub attempts: u32,
    pub next_attempt_ms: Option<i64>,
}

/// A clip's state as the scheduler reads it, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct ClipState<'r> {
    pub id: i64,
    pub youtube_id: &'r str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub rel_path: &'r str,
    pub state: State,
    pub category: Option<&'r str>,
    pub attempts: u32,
}

/// The plan a journal holds (see [`Journal::known_plan`]): its clips, the annotation rows it was made from,
/// the rows merged into another clip's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownPlan {
    pub clips: u64,
    pub rows: u64,
    pub merged: u64,
}

/// What a finished clip records.
#[derive(Debug, Clone, Default)]
pub struct Done {
    pub bytes_fetched: u64,
    /// Requests the relay sent to the media server (not counting yt-dlp's own: the watch page, the manifest).
    pub media_requests: u64,
    pub size_bytes: u64,
    pub duration_s: f64,
    pub download_s: f64,
    pub encode_s: f64,
    pub whole_video: bool,
    pub format_id: String,
    pub source: String,
    /// CPU by stage, when the clip was made here (not for adopted or mirror clips).
    pub cpu: Option<crate::cpu::StageCpu>,
    /// Which trim made the clip: `exact`, `copy`, `smart`, or `exact (why not smart)`; empty when unknown.
    pub trim: String,
}

/// What a failed attempt records.
#[derive(Debug, Clone)]
pub struct Failed<'a> {
    pub state: State,
    pub category: &'a str,
    pub message: &'a str,
    pub stderr_tail: &'a str,
    pub attempts: u32,
    pub next_attempt_ms: Option<i64>,
    pub bytes_fetched: u64,
}

/// One attempt, for the history (reports draw throughput over time from it).
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub clip_id: i64,
    pub run_id: i64,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub outcome: &'a str,
    pub category: Option<&'a str>,
    pub message: Option<&'a str>,
    pub bytes_fetched: u64,
    pub download_s: f64,
    pub encode_s: f64,
    pub egress: &'a str,
}

/// The latest run: started and finished (unix ms), yt-dlp and ffmpeg versions, and how yt-dlp ran
/// (`ytdlp_mode` of its settings; `None` for a run from before it was recorded).
pub type LastRun = (i64, Option<i64>, Option<String>, Option<String>, Option<String>);

/// Counts for `status` and the exit code.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub total: u64,
    pub done: u64,
    pub pending: u64,
    /// Failed clips by category.
    pub failed: BTreeMap<String, u64>,
    pub bytes_fetched: u64,
    pub bytes_on_disk: u64,
    pub whole_video_fallbacks: u64,
    /// Requests the relay sent to the media server for the done clips.
    pub media_requests: u64,
    /// Done clips that recorded media requests (fetched through the relay), what `media_requests` is per.
    pub media_request_clips: u64,
    /// Media requests per done clip fetched through the relay (0 when none was).
    pub media_requests_per_clip: f64,
    /// Done clips by where they came from: `youtube`, `mirror`, `adopted`.
    pub by_source: BTreeMap<String, u64>,
}

impl Counts {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// One class's clips by state. A clip with several labels (AudioSet, AVA-Kinetics) counts once in each of its
/// classes, so the classes' totals add up to more than the clips.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ClassCount {
    pub total: u64,
    pub done: u64,
    pub failed: u64,
}

impl ClassCount {
    pub fn add(&mut self, state: State) {
        self.total += 1;
        match state {
            State::Done => self.done += 1,
            State::Failed => self.failed += 1,
            State::Pending => {}
        }
    }
}

/// Every class's clips by state, and how many clips have several classes (`status`'s per-class coverage).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassCounts {
    pub by_label: BTreeMap<String, ClassCount>,
    pub multi_label_clips: u64,
}

impl ClassCounts {
    /// Counts a clip in each of its distinct labels (empty ones left out): `first` is the `label` column,
    /// `all` the `labels` column's list when the clip has several (the first among them).
    pub fn add<'a>(&mut self, first: Option<&'a str>, all: &'a [String], state: State) {
        let mut seen: Vec<&str> = Vec::with_capacity(all.len().max(1));
        for label in first.into_iter().chain(all.iter().map(String::as_str)) {
            if label.is_empty() || seen.contains(&label) {
                continue;
            }
            seen.push(label);
            match self.by_label.get_mut(label) {
                Some(c) => c.add(state),
                None => self.by_label.entry(label.to_owned()).or_default().add(state),
            }
        }
        if seen.len() > 1 {
            self.multi_label_clips += 1;
        }
    }
}

/// What `status` shows, from one read of the clips table.
#[derive(Debug, Clone, Default)]
pub struct StatusCounts {
    pub counts: Counts,
    pub cpu: crate::cpu::PerClip,
    pub classes: ClassCounts,
}

pub struct Journal {
    conn: Connection,
}

/// What [`Journal::sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Clips added.
    pub added: usize,
    /// The plan went into an empty journal: its clips are pending, with ids from this one on in plan order.
    pub imported_from: Option<i64>,
}

/// The first import into an empty journal: every job's row, then the key index built once over them
/// (sorting 650,000 keys instead of inserting each into the index where it falls). A key twice is a
/// constraint violation when the index is built.
fn insert_then_index(conn: &Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    // Rows appended at the end of the table need little cache, and the index's sort takes as much memory
    // as the cache may hold: 8 MiB here instead of 32 (the peak of a 650,000-clip import stays under
    // 300 MB), the usual size again after.
    conn.pragma_update(None, "cache_size", -8_192)?;
    // The rows take the default state, which meets the table's CHECK: SQLite would still test it on every
    // row, building a temporary b-tree for its `IN` list each time (about a tenth of a 650,000-row import).
    conn.pragma_update(None, "ignore_check_constraints", true)?;
    let done = insert_rows_then_index(conn, jobs);
    conn.pragma_update(None, "ignore_check_constraints", false)?;
    conn.pragma_update(None, "cache_size", CACHE_KIB)?;
    done
}

fn insert_rows_then_index(conn: &Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    conn.execute_batch("DROP INDEX clips_key")?;
    {
        let mut insert = conn.prepare(
            "INSERT INTO clips (youtube_id, start_ms, end_ms, label, split, rel_path, rows, updated_ms, labels, boxes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let now = now_ms();
        for job in jobs {
            let k = &job.key;
            let (labels, boxes) =
                multi_label_columns(job).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
            insert.execute(params![
                k.youtube_id,
                k.start_ms,
                k.end_ms,
                job.label,
                job.split,
                job.rel_path.to_string_lossy(),
                job.rows,
                now,
                labels,
                boxes
            ])?;
        }
    }
    conn.execute_batch("CREATE UNIQUE INDEX clips_key ON clips (youtube_id, start_ms, end_ms)")
}

/// The journal's page cache, in SQLite's negative-KiB form (see [`Journal::open`]).
const CACHE_KIB: i64 = -32_768;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Journal {
    /// The journal's path inside OUT.
    pub fn path_in(out: &Path) -> PathBuf {
        out.join(STATE_DIR).join(FILE_NAME)
    }

    pub fn open(path: &Path) -> anyhow::Result<Journal> {
        let mut conn =
            Connection::open(path).with_context(|| format!("failed to open the journal {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 32 MiB of page cache (SQLite's default is 2 MiB): new clips added to a journal that has clips go
        // into the key index in random order, and with the default the index spills out of the cache on
        // every few inserts (3-4x slower). The first import builds the index after its rows instead.
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        schema::migrate(&mut conn).with_context(|| format!("failed to migrate the journal {}", path.display()))?;
        Ok(Journal { conn })
    }

    /// Opens an existing journal for reading (`status`): never creates one.
    pub fn open_existing(out: &Path) -> anyhow::Result<Journal> {
        let path = Self::path_in(out);
        if !path.is_file() {
            return Err(read::OpenError::NoJournal(out.display().to_string()).into());
        }
        Self::open(&path)
    }

    /// Pins the folder's static shard (`i/N`, or `None` for all clips) on the first run that plans into it,
    /// and refuses another one later: a folder with shard 0/3's clips must not take shard 1/3's, nor all.
    pub fn pin_shard(&mut self, shard: Option<&str>) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        let pinned: Option<String> =
            tx.query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| r.get(0)).optional()?;
        let fresh: bool =
            tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM clips) AND NOT EXISTS (SELECT 1 FROM runs)", [], |r| {
                r.get(0)
            })?;
        let want = shard.unwrap_or("all");
        let pinned = match pinned {
            Some(p) => p,
            None if fresh => {
                tx.execute("INSERT INTO meta (key, value) VALUES ('shard', ?1)", [want])?;
                tx.commit()?;
                return Ok(());
            }
            // A folder from before shards existed holds all clips.
            None => "all".to_string(),
        };
        if pinned != want {
            let said = |s: &str| if s == "all" { "all clips (no --shard)".to_string() } else { format!("shard {s}") };
            anyhow::bail!(
                "this folder holds {} but this run asks for {}; use another --out for another shard \
                 (kinetics-dl merge joins shard folders)",
                said(&pinned),
                said(want)
            );
        }
        Ok(())
    }

    /// The folder's static shard (`i/N`), if it was made with `--shard`.
    pub fn shard(&self) -> anyhow::Result<Option<String>> {
        let v: Option<String> =
            self.conn.query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| r.get(0)).optional()?;
        Ok(v.filter(|v| v != "all"))
    }

    /// The plan this journal holds, if it was made from inputs and settings with this digest and the journal
    /// holds exactly its clips (see [`Journal::remember_plan`]).
    pub fn known_plan(&self, digest: &str) -> anyhow::Result<Option<KnownPlan>> {
        let value: Option<String> =
            self.conn.query_row("SELECT value FROM meta WHERE key = 'plan'", [], |r| r.get(0)).optional()?;
        let Some(value) = value else { return Ok(None) };
        let mut parts = value.split(' ');
        if parts.next() != Some(digest) {
            return Ok(None);
        }
        let mut num = || parts.next().and_then(|p| p.parse::<u64>().ok());
        let (Some(clips), Some(rows), Some(merged)) = (num(), num(), num()) else { return Ok(None) };
        let count: i64 = self.conn.query_row("SELECT COUNT(*) FROM clips", [], |r| r.get(0))?;
        Ok((count as u64 == clips).then_some(KnownPlan { clips, rows, merged }))
    }

    /// Records that the journal holds exactly the plan made from inputs and settings with this digest, its
    /// clips in plan order: a rerun with the same digest may take the clips from the journal. Any
    /// [`Journal::sync_plan`] forgets it first.
    pub fn remember_plan(&mut self, digest: &str, plan: &KnownPlan) -> anyhow::Result<()> {
        let value = format!("{digest} {} {} {}", plan.clips, plan.rows, plan.merged);
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('plan', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [value],
        )?;
        Ok(())
    }

    /// Adds new jobs and refreshes the labels, split and path of clips not done yet. Returns how many were new.
    ///
    /// Into a journal without clips (the first import of a plan, 650,000 of them for Kinetics-700) the rows
    /// go first and the key index `clips_key` is built after them, all in one transaction, so a kill leaves
    /// the journal as it was before. Jobs with the same key (a plan has none) make that build fail: the
    /// transaction goes back to before it and the rows go in one by one through the index, as into a
    /// journal with clips, the first of a key kept and refreshed by the later ones.
    pub fn sync_plan(&mut self, jobs: &[Job]) -> anyhow::Result<usize> {
        Ok(self.sync(jobs)?.added)
    }

    /// [`Journal::sync_plan`], saying also whether the plan was imported into an empty journal, and so
    /// holds exactly the plan's clips, all pending, under consecutive ids in plan order.
    pub fn sync(&mut self, jobs: &[Job]) -> anyhow::Result<Synced> {
        let mut tx = self.conn.transaction()?;
        tx.execute("DELETE FROM meta WHERE key = 'plan'", [])?;
        let empty: bool = tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM clips)", [], |r| r.get(0))?;
        if empty && !jobs.is_empty() {
            let bulk = tx.savepoint()?;
            match insert_then_index(&bulk, jobs) {
                Ok(()) => {
                    let (first, last): (i64, i64) =
                        bulk.query_row("SELECT min(id), max(id) FROM clips", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    bulk.commit()?;
                    tx.commit()?;
                    let consecutive = usize::try_from(last - first + 1) == Ok(jobs.len());
                    return Ok(Synced { added: jobs.len(), imported_from: consecutive.then_some(first) });
                }
                // Dropped, the savepoint rolls back: no rows, the index as it was.
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    drop(bulk)
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut added = 0;
        {
            // One statement per new row (no existence probe first); a known row is rewritten only when a
            // field it may still take differs, so a rerun of the same plan writes no page.
            let mut insert = tx.prepare(
                "INSERT INTO clips (youtube_id, start_ms, end_ms, label, split, rel_path, rows, updated_ms, labels, boxes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (youtube_id, start_ms, end_ms) DO NOTHING",
            )?;
            let mut update = tx.prepare(
                "UPDATE clips SET label = ?4, split = ?5, rel_path = ?6, rows = ?7, labels = ?8, boxes = ?9
                 WHERE youtube_id = ?1 AND start_ms = ?2 AND end_ms = ?3 AND state != 'done'
                   AND (label IS NOT ?4 OR split IS NOT ?5 OR rel_path IS NOT ?6 OR rows IS NOT ?7
                        OR labels IS NOT ?8 OR boxes IS NOT ?9)",
            )?;
            let now = now_ms();
            for job in jobs {
                let k = &job.key;
                let rel_path = job.rel_path.to_string_lossy();
                let (labels, boxes) = multi_label_columns(job)?;
                let inserted = insert.execute(params![
                    k.youtube_id,
                    k.start_ms,
                    k.end_ms,
                    job.label,
                    job.split,
                    rel_path,
                    job.rows,
                    now,
                    labels,
                    boxes
                ])?;
                if inserted == 0 {
                    update.execute(params![
                        k.youtube_id,
                        k.start_ms,
                        k.end_ms,
                        job.label,
                        job.split,
                        rel_path,
                        job.rows,
                        labels,
                        boxes
                    ])?;
                }
                added += inserted;
            }
        }
        tx.commit()?;
        Ok(Synced { added, imported_from: None })
    }

    /// Calls `f` with every clip's state, in id order, without keeping them: what the scheduler reads to pick
    /// the clips a run works on.
    pub fn for_each_clip_state(&self, mut f: impl FnMut(ClipState<'_>) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT id, youtube_id, start_ms, end_ms, rel_path, state, category, attempts FROM clips ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(ClipState {
                id: r.get(0)?,
                youtube_id: text(r, 1)?,
                start_ms: r.get(2)?,
                end_ms: r.get(3)?,
                rel_path: text(r, 4)?,
                state: State::parse(text(r, 5)?),
                category: r.get_ref(6)?.as_str_or_null()?,
                attempts: r.get(7)?,
            })?;
        }
        Ok(())
    }

    /// The key and path of one clip, by id (the scheduler builds a clip's task only when it starts it).
    pub fn clip_task(&self, id: i64) -> anyhow::Result<(ClipKey, PathBuf)> {
        let mut stmt =
            self.conn.prepare_cached("SELECT youtube_id, start_ms, end_ms, rel_path FROM clips WHERE id = ?1")?;
        Ok(stmt.query_row([id], |r| {
            Ok((
                ClipKey { youtube_id: r.get(0)?, start_ms: r.get(1)?, end_ms: r.get(2)? },
                PathBuf::from(r.get::<_, String>(3)?),
            ))
        })?)
    }

    /// The id of the clip with this key, if the journal has it (a fleet worker adds clips as it claims them).
    pub fn clip_id(&self, key: &ClipKey) -> anyhow::Result<Option<i64>> {
        let sql = "SELECT id FROM clips WHERE youtube_id = ?1 AND start_ms = ?2 AND end_ms = ?3";
        Ok(self.conn.query_row(sql, params![key.youtube_id, key.start_ms, key.end_ms], |r| r.get(0)).optional()?)
    }

    /// Every clip, in insertion (plan) order.
    pub fn clips(&self) -> anyhow::Result<Vec<ClipRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, youtube_id, start_ms, end_ms, label, split, rel_path, state, category, attempts, next_attempt_ms
             FROM clips ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ClipRecord {
                id: r.get(0)?,
                key: ClipKey { youtube_id: r.get(1)?, start_ms: r.get(2)?, end_ms: r.get(3)? },
                label: r.get(4)?,
                split: r.get(5)?,
                rel_path: PathBuf::from(r.get::<_, String>(6)?),
                state: State::parse(&r.get::<_, String>(7)?),
                category: r.get(8)?,
                attempts: r.get(9)?,
                next_attempt_ms: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn begin_run(&mut self, command: &str, settings: &str, ytdlp: &str, ffmpeg: &str) -> anyhow::Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (started_ms, command, settings, ytdlp_version, ffmpeg_version) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_ms(), command, settings, ytdlp, ffmpeg],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(&mut self, run_id: i64, exit_code: i32) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_ms = ?1, exit_code = ?2 WHERE id = ?3",
            params![now_ms(), exit_code, run_id],
        )?;
        Ok(())
    }

    pub fn record_done(&mut self, clip_id: i64, d: &Done) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE clips SET state = 'done', category = NULL, message = NULL, stderr_tail = NULL,
               attempts = attempts + 1, next_attempt_ms = NULL, bytes_fetched = ?1, size_bytes = ?2, duration_s = ?3,
               download_s = ?4, encode_s = ?5, whole_video = ?6, format_id = ?7, source = ?8, updated_ms = ?9,
               media_requests = ?11, extract_cpu_s = ?12, fetch_cpu_s = ?13, encode_cpu_s = ?14, verify_cpu_s = ?15,
               trim = NULLIF(?16, '')
             WHERE id = ?10",
            params![
                d.bytes_fetched as i64,
                d.size_bytes as i64,
                d.duration_s,
                d.download_s,
                d.encode_s,
                d.whole_video,
                d.format_id,
                d.source,
                now_ms(),
                clip_id,
                d.media_requests as i64,
                d.cpu.map(|c| c.extract_s),
                d.cpu.map(|c| c.fetch_s),
                d.cpu.map(|c| c.encode_s),
                d.cpu.map(|c| c.verify_s),
                d.trim
            ],
        )?;
        Ok(())
    }

    pub fn record_failure(&mut self, clip_id: i64, f: &Failed) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE clips SET state = ?1, category = ?2, message = ?3, stderr_tail = ?4, attempts = ?5,
               next_attempt_ms = ?6, bytes_fetched = COALESCE(bytes_fetched, 0) + ?7, updated_ms = ?8
             WHERE id = ?9",
            params![
                f.state.as_str(),
                f.category,
                f.message,
                f.stderr_tail,
                f.attempts,
                f.next_attempt_ms,
                f.bytes_fetched as i64,
                now_ms(),
                clip_id
            ],
        )?;
        Ok(())
    }

    pub fn record_attempt(&mut self, a: &Attempt) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO attempts (clip_id, run_id, started_ms, finished_ms, outcome, category, message,
               bytes_fetched, download_s, encode_s, egress) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                a.clip_id,
                a.run_id,
                a.started_ms,
                a.finished_ms,
                a.outcome,
                a.category,
                a.message,
                a.bytes_fetched as i64,
                a.download_s,
                a.encode_s,
                a.egress
            ],
        )?;
        Ok(())
    }

    /// Puts clips back to pending (a done clip whose file vanished; failures the user asked to retry).
    pub fn reset_to_pending(&mut self, ids: &[i64]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "UPDATE clips SET state = 'pending', next_attempt_ms = NULL, attempts = 0, updated_ms = ?1 WHERE id = ?2",
            )?;
            let now = now_ms();
            for id in ids {
                stmt.execute(params![now, id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn counts(&self) -> anyhow::Result<Counts> {
        Ok(self.scan_counts(false)?.0)
    }

    /// CPU per clip by stage over the done clips that have it (made by a kinetics-dl that measured it).
    pub fn cpu_per_clip(&self) -> anyhow::Result<crate::cpu::PerClip> {
        Ok(crate::cpu::PerClip::of(&self.scan_counts(true)?.1))
    }

    /// [`Journal::counts`], [`Journal::cpu_per_clip`] and every class's clips from one read of the table
    /// (what `status` shows).
    pub fn status_counts(&self) -> anyhow::Result<StatusCounts> {
        let (counts, cpu, classes) = self.scan_counts(true)?;
        Ok(StatusCounts { counts, cpu: crate::cpu::PerClip::of(&cpu), classes })
    }

    /// One pass over the clips table in storage order, summed here: a `GROUP BY` sorts 650,000 rows and a
    /// `WHERE state = 'done'` reads them through the state index, each several times slower than the scan.
    /// `for_status` adds the CPU and the classes.
    fn scan_counts(&self, for_status: bool) -> anyhow::Result<(Counts, Vec<crate::cpu::StageCpu>, ClassCounts)> {
        let mut c = Counts::default();
        let mut cpu = Vec::new();
        let mut classes = ClassCounts::default();
        let mut all_labels: Vec<String> = Vec::new();
        let (mut fetched, mut on_disk, mut whole_video, mut requests) = (0i64, 0i64, 0i64, 0i64);
        let mut stmt = self.conn.prepare(
            "SELECT state, category, bytes_fetched, size_bytes, whole_video, media_requests,
                    CASE WHEN state != 'done' THEN NULL
                         WHEN source LIKE 'mirror:%' THEN 'mirror' ELSE COALESCE(source, 'unknown') END,
                    extract_cpu_s, fetch_cpu_s, encode_cpu_s, verify_cpu_s, label, labels
             FROM clips NOT INDEXED",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let state = State::parse(r.get_ref(0)?.as_str()?);
            c.total += 1;
            if for_status {
                all_labels.clear();
                if let Some(text) = r.get_ref(12)?.as_str_or_null()? {
                    all_labels =
                        serde_json::from_str(text).context("the journal's labels column is not a JSON list")?;
                }
                classes.add(r.get_ref(11)?.as_str_or_null()?, &all_labels, state);
            }
            fetched += r.get::<_, Option<i64>>(2)?.unwrap_or(0);
            whole_video += r.get::<_, Option<i64>>(4)?.unwrap_or(0);
            let media_requests = r.get::<_, Option<i64>>(5)?;
            requests += media_requests.unwrap_or(0);
            match state {
                State::Done => {
                    c.done += 1;
                    on_disk += r.get::<_, Option<i64>>(3)?.unwrap_or(0);
                    if media_requests.is_some_and(|n| n > 0) {
                        c.media_request_clips += 1;
                    }
                    let source = r.get_ref(6)?.as_str()?;
                    match c.by_source.get_mut(source) {
                        Some(n) => *n += 1,
                        None => {
                            c.by_source.insert(source.to_owned(), 1);
                        }
                    }
                    if for_status {
                        cpu.extend(stage_cpu(r, 7)?);
                    }
                }
                State::Pending => c.pending += 1,
                State::Failed => {
                    let category = r.get_ref(1)?.as_str_or_null()?.unwrap_or("other");
                    match c.failed.get_mut(category) {
                        Some(n) => *n += 1,
                        None => {
                            c.failed.insert(category.to_owned(), 1);
                        }
                    }
                }
            }
        }
        c.bytes_fetched = fetched.max(0) as u64;
        c.bytes_on_disk = on_disk.max(0) as u64;
        c.whole_video_fallbacks = whole_video.max(0) as u64;
        c.media_requests = requests.max(0) as u64;
        if c.media_request_clips > 0 {
            c.media_requests_per_clip = c.media_requests as f64 / c.media_request_clips as f64;
        }
        Ok((c, cpu, classes))
    }

    /// The most recent run's tool versions and yt-dlp mode, for `status`.
    pub fn last_run(&self) -> anyhow::Result<Option<LastRun>> {
        let sql = "SELECT started_ms, finished_ms, ytdlp_version, ffmpeg_version, settings FROM runs ORDER BY id DESC LIMIT 1";
        let row =
            self.conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, String>(4)?)));
        Ok(row.optional()?.map(|(started, finished, ytdlp, ffmpeg, settings)| {
            (started, finished, ytdlp, ffmpeg, read::ytdlp_mode(&settings))
        }))
    }

    /// The trim (`exact`, `copy`, `smart`) the most recent run that recorded one cut its clips with.
    pub fn last_trim(&self) -> anyhow::Result<Option<String>> {
        let sql = "SELECT json_extract(settings, '$.trim') FROM runs \
                   WHERE json_valid(settings) AND json_extract(settings, '$.trim') IS NOT NULL ORDER BY id DESC LIMIT 1";
        Ok(self.conn.query_row(sql, [], |r| r.get::<_, String>(0)).optional()?)
    }

    /// A throttle signal: `cooloff` is the cool-off it started (`None` when the breaker was already open, or
    /// with `--no-breaker`), `wasted` the job's requests that were answered with a throttle signal.
    pub fn record_throttle(
        &mut self,
        run_id: i64,
        egress: &str,
        category: &str,
        cooloff: Option<std::time::Duration>,
        wasted: u64,
    ) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO throttle_events (run_id, egress, at_ms, category, cooloff_s, wasted) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run_id, egress, now_ms(), category, cooloff.map(|d| d.as_secs_f64()), wasted as i64],
        )?;
        Ok(())
    }

    /// An egress's outage began (its breaker opened on `egress_down`): the outage's id.
    pub fn outage_began(&mut self, run_id: i64, egress: &str) -> anyhow::Result<i64> {
        self.conn.execute(
            "INSERT INTO outages (run_id, egress, started_ms) VALUES (?1, ?2, ?3)",
            params![run_id, egress, now_ms()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// `n` more clips went back to pending, uncharged, because of outage `id`.
    pub fn outage_gave_back(&mut self, id: i64, n: u64) -> anyhow::Result<()> {
        self.conn.execute("UPDATE outages SET given_back = given_back + ?1 WHERE id = ?2", params![n as i64, id])?;
        Ok(())
    }

    /// Outage `id` ended: a probe through its egress got through.
    pub fn outage_ended(&mut self, id: i64) -> anyhow::Result<()> {
        self.conn.execute("UPDATE outages SET ended_ms = ?1 WHERE id = ?2", params![now_ms(), id])?;
        Ok(())
    }

    /// Every outage, oldest first.
    pub fn outages(&self) -> anyhow::Result<Vec<read::OutageRow>> {
        Ok(read::outages(&self.conn)?.unwrap_or_default())
    }

    /// Saves an egress's breaker: open until `open_until_ms` (unix ms), or closed (`None`).
    pub fn save_egress(&mut self, egress: &str, open_until_ms: Option<i64>, cooloff_ms: i64) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO egress_state (egress, open_until_ms, cooloff_ms, updated_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (egress) DO UPDATE SET open_until_ms = excluded.open_until_ms,
               cooloff_ms = excluded.cooloff_ms, updated_ms = excluded.updated_ms",
            params![egress, open_until_ms, cooloff_ms, now_ms()],
        )?;
        Ok(())
    }

    /// Saves the request rate an egress learned (requests a minute). An egress without a breaker on record
    /// (a fleet worker's) gets a closed one.
    pub fn save_egress_rate(&mut self, egress: &str, per_min: f64) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO egress_state (egress, cooloff_ms, updated_ms, rate_per_min) VALUES (?1, 0, ?2, ?3)
             ON CONFLICT (egress) DO UPDATE SET rate_per_min = excluded.rate_per_min, updated_ms = excluded.updated_ms",
            params![egress, now_ms(), per_min],
        )?;
        Ok(())
    }

    /// Each egress's learned request rate (requests a minute), where one was learned, by egress.
    pub fn egress_rates(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT egress, rate_per_min FROM egress_state WHERE rate_per_min IS NOT NULL ORDER BY egress")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every egress's saved breaker: (egress, open until unix ms, cool-off ms).
    pub fn egress_states(&self) -> anyhow::Result<Vec<(String, Option<i64>, i64)>> {
        let mut stmt =
            self.conn.prepare("SELECT egress, open_until_ms, cooloff_ms FROM egress_state ORDER BY egress")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Upstream refused DASH through `egress` past its first bytes in run `run_id`: later runs start its clips
    /// from itag 18 for [`read::DASH_REFUSAL_HOLDS_MS`] from now (a refusal met again after it lapsed holds
    /// from the new one).
    pub fn dash_refused_on(&mut self, egress: &str, run_id: i64) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO dash_refused (egress, since_ms, run_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (egress) DO UPDATE SET since_ms = excluded.since_ms, run_id = excluded.run_id",
            params![egress, now_ms(), run_id],
        )?;
        Ok(())
    }

    /// The egresses refused DASH, with when that was last seen and when it lapses, by egress.
    pub fn dash_refused(&self) -> anyhow::Result<Vec<read::DashRefused>> {
        Ok(read::dash_refused(&self.conn)?)
    }

    /// Signals per egress: (egress, throttle signals, requests wasted in bans, outage signals).
    pub fn throttle_counts(&self) -> anyhow::Result<Vec<(String, i64, i64, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT egress, SUM(category <> 'egress_down'), SUM(wasted), SUM(category = 'egress_down')
             FROM throttle_events GROUP BY egress ORDER BY egress",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every clip as the read side sees it (verify's view of the journal it holds open).
    pub fn clip_rows(&self) -> rusqlite::Result<Vec<read::ClipRow>> {
        read::clips(&self.conn)
    }

    /// A done clip's recorded copy: (size in bytes, sha256), when both were recorded.
    pub fn done_copy(&self, clip_id: i64) -> anyhow::Result<Option<(u64, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT size_bytes, sha256 FROM clips
                  WHERE id = ?1 AND state = 'done' AND size_bytes IS NOT NULL AND sha256 IS NOT NULL",
                [clip_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    /// A verified clip's checksum, recorded once.
    pub fn record_sha256(&mut self, clip_id: i64, sha256: Option<&str>) -> anyhow::Result<()> {
        self.conn.execute("UPDATE clips SET sha256 = ?1 WHERE id = ?2", params![sha256, clip_id])?;
        Ok(())
    }

    /// A done clip that failed re-verification goes back to pending with its attempts cleared.
    pub fn return_to_pending(&mut self, clip_id: i64, message: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE clips SET state = 'pending', category = NULL, message = ?1, attempts = 0, next_attempt_ms = NULL,
               sha256 = NULL, updated_ms = ?2 WHERE id = ?3",
            params![message, now_ms(), clip_id],
        )?;
        Ok(())
    }

    /// A placed clip re-encoded to the target: its new size and the encode's time.
    pub fn record_reencode(&mut self, clip_id: i64, size_bytes: u64, encode_s: f64) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE clips SET size_bytes = ?1, encode_s = ?2 WHERE id = ?3",
            params![size_bytes as i64, encode_s, clip_id],
        )?;
        Ok(())
    }

    /// The done clips as `stats.csv` lists them, in clip order.
    pub fn stats_rows(&self) -> anyhow::Result<Vec<StatsRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT youtube_id, COALESCE(label, ''), COALESCE(split, ''), start_ms, end_ms, download_s, encode_s,
                    bytes_fetched, size_bytes, duration_s, whole_video, COALESCE(format_id, ''), COALESCE(source, ''), rel_path,
                    COALESCE(media_requests, 0), extract_cpu_s, fetch_cpu_s, encode_cpu_s, verify_cpu_s
             FROM clips WHERE state = 'done' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StatsRow {
                youtube_id: r.get(0)?,
                label: r.get(1)?,
                split: r.get(2)?,
                start_ms: r.get(3)?,
                end_ms: r.get(4)?,
                download_s: r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
                encode_s: r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
                bytes_fetched: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
                size_bytes: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
                duration_s: r.get::<_, Option<f64>>(9)?.unwrap_or(0.0),
                whole_video: r.get(10)?,
                format_id: r.get(11)?,
                source: r.get(12)?,
                rel_path: r.get(13)?,
                media_requests: r.get(14)?,
                cpu: stage_cpu(r, 15)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The failed clips as `failed.csv` lists them, in clip order.
    pub fn failed_rows(&self) -> anyhow::Result<Vec<FailedRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT youtube_id, COALESCE(label, ''), COALESCE(split, ''), start_ms, end_ms, COALESCE(category, 'other'),
                    attempts, COALESCE(message, '')
             FROM clips WHERE state = 'failed' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FailedRow {
                youtube_id: r.get(0)?,
                label: r.get(1)?,
                split: r.get(2)?,
                start_ms: r.get(3)?,
                end_ms: r.get(4)?,
                category: r.get(5)?,
                attempts: r.get(6)?,
                message: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A text column of a row being read, borrowed.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> anyhow::Result<&'r str> {
    Ok(r.get_ref(i)?.as_str()?)
}

/// Four stage CPU columns from `first` on, or `None` when the clip has none recorded.
fn stage_cpu(r: &rusqlite::Row, first: usize) -> rusqlite::Result<Option<crate::cpu::StageCpu>> {
    let extract: Option<f64> = r.get(first)?;
    Ok(extract.map(|extract_s| crate::cpu::StageCpu {
        extract_s,
        fetch_s: r.get::<_, Option<f64>>(first + 1).ok().flatten().unwrap_or(0.0),
        encode_s: r.get::<_, Option<f64>>(first + 2).ok().flatten().unwrap_or(0.0),
        verify_s: r.get::<_, Option<f64>>(first + 3).ok().flatten().unwrap_or(0.0),
    }))
}

/// A done clip, as `stats.csv` lists it (missing numbers are 0, missing text empty).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    pub youtube_id: String,
    pub label: String,
    pub split: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub download_s: f64,
    pub encode_s: f64,
    pub bytes_fetched: i64,
    pub size_bytes: i64,
    pub duration_s: f64,
    pub whole_video: i64,
    pub format_id: String,
    pub source: String,
    pub rel_path: String,
    pub media_requests: i64,
    pub cpu: Option<crate::cpu::StageCpu>,
}

/// A failed clip, as `failed.csv` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRow {
    pub youtube_id: String,
    pub label: String,
    pub split: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub category: String,
    pub attempts: i64,
    pub message: String,
}

#[cfg(test)]
mod tests;

/// A job's `labels` and `boxes` columns: JSON arrays, NULL for a clip with one label and no boxes.
fn multi_label_columns(job: &Job) -> anyhow::Result<(Option<String>, Option<String>)> {
    Ok(job.multi_label_columns()?)
}

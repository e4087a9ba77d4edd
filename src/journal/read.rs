//! Read-only access to the journal for the commands that only look at it: report, export, manifest, diff,
//! verify. The SQL stays here: callers get rows, never a connection.
//!
//! These commands may run while a download is writing (WAL lets readers and one writer share the file), so
//! they open the database read-only and never migrate it; they read columns by name so that a later
//! migration adding columns does not break them.

use rusqlite::{Connection, OpenFlags, Row};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Why the journal could not be opened; `NoJournal` is a usage error (wrong folder, nothing downloaded).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no journal in {0}: run `kinetics-dl download --out {0}` first")]
    NoJournal(String),
    #[error("failed to open the journal {path}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// The journal's path inside OUT.
pub fn journal_path(out: &Path) -> PathBuf {
    super::Journal::path_in(out)
}

/// OUT's journal opened read-only (never created, never migrated).
pub struct Reader {
    conn: Connection,
}

impl Reader {
    pub fn open(out: &Path) -> Result<Reader, OpenError> {
        Ok(Reader { conn: open_with(out, OpenFlags::SQLITE_OPEN_READ_ONLY)? })
    }

    /// Every clip, in plan order.
    pub fn clips(&self) -> rusqlite::Result<Vec<ClipRow>> {
        clips(&self.conn)
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> rusqlite::Result<Vec<RunRow>> {
        runs(&self.conn)
    }

    /// Every attempt, in the order they finished.
    pub fn attempts(&self) -> rusqlite::Result<Vec<AttemptRow>> {
        attempts(&self.conn)
    }

    /// The run each done clip was finished in (its last successful attempt); adopted clips have none.
    pub fn done_run_by_clip(&self) -> rusqlite::Result<std::collections::HashMap<i64, i64>> {
        done_run_by_clip(&self.conn)
    }

    /// The throttle events, or `None` when this journal has no `throttle_events` table.
    pub fn throttle_events(&self) -> rusqlite::Result<Option<Vec<ThrottleEvent>>> {
        throttle_events(&self.conn)
    }

    /// The outages, or `None` when this journal predates them.
    pub fn outages(&self) -> rusqlite::Result<Option<Vec<OutageRow>>> {
        outages(&self.conn)
    }

    /// Every column of the `clips` table for the done clips, as text (NULL is empty), in plan order.
    pub fn done_clips_table(&self) -> anyhow::Result<ClipsTable> {
        use anyhow::Context;
        let mut stmt = self.conn.prepare("SELECT * FROM clips WHERE state = 'done' ORDER BY id")?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let id_col = columns.iter().position(|c| c == "id").context("the clips table has no id column")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let record: Vec<String> = (0..columns.len()).map(|i| cell(r.get_ref(i))).collect::<anyhow::Result<_>>()?;
            out.push((r.get::<_, i64>(id_col)?, record));
        }
        Ok(ClipsTable { columns, rows: out })
    }
}

/// The `clips` table as text, whatever columns this journal's version has.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipsTable {
    pub columns: Vec<String>,
    /// (clip id, one cell per column).
    pub rows: Vec<(i64, Vec<String>)>,
}

fn cell(v: rusqlite::Result<rusqlite::types::ValueRef>) -> anyhow::Result<String> {
    use rusqlite::types::ValueRef;
    Ok(match v? {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    })
}

fn open_with(out: &Path, flags: OpenFlags) -> Result<Connection, OpenError> {
    let path = journal_path(out);
    if !path.is_file() {
        return Err(OpenError::NoJournal(out.display().to_string()));
    }
    let sqlite = |source| OpenError::Sqlite { path: path.clone(), source };
    let conn = Connection::open_with_flags(&path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(sqlite)?;
    // A download commits often; wait for its short transactions instead of failing.
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite)?;
    Ok(conn)
}

/// One row of the `clips` table, with the columns reports and exports use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClipRow {
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
    pub message: Option<String>,
    pub attempts: i64,
    pub bytes_fetched: Option<i64>,
    pub size_bytes: Option<i64>,
    pub duration_s: Option<f64>,
    pub download_s: Option<f64>,
    pub encode_s: Option<f64>,
    pub whole_video: bool,
    pub format_id: Option<String>,
    pub source: Option<String>,
    pub sha256: Option<String>,
    /// Requests the relay sent to the media server for the done clip (journal version 4 on).
    pub media_requests: Option<i64>,
}

impl ClipRow {
    pub fn is_done(&self) -> bool {
        self.state == "done"
    }

    /// The split this clip belongs to: the journal's, else the first folder of its path (`test/x.mp4`).
    pub fn split_name(&self) -> String {
        match &self.split {
            Some(s) if !s.is_empty() => s.clone(),
            _ => self.rel_path.split('/').next().unwrap_or("").to_string(),
        }
    }

    /// The file name without `.mp4`: the clip's key in WebDataset shards.
    pub fn stem(&self) -> &str {
        let name = self.rel_path.rsplit('/').next().unwrap_or(&self.rel_path);
        name.split('.').next().unwrap_or(name)
    }

    fn from_row(r: &Row) -> rusqlite::Result<ClipRow> {
        Ok(ClipRow {
            id: r.get("id")?,
            youtube_id: r.get("youtube_id")?,
            start_ms: r.get("start_ms")?,
            end_ms: r.get("end_ms")?,
            label: r.get("label")?,
            split: r.get("split")?,
            rel_path: r.get("rel_path")?,
            rows: r.get("rows")?,
            state: r.get("state")?,
            category: r.get("category")?,
            message: r.get("message")?,
            attempts: r.get("attempts")?,
            bytes_fetched: r.get("bytes_fetched")?,
            media_requests: r.get("media_requests")?,
            size_bytes: r.get("size_bytes")?,
            duration_s: r.get("duration_s")?,
            download_s: r.get("download_s")?,
            encode_s: r.get("encode_s")?,
            whole_video: r.get::<_, Option<i64>>("whole_video")?.unwrap_or(0) != 0,
            format_id: r.get("format_id")?,
            source: r.get("source")?,
            sha256: r.get("sha256")?,
        })
    }
}

/// Every clip, in plan order.
pub(super) fn clips(conn: &Connection) -> rusqlite::Result<Vec<ClipRow>> {
    let mut stmt = conn.prepare("SELECT * FROM clips ORDER BY id")?;
    let rows = stmt.query_map([], ClipRow::from_row)?;
    rows.collect()
}

/// One run of kinetics-dl: when, which command, with which settings and tool versions.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RunRow {
    pub id: i64,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub command: String,
    /// The run's settings as recorded (a JSON object; kept as text when it does not parse).
    pub settings: serde_json::Value,
    pub ytdlp_version: Option<String>,
    pub ffmpeg_version: Option<String>,
    pub exit_code: Option<i64>,
}

/// Every run, oldest first.
pub(super) fn runs(conn: &Connection) -> rusqlite::Result<Vec<RunRow>> {
    let mut stmt = conn.prepare("SELECT * FROM runs ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        let text: String = r.get("settings")?;
        Ok(RunRow {
            id: r.get("id")?,
            started_ms: r.get("started_ms")?,
            finished_ms: r.get("finished_ms")?,
            command: r.get("command")?,
            settings: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            ytdlp_version: r.get("ytdlp_version")?,
            ffmpeg_version: r.get("ffmpeg_version")?,
            exit_code: r.get("exit_code")?,
        })
    })?;
    rows.collect()
}

/// One attempt at a clip, as the throughput chart needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub run_id: i64,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub outcome: String,
}

/// Every attempt, in the order they finished.
pub(super) fn attempts(conn: &Connection) -> rusqlite::Result<Vec<AttemptRow>> {
    let mut stmt =
        conn.prepare("SELECT run_id, started_ms, finished_ms, outcome FROM attempts ORDER BY finished_ms, id")?;
    let rows = stmt.query_map([], |r| {
        Ok(AttemptRow { run_id: r.get(0)?, started_ms: r.get(1)?, finished_ms: r.get(2)?, outcome: r.get(3)? })
    })?;
    rows.collect()
}

/// The run each done clip was finished in (its last successful attempt); adopted clips have none.
pub(super) fn done_run_by_clip(conn: &Connection) -> rusqlite::Result<std::collections::HashMap<i64, i64>> {
    let mut stmt = conn.prepare("SELECT clip_id, MAX(run_id) FROM attempts WHERE outcome = 'done' GROUP BY clip_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// An egress being cooled down after a throttle signal (a table later versions of the journal add).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThrottleEvent {
    pub at_ms: i64,
    pub egress: Option<String>,
    pub category: Option<String>,
    /// The cool-off the event started; `None` when the egress was already cooling off.
    pub cooloff_s: Option<f64>,
}

/// The throttle events, or `None` when this journal has no `throttle_events` table.
pub(super) fn throttle_events(conn: &Connection) -> rusqlite::Result<Option<Vec<ThrottleEvent>>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'throttle_events')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let mut stmt = conn.prepare("SELECT * FROM throttle_events ORDER BY at_ms")?;
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let has = |n: &str| names.iter().any(|c| c == n);
    // Columns read by name and only when present, so an older or newer shape of the table still reads.
    let cooloff = ["cooloff_s", "cooldown_s"].into_iter().find(|c| has(c));
    let (egress, category) = (has("egress"), has("category"));
    let rows = stmt.query_map([], |r| {
        Ok(ThrottleEvent {
            at_ms: r.get("at_ms")?,
            egress: if egress { r.get("egress")? } else { None },
            category: if category { r.get("category")? } else { None },
            cooloff_s: match cooloff {
                Some(column) => r.get(column)?,
                None => None,
            },
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
}

/// An egress that reached nothing, from its breaker opening to the probe that got through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutageRow {
    pub run_id: Option<i64>,
    pub egress: String,
    pub started_ms: i64,
    /// `None`: still down when its run stopped.
    pub ended_ms: Option<i64>,
    /// Clips given back to pending, uncharged, while it lasted.
    pub given_back: i64,
    /// When its run ended (for an outage still on when the run stopped).
    pub run_finished_ms: Option<i64>,
}

impl OutageRow {
    /// When it ended, or its run did while it was still on; `None` while that run goes on.
    pub fn until_ms(&self) -> Option<i64> {
        self.ended_ms.or(self.run_finished_ms)
    }

    /// How long the egress was down, in ms (until `now_ms` for an outage of a run still going).
    pub fn down_ms(&self, now_ms: i64) -> i64 {
        (self.until_ms().unwrap_or(now_ms) - self.started_ms).max(0)
    }
}

/// The outages, oldest first, or `None` when this journal has no `outages` table.
pub(super) fn outages(conn: &Connection) -> rusqlite::Result<Option<Vec<OutageRow>>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outages')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let mut stmt = conn.prepare(
        "SELECT o.run_id, o.egress, o.started_ms, o.ended_ms, o.given_back, r.finished_ms
           FROM outages o LEFT JOIN runs r ON r.id = o.run_id ORDER BY o.started_ms, o.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(OutageRow {
            run_id: r.get(0)?,
            egress: r.get(1)?,
            started_ms: r.get(2)?,
            ended_ms: r.get(3)?,
            given_back: r.get(4)?,
            run_finished_ms: r.get(5)?,
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
}

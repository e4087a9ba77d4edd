//! Read-only access to the journal for the commands that only look at it: report, export, manifest, diff,
//! verify. The SQL stays here: callers get rows, never a connection.
//!
//! These commands may run while a download is writing (WAL lets readers and one writer share the file), so
//! they open the database read-only and never migrate it; they read columns by name so that a later
//! migration adding columns does not break them.

use crate::annotations::PersonBox;
use rusqlite::{Connection, OpenFlags, Row};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

    /// Every clip, in plan order, one at a time (`report` sums them; 650,000 need not fit in memory).
    pub fn each_clip(&self, mut f: impl FnMut(ClipRow) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare("SELECT * FROM clips ORDER BY id")?;
        let cols = ClipColumns::of(&stmt)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(ClipRow::from_row(r, &cols)?)?;
        }
        Ok(())
    }

    /// Every attempt, in the order they were recorded (not sorted: no sort of 650,000 rows), one at a time.
    pub fn each_attempt(&self, mut f: impl FnMut(AttemptRow) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut stmt =
            self.conn.prepare("SELECT run_id, started_ms, finished_ms, outcome FROM attempts ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(AttemptRow { run_id: r.get(0)?, started_ms: r.get(1)?, finished_ms: r.get(2)?, outcome: r.get(3)? })?;
        }
        Ok(())
    }

    /// Every clip's id, in key order (youtube_id, start, end), read from the journal's unique index alone.
    pub fn ids_by_key(&self) -> rusqlite::Result<Vec<i64>> {
        let mut stmt = self.conn.prepare("SELECT id FROM clips ORDER BY youtube_id, start_ms, end_ms")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        ids.collect()
    }

    /// Holds one view of the journal for the reads that follow, until the reader is dropped: a download
    /// writing meanwhile is not seen half-way.
    pub fn snapshot(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN DEFERRED")
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

    /// The request rates egresses learned from bans (none in a journal that predates the record).
    pub fn learned_rates(&self) -> rusqlite::Result<Vec<LearnedRate>> {
        learned_rates(&self.conn)
    }

    /// The egresses refused DASH (none in a journal that predates the record).
    pub fn dash_refused(&self) -> rusqlite::Result<Vec<DashRefused>> {
        dash_refused(&self.conn)
    }

    /// The done clips, in plan order, one at a time (what exports list; 650,000 of them need not fit in memory
    /// with every column).
    pub fn each_done_clip(&self, mut f: impl FnMut(DoneClip) -> anyhow::Result<()>) -> anyhow::Result<()> {
        // `labels` and `boxes` arrived with journal version 9.
        let multi = if has_column(&self.conn, "labels")? { "labels, boxes" } else { "NULL, NULL" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, youtube_id, start_ms, end_ms, label, split, rel_path, source, {multi} FROM clips
             WHERE state = 'done' ORDER BY id"
        ))?;
        let mut rows = stmt.query([])?;
        // Labels, splits and sources repeat over the clips: one shared copy of each text.
        let mut texts = Interned::default();
        while let Some(r) = rows.next()? {
            let (extra_labels, boxes) = multi_label(r.get(8)?, r.get(9)?)?;
            let more =
                (!extra_labels.is_empty() || !boxes.is_empty()).then(|| Box::new(MoreLabels { extra_labels, boxes }));
            f(DoneClip {
                id: r.get(0)?,
                youtube_id: r.get(1)?,
                start_ms: r.get(2)?,
                end_ms: r.get(3)?,
                label: texts.get(r.get_ref(4)?.as_str_or_null()?),
                more,
                split: texts.get(r.get_ref(5)?.as_str_or_null()?),
                rel_path: r.get(6)?,
                source: texts.get(r.get_ref(7)?.as_str_or_null()?),
            })?;
        }
        Ok(())
    }

    /// Every label of the journal's clips (done or not; every label of a clip with several), sorted
    /// bytewise, each once; empty ones left out.
    pub fn labels(&self) -> anyhow::Result<Vec<String>> {
        // One scan, each text kept once as it is met: SQL's DISTINCT and ORDER BY built two temporary
        // b-trees over 650,000 rows, and a second scan read the multi-label lists.
        let lists = if has_column(&self.conn, "labels")? { "labels" } else { "NULL" };
        let mut stmt = self.conn.prepare(&format!("SELECT label, {lists} FROM clips"))?;
        let mut rows = stmt.query([])?;
        let (mut labels, mut seen_lists) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        while let Some(r) = rows.next()? {
            if let Some(label) = r.get_ref(0)?.as_str_or_null()? {
                if !label.is_empty() && !labels.contains(label) {
                    labels.insert(label.to_owned());
                }
            }
            if let Some(list) = r.get_ref(1)?.as_str_or_null()? {
                if !seen_lists.contains(list) {
                    seen_lists.insert(list.to_owned());
                    let (extra, _) = multi_label(Some(list.to_owned()), None)?;
                    labels.extend(extra.into_iter().filter(|l| !l.is_empty()));
                }
            }
        }
        let mut labels: Vec<String> = labels.into_iter().collect();
        labels.sort_unstable();
        Ok(labels)
    }

    /// Every column of the `clips` table for the done clips, as text (NULL is empty), in plan order, one row at
    /// a time: `f` gets the column names first, then each clip's id and cells.
    pub fn each_done_clip_record(&self, mut f: impl FnMut(Record<'_>) -> anyhow::Result<()>) -> anyhow::Result<()> {
        use anyhow::Context;
        let mut stmt = self.conn.prepare("SELECT * FROM clips WHERE state = 'done' ORDER BY id")?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let id_col = columns.iter().position(|c| c == "id").context("the clips table has no id column")?;
        f(Record::Header(&columns))?;
        let mut cells = vec![String::new(); columns.len()];
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            for (i, cell) in cells.iter_mut().enumerate() {
                cell_into(r.get_ref(i), cell)?;
            }
            f(Record::Clip(r.get::<_, i64>(id_col)?, &cells))?;
        }
        Ok(())
    }
}

/// What [`Reader::each_done_clip_record`] hands on: the column names, then each clip's id and cells.
pub enum Record<'a> {
    Header(&'a [String]),
    Clip(i64, &'a [String]),
}

/// A cell as text (NULL is empty), into a reused buffer.
fn cell_into(v: rusqlite::Result<rusqlite::types::ValueRef>, out: &mut String) -> anyhow::Result<()> {
    use rusqlite::types::ValueRef;
    use std::fmt::Write;
    out.clear();
    match v? {
        ValueRef::Null => {}
        ValueRef::Integer(i) => write!(out, "{i}")?,
        ValueRef::Real(f) => write!(out, "{f}")?,
        ValueRef::Text(t) | ValueRef::Blob(t) => out.push_str(&String::from_utf8_lossy(t)),
    }
    Ok(())
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
    /// The other labels of a clip with several (journal version 9 on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_labels: Vec<String>,
    /// AVA-Kinetics' person boxes (journal version 9 on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<PersonBox>,
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
    /// CPU seconds by stage of the done clip (journal version 5 on; none for adopted and mirror clips).
    pub extract_cpu_s: Option<f64>,
    pub fetch_cpu_s: Option<f64>,
    pub encode_cpu_s: Option<f64>,
    pub verify_cpu_s: Option<f64>,
}

/// A done clip, with the columns exports use.
///
/// Exports hold every done clip at once (650,000 for Kinetics-700), so a clip is kept small: its label,
/// split and source are shared texts (one copy of each over all clips), and what only AudioSet's and
/// AVA-Kinetics' clips have is behind a pointer that is empty for the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DoneClip {
    pub id: i64,
    pub youtube_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The clip's label, the first of them when it has several.
    pub label: Option<Arc<str>>,
    /// The other labels and the person boxes, for a clip that has any.
    pub more: Option<Box<MoreLabels>>,
    pub split: Option<Arc<str>>,
    pub rel_path: String,
    pub source: Option<Arc<str>>,
}

/// What a clip of AudioSet or AVA-Kinetics has beyond its first label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoreLabels {
    /// The other labels of a clip with several.
    pub extra_labels: Vec<String>,
    /// AVA-Kinetics' person boxes.
    pub boxes: Vec<PersonBox>,
}

/// One shared copy of each text read (see [`DoneClip`]).
#[derive(Default)]
struct Interned(std::collections::HashSet<Arc<str>>);

impl Interned {
    fn get(&mut self, text: Option<&str>) -> Option<Arc<str>> {
        let text = text?;
        if let Some(shared) = self.0.get(text) {
            return Some(shared.clone());
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(shared.clone());
        Some(shared)
    }
}

impl DoneClip {
    /// The other labels of a clip with several (AudioSet, AVA-Kinetics).
    pub fn extra_labels(&self) -> &[String] {
        self.more.as_ref().map_or(&[], |m| &m.extra_labels)
    }

    /// AVA-Kinetics' person boxes.
    pub fn boxes(&self) -> &[PersonBox] {
        self.more.as_ref().map_or(&[], |m| &m.boxes)
    }

    /// Every label of the clip, the first one first.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.label.as_deref().into_iter().chain(self.extra_labels().iter().map(String::as_str))
    }

    /// Whether the clip has more than one label.
    pub fn is_multi_label(&self) -> bool {
        !self.extra_labels().is_empty()
    }

    /// The split this clip belongs to: the journal's, else the first folder of its path (`test/x.mp4`).
    pub fn split_name(&self) -> String {
        split_name(self.split.as_deref(), &self.rel_path)
    }

    /// The file name without `.mp4`: the clip's key in WebDataset shards.
    pub fn stem(&self) -> &str {
        stem(&self.rel_path)
    }
}

fn split_name(split: Option<&str>, rel_path: &str) -> String {
    match split {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => rel_path.split('/').next().unwrap_or("").to_string(),
    }
}

fn stem(rel_path: &str) -> &str {
    let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
    name.split('.').next().unwrap_or(name)
}

impl ClipRow {
    /// The clip's CPU by stage, when it was measured.
    pub fn stage_cpu(&self) -> Option<crate::cpu::StageCpu> {
        Some(crate::cpu::StageCpu {
            extract_s: self.extract_cpu_s?,
            fetch_s: self.fetch_cpu_s.unwrap_or(0.0),
            encode_s: self.encode_cpu_s.unwrap_or(0.0),
            verify_s: self.verify_cpu_s.unwrap_or(0.0),
        })
    }

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

    fn from_row(r: &Row, c: &ClipColumns) -> rusqlite::Result<ClipRow> {
        let text = |col: Option<usize>| -> rusqlite::Result<Option<String>> {
            col.map_or(Ok(None), |col| r.get::<_, Option<String>>(col))
        };
        let (extra_labels, boxes) = multi_label(text(c.labels)?, text(c.boxes)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(c.labels.unwrap_or(0), rusqlite::types::Type::Text, e.into())
        })?;
        Ok(ClipRow {
            extra_labels,
            boxes,
            id: r.get(c.id)?,
            youtube_id: r.get(c.youtube_id)?,
            start_ms: r.get(c.start_ms)?,
            end_ms: r.get(c.end_ms)?,
            label: r.get(c.label)?,
            split: r.get(c.split)?,
            rel_path: r.get(c.rel_path)?,
            rows: r.get(c.rows)?,
            state: r.get(c.state)?,
            category: r.get(c.category)?,
            message: r.get(c.message)?,
            attempts: r.get(c.attempts)?,
            bytes_fetched: r.get(c.bytes_fetched)?,
            media_requests: r.get(c.media_requests)?,
            size_bytes: r.get(c.size_bytes)?,
            duration_s: r.get(c.duration_s)?,
            download_s: r.get(c.download_s)?,
            encode_s: r.get(c.encode_s)?,
            whole_video: r.get::<_, Option<i64>>(c.whole_video)?.unwrap_or(0) != 0,
            format_id: r.get(c.format_id)?,
            source: r.get(c.source)?,
            sha256: r.get(c.sha256)?,
            extract_cpu_s: optional(r, c.cpu[0])?,
            fetch_cpu_s: optional(r, c.cpu[1])?,
            encode_cpu_s: optional(r, c.cpu[2])?,
            verify_cpu_s: optional(r, c.cpu[3])?,
        })
    }
}

/// The position of each of [`ClipRow`]'s columns in a `SELECT * FROM clips`, looked up once per query
/// rather than by name for every cell of every row.
struct ClipColumns {
    id: usize,
    youtube_id: usize,
    start_ms: usize,
    end_ms: usize,
    label: usize,
    split: usize,
    rel_path: usize,
    rows: usize,
    state: usize,
    category: usize,
    message: usize,
    attempts: usize,
    bytes_fetched: usize,
    media_requests: usize,
    size_bytes: usize,
    duration_s: usize,
    download_s: usize,
    encode_s: usize,
    whole_video: usize,
    format_id: usize,
    source: usize,
    sha256: usize,
    /// The CPU-by-stage columns, absent before journal version 6.
    cpu: [Option<usize>; 4],
    /// `labels` and `boxes`, absent before journal version 9.
    labels: Option<usize>,
    boxes: Option<usize>,
}

impl ClipColumns {
    fn of(stmt: &rusqlite::Statement) -> rusqlite::Result<ClipColumns> {
        Ok(ClipColumns {
            id: stmt.column_index("id")?,
            youtube_id: stmt.column_index("youtube_id")?,
            start_ms: stmt.column_index("start_ms")?,
            end_ms: stmt.column_index("end_ms")?,
            label: stmt.column_index("label")?,
            split: stmt.column_index("split")?,
            rel_path: stmt.column_index("rel_path")?,
            rows: stmt.column_index("rows")?,
            state: stmt.column_index("state")?,
            category: stmt.column_index("category")?,
            message: stmt.column_index("message")?,
            attempts: stmt.column_index("attempts")?,
            bytes_fetched: stmt.column_index("bytes_fetched")?,
            media_requests: stmt.column_index("media_requests")?,
            size_bytes: stmt.column_index("size_bytes")?,
            duration_s: stmt.column_index("duration_s")?,
            download_s: stmt.column_index("download_s")?,
            encode_s: stmt.column_index("encode_s")?,
            whole_video: stmt.column_index("whole_video")?,
            format_id: stmt.column_index("format_id")?,
            source: stmt.column_index("source")?,
            sha256: stmt.column_index("sha256")?,
            cpu: ["extract_cpu_s", "fetch_cpu_s", "encode_cpu_s", "verify_cpu_s"].map(|n| stmt.column_index(n).ok()),
            labels: stmt.column_index("labels").ok(),
            boxes: stmt.column_index("boxes").ok(),
        })
    }
}

/// Whether the `clips` table has this column (a journal from an older kinetics-dl may lack it).
fn has_column(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT 1 FROM pragma_table_info('clips') WHERE name = ?1")?;
    stmt.exists([name])
}

/// The `labels` and `boxes` columns parsed: the labels after the first, and the boxes.
fn multi_label(labels: Option<String>, boxes: Option<String>) -> anyhow::Result<(Vec<String>, Vec<PersonBox>)> {
    use anyhow::Context;
    let mut labels: Vec<String> = match labels {
        Some(text) => serde_json::from_str(&text).context("the journal's labels column is not a JSON list")?,
        None => Vec::new(),
    };
    let boxes = match boxes {
        Some(text) => serde_json::from_str(&text).context("the journal's boxes column is not a JSON list of boxes")?,
        None => Vec::new(),
    };
    if !labels.is_empty() {
        labels.remove(0);
    }
    Ok((labels, boxes))
}

/// Every clip, in plan order.
pub(super) fn clips(conn: &Connection) -> rusqlite::Result<Vec<ClipRow>> {
    let mut stmt = conn.prepare("SELECT * FROM clips ORDER BY id")?;
    let cols = ClipColumns::of(&stmt)?;
    let rows = stmt.query_map([], |r| ClipRow::from_row(r, &cols))?;
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

impl RunRow {
    /// How yt-dlp ran (`api`, `cli`, or `cli (api: why not)`); `None` for a run from before it was recorded.
    pub fn ytdlp_mode(&self) -> Option<&str> {
        self.settings.get("ytdlp_mode").and_then(serde_json::Value::as_str)
    }
}

/// The `ytdlp_mode` of a run's recorded settings (see [`RunRow::ytdlp_mode`]).
pub(super) fn ytdlp_mode(settings: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(settings).ok()?;
    v.get("ytdlp_mode").and_then(serde_json::Value::as_str).map(str::to_owned)
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
///
/// The attempts are read in storage order and the latest run kept here. SQL's `GROUP BY clip_id` would walk
/// the `attempts_clip` index and fetch each attempt's row from the table at random: four times slower on a
/// journal of 650,000 clips (2.0 s against 0.5 in `bench/scale.py`'s journal, from Python).
pub(super) fn done_run_by_clip(conn: &Connection) -> rusqlite::Result<std::collections::HashMap<i64, i64>> {
    let mut stmt = conn.prepare("SELECT clip_id, run_id FROM attempts WHERE outcome = 'done'")?;
    let mut rows = stmt.query([])?;
    let mut runs = std::collections::HashMap::new();
    while let Some(r) = rows.next()? {
        let (clip, run): (i64, i64) = (r.get(0)?, r.get(1)?);
        runs.entry(clip).and_modify(|latest: &mut i64| *latest = run.max(*latest)).or_insert(run);
    }
    Ok(runs)
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
    if !table_exists(conn, "throttle_events")? {
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
    if !table_exists(conn, "outages")? {
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

/// How long a DASH refusal holds (ms): YouTube's token rules change, so a refusal is not forever. After it,
/// the next run tries DASH again on that egress; refused again, its clips go back to itag 18 (uncharged) and
/// the refusal holds another day from then.
pub const DASH_REFUSAL_HOLDS_MS: i64 = 24 * 3600 * 1000;

/// An egress that upstream refused DASH formats past their first bytes: its clips start from itag 18 until
/// `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DashRefused {
    pub egress: String,
    /// When it was last refused (unix ms).
    pub since_ms: i64,
    /// When the refusal lapses (unix ms): from then on DASH is tried again.
    pub until_ms: i64,
}

impl DashRefused {
    pub fn new(egress: String, since_ms: i64) -> DashRefused {
        DashRefused { egress, since_ms, until_ms: since_ms.saturating_add(DASH_REFUSAL_HOLDS_MS) }
    }

    /// Whether the egress's clips still start from itag 18 at `now_ms`.
    pub fn holds_at(&self, now_ms: i64) -> bool {
        now_ms < self.until_ms
    }
}

/// The egresses refused DASH, by name; none when this journal has no `dash_refused` table.
pub(super) fn dash_refused(conn: &Connection) -> rusqlite::Result<Vec<DashRefused>> {
    if !table_exists(conn, "dash_refused")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT egress, since_ms FROM dash_refused ORDER BY egress")?;
    let rows = stmt.query_map([], |r| Ok(DashRefused::new(r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The upstream request rate an egress learned from bans, which the next run starts from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LearnedRate {
    pub egress: String,
    pub per_min: f64,
    /// When it was last saved (unix ms).
    pub at_ms: i64,
}

/// The learned rates, by egress; none when this journal predates them (schema 11).
pub(super) fn learned_rates(conn: &Connection) -> rusqlite::Result<Vec<LearnedRate>> {
    let has = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('egress_state') WHERE name = 'rate_per_min')",
        [],
        |r| r.get::<_, bool>(0),
    )?;
    if !has {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT egress, rate_per_min, updated_ms FROM egress_state WHERE rate_per_min IS NOT NULL ORDER BY egress",
    )?;
    let rows = stmt.query_map([], |r| Ok(LearnedRate { egress: r.get(0)?, per_min: r.get(1)?, at_ms: r.get(2)? }))?;
    rows.collect()
}

/// A column that a newer journal has and an older one lacks: `None` when absent.
fn optional(r: &Row, index: Option<usize>) -> rusqlite::Result<Option<f64>> {
    match index {
        Some(i) => r.get(i),
        None => Ok(None),
    }
}

/// Whether this journal has `table` (an older one may lack a later migration's).
fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)", [table], |r| {
        r.get(0)
    })
}

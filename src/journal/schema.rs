//! The journal's schema and its migrations, in order. Version N is reached by running migrations 1..=N.

use rusqlite::{Connection, OptionalExtension};

/// Every migration, oldest first. Never edit one that has shipped: add another.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: clips, attempts, runs.
    "CREATE TABLE clips (
        id            INTEGER PRIMARY KEY,
        youtube_id    TEXT    NOT NULL,
        start_ms      INTEGER NOT NULL,
        end_ms        INTEGER NOT NULL,
        label         TEXT,
        split         TEXT,
        rel_path      TEXT    NOT NULL,
        rows          INTEGER NOT NULL DEFAULT 1,
        state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        category      TEXT,
        message       TEXT,
        stderr_tail   TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER,
        bytes_fetched INTEGER,
        size_bytes    INTEGER,
        duration_s    REAL,
        download_s    REAL,
        encode_s      REAL,
        whole_video   INTEGER NOT NULL DEFAULT 0,
        format_id     TEXT,
        source        TEXT,
        sha256        TEXT,
        updated_ms    INTEGER NOT NULL DEFAULT 0,
        UNIQUE (youtube_id, start_ms, end_ms)
    );
    CREATE INDEX clips_state ON clips (state);
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        started_ms  INTEGER NOT NULL,
        finished_ms INTEGER,
        command     TEXT NOT NULL,
        settings    TEXT NOT NULL,
        ytdlp_version  TEXT,
        ffmpeg_version TEXT,
        exit_code   INTEGER
    );
    CREATE TABLE attempts (
        id          INTEGER PRIMARY KEY,
        clip_id     INTEGER NOT NULL REFERENCES clips (id),
        run_id      INTEGER NOT NULL REFERENCES runs (id),
        started_ms  INTEGER NOT NULL,
        finished_ms INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        category    TEXT,
        message     TEXT,
        bytes_fetched INTEGER,
        download_s  REAL,
        encode_s    REAL,
        egress      TEXT
    );
    CREATE INDEX attempts_clip ON attempts (clip_id);",
    // 2: throttling: each egress's breaker survives the run; every throttle signal is kept.
    "CREATE TABLE egress_state (
        egress        TEXT PRIMARY KEY,
        open_until_ms INTEGER,
        cooloff_ms    INTEGER NOT NULL,
        updated_ms    INTEGER NOT NULL
    );
    CREATE TABLE throttle_events (
        id         INTEGER PRIMARY KEY,
        run_id     INTEGER REFERENCES runs (id),
        egress     TEXT NOT NULL,
        at_ms      INTEGER NOT NULL,
        category   TEXT NOT NULL,
        cooloff_s  REAL,
        wasted     INTEGER NOT NULL DEFAULT 0
    );",
    // 3: facts about the folder as a whole (`shard`: the static shard its clips belong to).
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // 4: requests per clip: those the relay sent to the media server for the clip's last, successful attempt.
    "ALTER TABLE clips ADD COLUMN media_requests INTEGER;",
    // 5: outages: an egress that reached nothing, from its breaker opening to the probe that got through
    // (`ended_ms` NULL: still down when the run stopped), with the clips it gave back meanwhile.
    "CREATE TABLE outages (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER REFERENCES runs (id),
        egress      TEXT    NOT NULL,
        started_ms  INTEGER NOT NULL,
        ended_ms    INTEGER,
        given_back  INTEGER NOT NULL DEFAULT 0
    );",
    // 6: CPU seconds per stage of a clip's last, successful attempt (children's rusage + the relay's share).
    "ALTER TABLE clips ADD COLUMN extract_cpu_s REAL;
    ALTER TABLE clips ADD COLUMN fetch_cpu_s REAL;
    ALTER TABLE clips ADD COLUMN encode_cpu_s REAL;
    ALTER TABLE clips ADD COLUMN verify_cpu_s REAL;",
    // 7: which trim made a done clip (`exact`, `copy`, `smart`, or `exact (why not smart)`).
    "ALTER TABLE clips ADD COLUMN trim TEXT;",
    // 8: egresses refused DASH formats past their first bytes (no proof-of-origin token): reruns start their
    // clips from itag 18.
    "CREATE TABLE dash_refused (
        egress   TEXT PRIMARY KEY,
        since_ms INTEGER NOT NULL,
        run_id   INTEGER REFERENCES runs (id)
    );",
    // 9: clips with several labels (AudioSet, AVA-Kinetics): `labels` a JSON array of all of them, the first
    // also in `label` (NULL for a clip with one label); `boxes` AVA's person boxes, a JSON array of
    // {"box": [x1, y1, x2, y2], "label", "person_id"} (NULL for other formats).
    "ALTER TABLE clips ADD COLUMN labels TEXT;
    ALTER TABLE clips ADD COLUMN boxes TEXT;",
    // 10: the clip key's uniqueness moves from the table's UNIQUE constraint to an index of its own,
    // `clips_key`, which the first import of a plan drops and builds again after the rows
    // (`Journal::sync_plan`): 650,000 keys inserted into it in random order took half of that import.
    // SQLite cannot drop a table constraint, so the table is made again (foreign keys are off meanwhile,
    // see `migrate`), with the same columns in the same order.
    "CREATE TABLE clips_new (
        id            INTEGER PRIMARY KEY,
        youtube_id    TEXT    NOT NULL,
        start_ms      INTEGER NOT NULL,
        end_ms        INTEGER NOT NULL,
        label         TEXT,
        split         TEXT,
        rel_path      TEXT    NOT NULL,
        rows          INTEGER NOT NULL DEFAULT 1,
        state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        category      TEXT,
        message       TEXT,
        stderr_tail   TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER,
        bytes_fetched INTEGER,
        size_bytes    INTEGER,
        duration_s    REAL,
        download_s    REAL,
        encode_s      REAL,
        whole_video   INTEGER NOT NULL DEFAULT 0,
        format_id     TEXT,
        source        TEXT,
        sha256        TEXT,
        updated_ms    INTEGER NOT NULL DEFAULT 0,
        media_requests INTEGER,
        extract_cpu_s REAL,
        fetch_cpu_s   REAL,
        encode_cpu_s  REAL,
        verify_cpu_s  REAL,
        trim          TEXT,
        labels        TEXT,
        boxes         TEXT
    );
    INSERT INTO clips_new SELECT id, youtube_id, start_ms, end_ms, label, split, rel_path, rows, state, category,
        message, stderr_tail, attempts, next_attempt_ms, bytes_fetched, size_bytes, duration_s, download_s, encode_s,
        whole_video, format_id, source, sha256, updated_ms, media_requests, extract_cpu_s, fetch_cpu_s, encode_cpu_s,
        verify_cpu_s, trim, labels, boxes FROM clips ORDER BY id;
    DROP TABLE clips;
    ALTER TABLE clips_new RENAME TO clips;
    CREATE UNIQUE INDEX clips_key ON clips (youtube_id, start_ms, end_ms);
    CREATE INDEX clips_state ON clips (state);",
    // 11: the request rate each egress learned from bans (requests a minute), so that a rerun starts from it.
    "ALTER TABLE egress_state ADD COLUMN rate_per_min REAL;",
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to the current version; refuses a database from a newer kinetics-dl.
///
/// Foreign keys are off while the migrations run (a table made again would otherwise have its rows'
/// references checked as it is dropped, SQLite's own procedure for changing a table), and each
/// migration's transaction commits only if no reference dangles afterwards.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        let newer = anyhow::anyhow!(
            "the journal has schema version {current}, newer than this kinetics-dl understands ({VERSION}); upgrade kinetics-dl"
        );
        return Err(crate::exit_codes::Usage(newer).into());
    }
    if current == VERSION {
        return Ok(());
    }
    let foreign_keys: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let migrated = run_from(conn, current as usize);
    conn.pragma_update(None, "foreign_keys", foreign_keys)?;
    migrated
}

fn run_from(conn: &mut Connection, current: usize) -> anyhow::Result<()> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let dangling: Option<String> = tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0)).optional()?;
        if let Some(table) = dangling {
            anyhow::bail!("migration {} left a reference from table {table} dangling", i + 1);
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

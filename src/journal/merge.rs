//! Joining journals: `kinetics-dl merge` builds one folder's journal from the journals of shard and worker
//! folders. Column lists are read from the schema, so columns added by later migrations come along.

use super::Journal;
use rusqlite::{params, Connection};
use std::path::Path;

/// The columns of `table` in schema `db`, without those in `skip`.
fn columns(conn: &Connection, db: &str, table: &str, skip: &[&str]) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA {db}.table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names.into_iter().filter(|n| !skip.contains(&n.as_str())).collect())
}

/// The columns both the merged journal and the source have (a source is migrated when opened, so all).
fn shared(conn: &Connection, table: &str, skip: &[&str]) -> rusqlite::Result<Vec<String>> {
    let theirs = columns(conn, "src", table, skip)?;
    Ok(columns(conn, "main", table, skip)?.into_iter().filter(|c| theirs.contains(c)).collect())
}

impl Journal {
    /// The settings the latest run recorded (JSON), if any run was made.
    pub fn last_settings(&self) -> anyhow::Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self.conn.query_row("SELECT settings FROM runs ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).optional()?)
    }

    /// Copies the clips with ids `picks` from the journal at `source` (all their columns, new ids).
    pub fn import_clips(&mut self, source: &Path, picks: &[i64]) -> anyhow::Result<()> {
        self.attached(source, |conn| {
            let cols = shared(conn, "clips", &["id"])?.join(", ");
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS pick (id INTEGER PRIMARY KEY); DELETE FROM temp.pick;")?;
            let mut add = tx.prepare("INSERT INTO temp.pick (id) VALUES (?1)")?;
            for id in picks {
                add.execute([id])?;
            }
            drop(add);
            tx.execute(
                &format!(
                    "INSERT INTO main.clips ({cols}) SELECT {cols} FROM src.clips
                     WHERE id IN (SELECT id FROM temp.pick) ORDER BY id"
                ),
                [],
            )?;
            tx.commit()
        })
    }

    /// Copies the runs of the journal at `source`, and the attempts and throttle events of its clips that
    /// the merged journal holds (by clip key), with their ids renumbered.
    pub fn import_history(&mut self, source: &Path) -> anyhow::Result<()> {
        self.attached(source, |conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS run_map (old INTEGER PRIMARY KEY, new INTEGER NOT NULL);
                 DELETE FROM temp.run_map;",
            )?;
            let run_cols = shared(&tx, "runs", &["id"])?.join(", ");
            let olds = {
                let mut stmt = tx.prepare("SELECT id FROM src.runs ORDER BY id")?;
                let ids = stmt.query_map([], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
                ids
            };
            for old in olds {
                tx.execute(&format!("INSERT INTO main.runs ({run_cols}) SELECT {run_cols} FROM src.runs WHERE id = ?1"), [old])?;
                let new = tx.last_insert_rowid();
                tx.execute("INSERT INTO temp.run_map (old, new) VALUES (?1, ?2)", params![old, new])?;
            }
            let cols = shared(&tx, "attempts", &["id", "clip_id", "run_id"])?;
            let (names, picked) = (cols.join(", "), cols.iter().map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", "));
            tx.execute(
                &format!(
                    "INSERT INTO main.attempts ({names}, clip_id, run_id)
                     SELECT {picked}, m.id, r.new FROM src.attempts a
                     JOIN src.clips s ON s.id = a.clip_id
                     JOIN main.clips m ON m.youtube_id = s.youtube_id AND m.start_ms = s.start_ms AND m.end_ms = s.end_ms
                     JOIN temp.run_map r ON r.old = a.run_id ORDER BY a.id"
                ),
                [],
            )?;
            let cols = shared(&tx, "throttle_events", &["id", "run_id"])?;
            let (names, picked) = (cols.join(", "), cols.iter().map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", "));
            tx.execute(
                &format!(
                    "INSERT INTO main.throttle_events ({names}, run_id)
                     SELECT {picked}, r.new FROM src.throttle_events t LEFT JOIN temp.run_map r ON r.old = t.run_id
                     ORDER BY t.id"
                ),
                [],
            )?;
            tx.commit()
        })
    }

    /// Runs `f` with the journal at `source` attached as `src`.
    fn attached<T>(&mut self, source: &Path, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        self.conn.execute("ATTACH DATABASE ?1 AS src", [source.to_string_lossy()])?;
        let result = f(&self.conn);
        self.conn.execute_batch("DETACH DATABASE src")?;
        Ok(result?)
    }
}

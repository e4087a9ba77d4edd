//! The fleet's record of its done clips, which `merge --db` takes as arbiter between worker folders.

use super::Db;

/// One done clip as the fleet recorded it when its worker completed it (a fenced update: the worker held the
/// clip's lease at that moment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneRecord {
    /// [`super::clip_key`] of the clip.
    pub clip_key: String,
    /// The worker that made the copy of record.
    pub worker: String,
    /// Its path inside that worker's `--out`.
    pub location: String,
    pub size_bytes: Option<i64>,
    /// The sha256 of the copy of record.
    pub sha256: Option<String>,
}

impl Db {
    /// Every done clip of the fleet, in the fleet's order.
    pub async fn done_record(&self) -> anyhow::Result<Vec<DoneRecord>> {
        let rows = self.query("done_clips", &[&self.fleet]).await?;
        Ok(rows
            .iter()
            .map(|r| DoneRecord {
                clip_key: r.get(0),
                worker: r.get::<_, Option<String>>(1).unwrap_or_default(),
                location: r.get::<_, Option<String>>(2).unwrap_or_default(),
                size_bytes: r.get(3),
                sha256: r.get(4),
            })
            .collect())
    }
}

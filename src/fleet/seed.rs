//! Planned clips into the fleet's table in one bulk load (arrays unnested, in large batches): a rerun adds
//! only the clips not there yet. Also the pinning of the fleet's settings, which comes first.

use super::db::{Db, Interval};
use super::pin::{self, PinError};
use crate::plan::{ClipKey, Job};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Clips per `seed` statement: ten arrays of this many elements.
const BATCH: usize = 20_000;

/// The clip's key in the fleet: the journal's file name without its extension.
pub fn clip_key(key: &ClipKey) -> String {
    let name = crate::plan::clip_file_name(key);
    name.trim_end_matches(".mp4").to_string()
}

/// A stable spread of the clips (the head of sha256 of the key), so that a fleet's progress covers every
/// class evenly rather than one class after another.
pub fn order_key(clip_key: &str) -> i64 {
    let digest = Sha256::digest(clip_key.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl Db {
    /// Creates the fleet with this worker's settings, or checks them against the fleet's.
    pub async fn pin(&self, settings: &str, hash: &str, lease: Duration) -> anyhow::Result<()> {
        self.execute("pin", &[&self.fleet, &settings, &hash, &Interval(lease)]).await?;
        let row = self.query("pinned", &[&self.fleet]).await?.into_iter().next();
        let row = row.ok_or_else(|| anyhow::anyhow!("fleet `{}` vanished while being created", self.fleet))?;
        let (theirs, their_hash): (String, String) = (row.get(0), row.get(1));
        if their_hash != hash {
            pin::compare(&self.fleet, settings, &theirs)?;
            // Same values, other spelling (an older kinetics-dl's hash): still refused, with both shown.
            return Err(PinError {
                fleet: self.fleet.clone(),
                differences: format!("{settings} here, {theirs} in the fleet"),
            }
            .into());
        }
        Ok(())
    }

    /// Adds the planned clips the fleet does not have yet, and gives the labels and boxes of these jobs to
    /// clips that a kinetics-dl before version 4 of the tables seeded without them; returns how many clips
    /// were new and how many were filled in.
    pub async fn seed(&self, jobs: &[Job]) -> anyhow::Result<Seeded> {
        let mut seeded = Seeded::default();
        for batch in jobs.chunks(BATCH) {
            let keys: Vec<String> = batch.iter().map(|j| clip_key(&j.key)).collect();
            let ids: Vec<&str> = batch.iter().map(|j| j.key.youtube_id.as_str()).collect();
            let starts: Vec<f64> = batch.iter().map(|j| j.key.start_ms as f64 / 1000.0).collect();
            let ends: Vec<f64> = batch.iter().map(|j| j.key.end_ms as f64 / 1000.0).collect();
            let paths: Vec<String> = batch.iter().map(|j| j.rel_path.to_string_lossy().into_owned()).collect();
            let orders: Vec<i64> = keys.iter().map(|k| order_key(k)).collect();
            let labels: Vec<Option<&str>> = batch.iter().map(|j| j.label.as_deref()).collect();
            let splits: Vec<Option<&str>> = batch.iter().map(|j| j.split.as_deref()).collect();
            let columns: Vec<(Option<String>, Option<String>)> =
                batch.iter().map(Job::multi_label_columns).collect::<Result<_, _>>()?;
            let (all_labels, boxes): (Vec<Option<String>>, Vec<Option<String>>) = columns.into_iter().unzip();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] =
                [&self.fleet, &keys, &ids, &starts, &ends, &paths, &orders, &labels, &splits, &all_labels, &boxes];
            for row in self.query("seed", &params).await? {
                if row.get::<_, bool>(0) {
                    seeded.added += 1;
                } else {
                    seeded.filled_in += 1;
                }
            }
        }
        Ok(seeded)
    }
}

/// What a seed did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Clips the fleet did not have.
    pub added: u64,
    /// Clips it had without their labels and boxes (seeded by an older kinetics-dl), now with them.
    pub filled_in: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_journal_names_and_orders_are_stable() {
        let key = ClipKey { youtube_id: "abc-_DEF123".into(), start_ms: 17_500, end_ms: 27_000 };
        assert_eq!(clip_key(&key), "abc-_DEF123_000017.500_000027");
        assert_eq!(order_key("abc-_DEF123_000017.500_000027"), order_key(&clip_key(&key)));
        assert_ne!(order_key("a_000000_000010"), order_key("a_000001_000011"));
        // The first 8 bytes of sha256("") are e3b0c44298fc1c14.
        assert_eq!(order_key(""), i64::from_be_bytes([0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14]));
    }
}

//! Static shards: `--shard i/N` takes a stable share of the planned clips, for sites without a reachable
//! fleet database (Slurm job arrays, Kubernetes Indexed Jobs).
//!
//! A clip belongs to shard `u64::from_be_bytes(sha256(youtube_id)[..8]) % N`: a hash that is the same on
//! every machine and every run (never Rust's randomly keyed hasher), keyed by the video so that all clips of
//! one video stay together, and applied to the plan so that annotation order and file splits don't matter.
//! `--shard auto` reads the index from the scheduler's environment; [`from_env`] is that mapping as a pure
//! function of the variables.

use sha2::{Digest, Sha256};
use std::fmt;

/// One share of the plan: index `index` of `count`, `index < count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// What `--shard` says: a fixed share or "read it from the environment".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Fixed(Shard),
    Auto,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Checks `index < count` and `count >= 1`.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("the number of shards must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: with {count} shards it goes from 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the clips of this video belong to this shard.
    pub fn owns(&self, youtube_id: &str) -> bool {
        shard_of(youtube_id, self.count) == self.index
    }
}

/// The shard of a video among `count` shards (`count >= 1`).
pub fn shard_of(youtube_id: &str, count: u64) -> u64 {
    let digest = Sha256::digest(youtube_id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head) % count.max(1)
}

/// Parses the value of `--shard`: `i/N` or `auto`.
pub fn parse_arg(s: &str) -> Result<ShardArg, String> {
    if s == "auto" {
        return Ok(ShardArg::Auto);
    }
    let bad = || format!("--shard {s:?}: expected i/N (i from 0 to N-1, for example 0/4) or auto");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.trim().parse().map_err(|_| bad())?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    Shard::new(i, n).map(ShardArg::Fixed).map_err(|e| format!("--shard {s:?}: {e}"))
}

fn number(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<u64>, String> {
    match get(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| format!("{name}={v:?} is not a whole number")),
    }
}

/// Resolves `--shard auto` from environment variables (`get` looks one up) and `--shards N`.
///
/// Slurm job arrays set `SLURM_ARRAY_TASK_ID`, `_COUNT`, `_MIN` and `_STEP`: `--array=1-7:2` runs tasks
/// 1, 3, 5, 7, which are shards 0..4 by `(id - min) / step`. Kubernetes Indexed Jobs set
/// `JOB_COMPLETION_INDEX` but not the count, so `--shards N` (the Job's `completions`) is required.
pub fn from_env(get: &dyn Fn(&str) -> Option<String>, shards: Option<u64>) -> Result<Shard, String> {
    let slurm_id = number(get, "SLURM_ARRAY_TASK_ID")?;
    let k8s_index = number(get, "JOB_COMPLETION_INDEX")?;
    match (slurm_id, k8s_index) {
        (Some(_), Some(_)) => Err("--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; \
             pass --shard i/N to say which one counts"
            .into()),
        (Some(id), None) => {
            let count = number(get, "SLURM_ARRAY_TASK_COUNT")?.ok_or(
                "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not \
                 (Slurm sets both in a job array; older Slurm: pass --shard i/N)",
            )?;
            let min = number(get, "SLURM_ARRAY_TASK_MIN")?
                .ok_or("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not")?;
            let step = number(get, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
            if step == 0 {
                return Err("--shard auto: SLURM_ARRAY_TASK_STEP=0".into());
            }
            if id < min || (id - min) % step != 0 {
                return Err(format!(
                    "--shard auto: SLURM_ARRAY_TASK_ID={id} is not on the array min {min} step {step}; \
                     use a regular --array=A-B[:S] or pass --shard i/N"
                ));
            }
            if let Some(n) = shards.filter(|&n| n != count) {
                return Err(format!("--shard auto: --shards {n} disagrees with SLURM_ARRAY_TASK_COUNT={count}"));
            }
            Shard::new((id - min) / step, count).map_err(|e| {
                format!("--shard auto: SLURM_ARRAY_TASK_ID={id} with min {min}, step {step}, count {count}: {e}")
            })
        }
        (None, Some(index)) => {
            let count = shards.ok_or(
                "--shard auto: JOB_COMPLETION_INDEX is set but Kubernetes does not say how many pods; \
                 pass --shards N (the Job's completions)",
            )?;
            Shard::new(index, count)
                .map_err(|e| format!("--shard auto: JOB_COMPLETION_INDEX={index}, --shards {count}: {e}"))
        }
        (None, None) => Err("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor \
             JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; pass --shard i/N outside them"
            .into()),
    }
}

#[cfg(test)]
mod tests;

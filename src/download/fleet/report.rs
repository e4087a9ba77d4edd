//! The plain types of a fleet worker's reports, shared by the loop (`mod.rs`) and the outbox (`outbox.rs`).

use crate::classify::Category;
use crate::journal::Done;
use std::time::{Duration, Instant};

/// One clip's outcome for the fleet.
#[derive(Debug)]
pub(super) enum Report {
    Done {
        key: String,
        token: i64,
        youtube_id: String,
        sha256: String,
        done: Done,
    },
    /// Back to the pool uncharged: a throttle signal, a stop, a broken machine.
    GiveBack {
        key: String,
        token: i64,
    },
    /// A clip-attributable failure: one attempt charged, pending again after `retry_after` or failed.
    Failed {
        key: String,
        token: i64,
        retry_after: Option<Duration>,
        category: Category,
        message: String,
        bytes_fetched: u64,
    },
    GeoBlocked {
        key: String,
        token: i64,
        youtube_id: String,
        message: String,
    },
}

impl Report {
    /// The clip the report is about.
    pub(super) fn key(&self) -> &str {
        match self {
            Report::Done { key, .. }
            | Report::GiveBack { key, .. }
            | Report::Failed { key, .. }
            | Report::GeoBlocked { key, .. } => key,
        }
    }
}

/// The database is away since `since`; the next reconnect is due at `next_try`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offline {
    pub since: Instant,
    pub next_try: Instant,
    pub tries: u32,
}

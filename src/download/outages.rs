//! Outages as the run loops keep them (the scheduler's and a fleet worker's): which failures are an egress
//! reaching nothing rather than the clip's own, and each outage journaled from the breaker opening to the
//! probe that got through, with the clips it gave back.

use crate::classify::{self, Category};
use crate::governor::{Finish, Governor};
use crate::journal::Journal;
use std::collections::HashMap;

/// The throttle-event category of a clip given back because its egress reached nothing.
pub const EGRESS_DOWN: &str = "egress_down";

#[derive(Default)]
pub struct OutageBook {
    /// Per clip, how often it was given back for reaching nothing while its egress stayed up: past
    /// `--down-after` the clip's own failure counts (a source host only it uses may be the one down).
    givebacks: HashMap<i64, u32>,
    /// Each down egress's outage in the journal (by lane).
    open: HashMap<usize, i64>,
    /// Per lane, clips given back before the breaker opened: they join the outage that follows, or are
    /// forgotten when the egress serves a clip first.
    unrecorded: HashMap<usize, u64>,
}

impl OutageBook {
    /// Whether a failure of clip `clip_id` says its egress reached nothing (an outage signal), rather than a
    /// failure of the clip: a `network` failure with an unreachable message, while the clip has not yet been
    /// given back `down_after` times for it with its egress up.
    pub fn is_unreachable(&self, clip_id: i64, category: Category, stderr_tail: &str, down_after: u32) -> bool {
        category == Category::Network
            && classify::unreachable(stderr_tail)
            && self.givebacks.get(&clip_id).copied().unwrap_or(0) < down_after
    }

    /// After the governor heard how a job through `lane` ended (`finish`, `opened`: whether it opened the
    /// breaker): journals the outage this began or ended, and counts an unreachable clip's give-back while
    /// its egress stayed up.
    #[allow(clippy::too_many_arguments)]
    pub fn after_finish(
        &mut self,
        journal: &mut Journal,
        run_id: i64,
        governor: &Governor,
        lane: usize,
        probe: bool,
        finish: Finish,
        opened: bool,
        clip_id: i64,
    ) -> anyhow::Result<()> {
        let down = governor.is_down(lane);
        match (self.open.get(&lane).copied(), down) {
            (None, true) => {
                let id = journal.outage_began(run_id, governor.egress_name(lane))?;
                self.open.insert(lane, id);
            }
            (Some(id), false) => {
                journal.outage_ended(id)?;
                self.open.remove(&lane);
                self.unrecorded.remove(&lane);
            }
            (None, false) if finish == Finish::Served => {
                self.unrecorded.remove(&lane);
            }
            _ => {}
        }
        if finish == Finish::Unreachable && !opened && !probe && !down {
            *self.givebacks.entry(clip_id).or_default() += 1;
        }
        Ok(())
    }

    /// A clip through `lane` went back to pending, uncharged, because its egress reached nothing.
    pub fn gave_back(&mut self, journal: &mut Journal, lane: usize) -> anyhow::Result<()> {
        let waiting = self.unrecorded.remove(&lane).unwrap_or(0);
        match self.open.get(&lane) {
            Some(&id) => journal.outage_gave_back(id, waiting + 1)?,
            None => {
                self.unrecorded.insert(lane, waiting + 1);
            }
        }
        Ok(())
    }
}

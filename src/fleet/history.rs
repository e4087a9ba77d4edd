//! The fleet's history for `report --db`: completions per worker over time and each throttle domain's
//! breaker openings and closings, read from the fleet's tables.

use super::Db;
use serde::Serialize;
use std::collections::BTreeMap;

/// At most this many time buckets across the fleet's run.
const BUCKETS: i64 = 48;

/// Completions per worker per time bucket, on one time axis.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetHistory {
    /// Unix ms of the first bucket's start; buckets are `bucket_ms` long.
    pub origin_ms: i64,
    pub bucket_ms: i64,
    /// Per worker: done clips in each bucket (every worker has the same number of buckets).
    pub done: BTreeMap<String, Vec<u64>>,
    pub domain_events: Vec<DomainEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEvent {
    pub domain: String,
    /// `open` (a ban began: the breaker opened) or `close` (a probe got through).
    pub kind: String,
    pub at_ms: i64,
    /// For `open`: when its cool-off ends.
    pub open_until_ms: Option<i64>,
    /// For `close`: the worker whose probe got through.
    pub worker: Option<String>,
}

/// A bucket length that puts `span_ms` into at most [`BUCKETS`] buckets, rounded up to a whole number of
/// seconds, minutes or hours.
pub fn bucket_ms(span_ms: i64) -> i64 {
    let raw = (span_ms / BUCKETS).max(1);
    let steps = [1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000];
    steps.into_iter().find(|s| *s >= raw).unwrap_or((raw + 3_599_999) / 3_600_000 * 3_600_000)
}

impl Db {
    /// The fleet's completions per worker over time and its domains' breaker history.
    pub async fn history(&self) -> anyhow::Result<FleetHistory> {
        let events = self
            .query("domain_events", &[&self.fleet])
            .await?
            .iter()
            .map(|r| DomainEvent {
                domain: r.get(0),
                kind: r.get(1),
                at_ms: r.get(2),
                open_until_ms: r.get(3),
                worker: r.get(4),
            })
            .collect::<Vec<_>>();
        let span = self.query("done_span", &[&self.fleet]).await?;
        let (first, last): (Option<i64>, Option<i64>) = span.first().map_or((None, None), |r| (r.get(0), r.get(1)));
        let event_times = events.iter().map(|e| e.at_ms);
        let (Some(first), Some(last)) =
            (first.into_iter().chain(event_times.clone()).min(), last.into_iter().chain(event_times).max())
        else {
            return Ok(FleetHistory { domain_events: events, ..FleetHistory::default() });
        };
        let bucket = bucket_ms(last - first);
        let origin = first.div_euclid(bucket) * bucket;
        let n = ((last - origin) / bucket + 1) as usize;
        let mut done: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for r in self.query("done_per_bucket", &[&self.fleet, &bucket]).await? {
            let worker: Option<String> = r.get(0);
            let index = (r.get::<_, i64>(1) - origin / bucket) as usize;
            let count: i64 = r.get(2);
            let series = done.entry(worker.unwrap_or_default()).or_insert_with(|| vec![0; n]);
            if let Some(slot) = series.get_mut(index) {
                *slot += count as u64;
            }
        }
        Ok(FleetHistory { origin_ms: origin, bucket_ms: bucket, done, domain_events: events })
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_ms;

    #[test]
    fn buckets_are_round_and_at_most_48() {
        // (span, bucket)
        for (span, want) in [
            (0, 1_000),
            (30_000, 1_000),
            (60_000, 2_000),
            (600_000, 15_000),
            (3_600_000, 120_000),
            (86_400_000, 1_800_000),
            (7 * 86_400_000, 14_400_000),
        ] {
            assert_eq!(bucket_ms(span), want, "span {span}");
            assert!(span / want < 48 + 1, "span {span}");
        }
    }
}

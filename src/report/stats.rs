//! The statistics the report shows: robust summaries of durations, histograms with readable bins, and
//! "nice" steps for chart axes and time buckets.
//!
//! Download times have a long tail (a throttled video can take minutes where most take seconds), so the
//! report leads with the median and the interquartile mean (the mean of the middle half, which the seed's
//! author used for estimates) rather than the mean alone.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    /// Interquartile mean: the mean of the middle 50%, weighting the boundary values by the fraction of
    /// them that falls inside (so it is defined for every n, not only multiples of 4).
    pub iqm: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    pub total: f64,
}

/// Summarises finite values; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let total: f64 = v.iter().sum();
    Some(Spread {
        n: v.len(),
        mean: total / v.len() as f64,
        median: quantile(&v, 0.5),
        iqm: iqm(&v),
        p90: quantile(&v, 0.9),
        min: v[0],
        max: v[v.len() - 1],
        total,
    })
}

/// The q-quantile of sorted values, interpolating linearly between ranks (R's type 7, numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let (lo, frac) = (h.floor() as usize, h - h.floor());
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// The interquartile mean of sorted values: value i covers the rank interval [i, i+1) and counts with
/// the part of it inside [n/4, 3n/4].
pub fn iqm(sorted: &[f64]) -> f64 {
    let n = sorted.len() as f64;
    if sorted.is_empty() {
        return f64::NAN;
    }
    let (lo, hi) = (n / 4.0, 3.0 * n / 4.0);
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let (a, b) = (i as f64, i as f64 + 1.0);
            (b.min(hi) - a.max(lo)).max(0.0) * x
        })
        .sum();
    weighted / (hi - lo)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Bin edges from 0; bin i is [edges[i], edges[i+1]).
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
    /// True when the last bin also holds every value beyond its upper edge (the long tail).
    pub overflow: bool,
}

/// A histogram from 0 to a nice bound at or above the 98th percentile in at most `max_bins` bins; values
/// beyond the bound go to the last bin, so one outlier does not squash every other bar.
pub fn histogram(values: &[f64], max_bins: usize) -> Option<Histogram> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite() && *x >= 0.0).collect();
    if v.is_empty() || max_bins == 0 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let top = quantile(&v, 0.98).max(f64::MIN_POSITIVE);
    let width = nice_step(top / max_bins as f64);
    let bins = ((top / width).floor() as usize + 1).clamp(1, max_bins);
    let edges: Vec<f64> = (0..=bins).map(|i| i as f64 * width).collect();
    let mut counts = vec![0u64; bins];
    for x in &v {
        counts[((x / width).floor() as usize).min(bins - 1)] += 1;
    }
    let overflow = v[v.len() - 1] >= edges[bins];
    Some(Histogram { edges, counts, overflow })
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `raw` (chart steps people can read).
pub fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let scaled = raw / magnitude;
    let factor = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|f| scaled <= f * (1.0 + 1e-9)).unwrap_or(10.0);
    factor * magnitude
}

/// A time bucket that splits `span_ms` into at most about `target` buckets, from a list of durations
/// people read at a glance (1 s up to a week).
pub fn time_bucket_ms(span_ms: i64, target: usize) -> i64 {
    const SECOND: i64 = 1000;
    const MINUTE: i64 = 60 * SECOND;
    const HOUR: i64 = 60 * MINUTE;
    const CHOICES: [i64; 19] = [
        SECOND,
        2 * SECOND,
        5 * SECOND,
        10 * SECOND,
        15 * SECOND,
        30 * SECOND,
        MINUTE,
        2 * MINUTE,
        5 * MINUTE,
        10 * MINUTE,
        15 * MINUTE,
        30 * MINUTE,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        24 * HOUR,
        7 * 24 * HOUR,
    ];
    let target = target.max(1) as i64;
    CHOICES.into_iter().find(|b| (span_ms.max(1) + b - 1) / b <= target).unwrap_or(CHOICES[CHOICES.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn iqm_table() {
        // (values, interquartile mean) worked by hand from the rank-interval definition.
        let cases: [(&[f64], f64); 7] = [
            (&[5.0, 8.0, 4.0, 38.0, 8.0, 6.0, 9.0, 7.0, 7.0, 3.0, 1.0, 6.0], 6.5), // n = 12 (Wikipedia)
            (&[1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0], 9.0),             // n = 9, symmetric
            (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0], 5.5),          // n = 10, outlier ignored
            (&[1.0, 2.0, 3.0, 10.0, 20.0], 4.8),                                   // n = 5: (.75·2+3+.75·10)/2.5
            (&[4.0], 4.0),
            (&[2.0, 4.0], 3.0),
            (&[7.0, 7.0, 7.0], 7.0),
        ];
        for (values, want) in cases {
            let s = summarize(values).unwrap();
            assert!(close(s.iqm, want), "iqm of {values:?} = {} not {want}", s.iqm);
        }
    }

    #[test]
    fn summary_table() {
        // (values, mean, median, p90, max)
        let cases: [(&[f64], f64, f64, f64, f64); 4] = [
            (&[1.0, 2.0, 3.0, 4.0], 2.5, 2.5, 3.7, 4.0),
            (&[10.0], 10.0, 10.0, 10.0, 10.0),
            (&[3.0, 1.0, 2.0], 2.0, 2.0, 2.8, 3.0),
            (&[0.5, f64::NAN, 1.5], 1.0, 1.0, 1.4, 1.5),
        ];
        for (values, mean, median, p90, max) in cases {
            let s = summarize(values).unwrap();
            assert!(close(s.mean, mean) && close(s.median, median), "{values:?}: {s:?}");
            assert!(close(s.p90, p90) && close(s.max, max), "{values:?}: {s:?}");
        }
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[f64::INFINITY]), None);
    }

    #[test]
    fn nice_step_table() {
        let cases =
            [(0.7, 1.0), (1.0, 1.0), (1.2, 2.0), (2.1, 2.5), (3.0, 5.0), (7.0, 10.0), (42.0, 50.0), (0.013, 0.02)];
        for (raw, want) in cases {
            assert!(close(nice_step(raw), want), "nice_step({raw}) = {}", nice_step(raw));
        }
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn time_bucket_table() {
        let min = 60_000;
        let cases = [
            (10_000, 40, 1000),
            (30 * min, 40, min),
            (3 * 60 * min, 40, 5 * min),
            (0, 40, 1000),
            (i64::MAX / 2, 40, 7 * 24 * 60 * min),
        ];
        for (span, target, want) in cases {
            assert_eq!(time_bucket_ms(span, target), want, "span {span}");
        }
    }

    #[test]
    fn histogram_bins_and_overflow() {
        let mut values: Vec<f64> = (0..100).map(|i| i as f64 / 10.0).collect(); // 0.0 ..= 9.9
        let h = histogram(&values, 10).unwrap();
        assert_eq!(h.counts.iter().sum::<u64>(), 100);
        assert_eq!(h.edges.len(), h.counts.len() + 1);
        assert!(h.counts.len() <= 10 && !h.overflow, "{h:?}");
        values.push(1000.0);
        values.push(2000.0);
        let h = histogram(&values, 10).unwrap();
        assert_eq!(h.counts.iter().sum::<u64>(), 102);
        assert!(h.overflow && *h.edges.last().unwrap() < 1000.0, "one outlier must not set the scale: {h:?}");
        assert_eq!(histogram(&[], 10), None);
    }
}

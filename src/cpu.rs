//! CPU seconds: measuring them per clip and stage, and summarising them over clips.
//!
//! What each number covers:
//! - a child's CPU is user + system time of the child and of every descendant it waited for, read from the
//!   kernel when the child has exited (`waitid` with `WNOWAIT`, before it is reaped; `tools/process.rs`);
//!   [`measure`] adds up the children a stage ran, and work done in process for it on the task's thread
//!   ([`add_own`]);
//! - the relay runs inside kinetics-dl: a clip's share is the thread CPU time spent polling the relay's
//!   tasks that serve that clip's URLs ([`Metered`]). The upstream connections' own tasks (reqwest's, shared
//!   by every clip) and the scheduler are not split per clip: they show only in the whole process's CPU
//!   ([`Usage`]).

use serde::Serialize;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The stages of a clip whose CPU is recorded, in the order they run.
pub const STAGES: [&str; 4] = ["extract", "fetch", "encode", "verify"];

/// CPU seconds one clip spent in each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageCpu {
    /// yt-dlp turning the page into media URLs.
    pub extract_s: f64,
    /// ffmpeg's stream copy of the window plus the relay's share (or yt-dlp's whole-video download).
    pub fetch_s: f64,
    /// The window's layout (read in process, `tools::mkv`, or by ffprobe where that reader declines) and the
    /// cut.
    pub encode_s: f64,
    /// The finished clip's check: one ffmpeg decode to the end that also reads its streams and duration.
    pub verify_s: f64,
}

impl StageCpu {
    pub fn total_s(&self) -> f64 {
        self.extract_s + self.fetch_s + self.encode_s + self.verify_s
    }

    /// The stages in the order of [`STAGES`].
    pub fn as_array(&self) -> [f64; 4] {
        [self.extract_s, self.fetch_s, self.encode_s, self.verify_s]
    }
}

tokio::task_local! {
    /// Children's CPU (ns) added up by the innermost [`measure`] running in this task.
    static CHILDREN_NS: Cell<u64>;
}

/// Runs `f` and returns what it gives with the CPU time of the children it ran through
/// `tools::process::run` (each reported with [`add_child`]). Not nested: an inner `measure` keeps its own.
pub async fn measure<F: Future>(f: F) -> (F::Output, Duration) {
    CHILDREN_NS
        .scope(Cell::new(0), async {
            let out = f.await;
            (out, Duration::from_nanos(CHILDREN_NS.with(Cell::get)))
        })
        .await
}

/// Adds a finished child's CPU to the [`measure`] running in this task, if any.
pub fn add_child(cpu: Duration) {
    let _ = CHILDREN_NS.try_with(|c| c.set(c.get().saturating_add(cpu.as_nanos() as u64)));
}

/// Adds CPU that kinetics-dl spent on this thread, in a stretch with no `.await`, for the stage the
/// [`measure`] running in this task records (the in-process read of a finished clip, `tools::mp4clip`).
pub fn add_own(cpu: Duration) {
    add_child(cpu);
}

/// The calling thread's CPU time (user + system) so far.
pub fn thread_now() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: plain syscall writing into a local.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A future whose polls' thread CPU time is added to a counter: a task's own CPU, wherever it runs,
/// without what other tasks do on the same threads between its polls.
pub struct Metered<'a, F> {
    inner: Pin<Box<F>>,
    ns: &'a AtomicU64,
}

impl<'a, F: Future> Metered<'a, F> {
    pub fn new(inner: F, ns: &'a AtomicU64) -> Self {
        Metered { inner: Box::pin(inner), ns }
    }
}

impl<F: Future> Future for Metered<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let t0 = thread_now();
        let out = self.inner.as_mut().poll(cx);
        let spent = thread_now().saturating_sub(t0);
        self.ns.fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

/// The whole process's CPU so far: its own threads, and its children that have been reaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub self_s: f64,
    pub children_s: f64,
}

impl Usage {
    pub fn now() -> Usage {
        Usage { self_s: rusage(libc::RUSAGE_SELF), children_s: rusage(libc::RUSAGE_CHILDREN) }
    }

    /// What was spent since `earlier`.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            self_s: (self.self_s - earlier.self_s).max(0.0),
            children_s: (self.children_s - earlier.children_s).max(0.0),
        }
    }
}

fn rusage(who: libc::c_int) -> f64 {
    // SAFETY: plain syscall writing into a zeroed local.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0.0;
    }
    timeval_s(ru.ru_utime) + timeval_s(ru.ru_stime)
}

pub fn timeval_s(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Mean, median and 95th percentile of one stage's CPU over clips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub clips: u64,
    pub mean_s: f64,
    pub median_s: f64,
    pub p95_s: f64,
}

/// CPU per clip by stage over a set of clips, and of the stages together.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PerClip {
    pub extract: Spread,
    pub fetch: Spread,
    pub encode: Spread,
    pub verify: Spread,
    pub total: Spread,
}

impl PerClip {
    /// Summarises clips' stage CPU (clips without a measurement are left out by the caller).
    pub fn of(clips: &[StageCpu]) -> PerClip {
        let stage = |f: fn(&StageCpu) -> f64| spread(&mut clips.iter().map(f).collect::<Vec<_>>());
        PerClip {
            extract: stage(|c| c.extract_s),
            fetch: stage(|c| c.fetch_s),
            encode: stage(|c| c.encode_s),
            verify: stage(|c| c.verify_s),
            total: stage(StageCpu::total_s),
        }
    }

    /// The stages as (name, spread), in the order they run, then the total.
    pub fn rows(&self) -> [(&'static str, &Spread); 5] {
        [
            (STAGES[0], &self.extract),
            (STAGES[1], &self.fetch),
            (STAGES[2], &self.encode),
            (STAGES[3], &self.verify),
            ("total", &self.total),
        ]
    }

    /// Lines for a text summary: `  CPU s per clip ...` then one line a stage; none without clips.
    pub fn lines(&self, indent: &str) -> Vec<String> {
        if self.total.clips == 0 {
            return Vec::new();
        }
        let mut out = vec![format!(
            "{indent}CPU s per clip over {} clips:  {:>7} {:>7} {:>7}",
            self.total.clips, "mean", "median", "p95"
        )];
        for (name, s) in self.rows() {
            out.push(format!("{indent}  {name:<8} {:>7.3} {:>7.3} {:>7.3}", s.mean_s, s.median_s, s.p95_s));
        }
        out
    }
}

/// Mean, median and p95 of values (sorted in place); non-finite values are left out.
pub fn spread(values: &mut Vec<f64>) -> Spread {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return Spread::default();
    }
    values.sort_by(f64::total_cmp);
    Spread {
        clips: values.len() as u64,
        mean_s: values.iter().sum::<f64>() / values.len() as f64,
        median_s: crate::report::stats::quantile(values, 0.5),
        p95_s: crate::report::stats::quantile(values, 0.95),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn spread_table() {
        // (values, mean, median, p95): p95 interpolates between ranks as numpy's default does.
        let table: [(&[f64], f64, f64, f64); 6] = [
            (&[], 0.0, 0.0, 0.0),
            (&[0.7], 0.7, 0.7, 0.7),
            (&[1.0, 3.0], 2.0, 2.0, 2.9),
            (&[3.0, 1.0, 2.0], 2.0, 2.0, 2.9),
            (&[0.1, 0.2, 0.3, 0.4, 10.0], 2.2, 0.3, 8.08),
            (&[1.0, f64::NAN, 2.0, f64::INFINITY], 1.5, 1.5, 1.95),
        ];
        for (values, mean, median, p95) in table {
            let s = spread(&mut values.to_vec());
            let n = values.iter().filter(|v| v.is_finite()).count() as u64;
            assert_eq!(s.clips, n, "{values:?}");
            assert!(close(s.mean_s, mean) && close(s.median_s, median) && close(s.p95_s, p95), "{values:?}: {s:?}");
        }
    }

    #[test]
    fn per_clip_summarises_each_stage_and_the_total() {
        let clip = |e, f, c, v| StageCpu { extract_s: e, fetch_s: f, encode_s: c, verify_s: v };
        let clips = [clip(0.5, 0.1, 1.0, 0.2), clip(0.7, 0.3, 1.2, 0.2), clip(0.6, 0.2, 3.0, 0.2)];
        let p = PerClip::of(&clips);
        assert_eq!(p.total.clips, 3);
        assert!(close(p.extract.median_s, 0.6) && close(p.extract.mean_s, 0.6));
        assert!(close(p.encode.median_s, 1.2) && close(p.encode.p95_s, 1.2 + 1.8 * 0.9));
        assert!(close(p.verify.p95_s, 0.2));
        // The total is summarised per clip (1.8, 2.4, 4.0), not added up from the stages' medians.
        assert!(close(p.total.median_s, 2.4) && close(p.total.mean_s, 8.2 / 3.0));
        assert_eq!(p.rows().map(|r| r.0), ["extract", "fetch", "encode", "verify", "total"]);
        let lines = p.lines("  ");
        assert_eq!(lines.len(), 6);
        assert!(lines[3].contains("encode") && lines[3].contains("1.200"), "{lines:?}");
        assert!(PerClip::of(&[]).lines("").is_empty());
    }

    #[tokio::test]
    async fn measure_adds_what_children_report_in_its_task_only() {
        let (out, cpu) = measure(async {
            add_child(Duration::from_millis(30));
            add_child(Duration::from_millis(12));
            7
        })
        .await;
        assert_eq!((out, cpu), (7, Duration::from_millis(42)));
        // Outside a measure, a report goes nowhere.
        add_child(Duration::from_secs(1));
        let ((), cpu) = measure(async {}).await;
        assert_eq!(cpu, Duration::ZERO);
    }

    #[tokio::test]
    async fn metered_counts_the_polls_cpu() {
        let ns = AtomicU64::new(0);
        let busy = async {
            let mut x = 0u64;
            for i in 0..3_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
            }
            tokio::task::yield_now().await;
            x
        };
        let before = thread_now();
        std::hint::black_box(Metered::new(busy, &ns).await);
        let spent = thread_now() - before;
        let counted = Duration::from_nanos(ns.load(Ordering::Relaxed));
        assert!(counted > Duration::ZERO, "a busy loop used no CPU?");
        assert!(counted <= spent, "{counted:?} counted, {spent:?} spent by the thread");
    }
}

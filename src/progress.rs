//! What the user sees while a download runs: a small trait the run reports through, and its terminal
//! implementation (a progress bar that hides when stderr is not a terminal, leaving its lines, or under
//! `--quiet`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// A finished attempt, as the user sees it.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Done {
        id: &'a str,
        bytes: u64,
    },
    /// Bytes of mirror tarballs downloaded.
    MirrorBytes {
        n: u64,
    },
    /// A mirror tarball was extracted (or failed).
    Tarball {
        name: &'a str,
        ok: bool,
    },
    Failed {
        id: &'a str,
        category: &'a str,
        message: &'a str,
    },
    /// Failed for a passing reason: it will be tried again after `after`.
    Retrying {
        id: &'a str,
        category: &'a str,
        after: Duration,
    },
    /// The clip was already on disk and verified (adopted after a crash).
    Adopted {
        id: &'a str,
    },
}

pub trait Reporter {
    /// `total` clips in the plan, of which `already` need no work.
    fn begin(&mut self, total: u64, already: u64);
    fn event(&mut self, event: Event<'_>);
    /// A line for the user (printed through the bar).
    fn note(&mut self, line: &str);
    /// What the run is waiting for, if it is waiting (shown in the bar's message).
    fn waiting(&mut self, what: Option<String>);
    fn tick(&mut self);
    fn end(&mut self);
}

/// Reports nothing: for tests and `--quiet`.
pub struct Silent;

impl Reporter for Silent {
    fn begin(&mut self, _: u64, _: u64) {}
    fn event(&mut self, _: Event<'_>) {}
    fn note(&mut self, _: &str) {}
    fn waiting(&mut self, _: Option<String>) {}
    fn tick(&mut self) {}
    fn end(&mut self) {}
}

/// How often [`Lines`] says how the run stands.
pub const LINES_EVERY: Duration = Duration::from_secs(60);

/// When stderr is not a terminal (a log file, a pipe, a batch job such as Slurm's): no bar, but the lines for
/// the user still print, one each (a breaker opening and the rate its egress learned, a halt, a lost fleet
/// database), and every [`LINES_EVERY`] a line of how the run stands, while it moves or waits: clips done and
/// failed of the plan, clips a minute, ETA, and what it waits for.
pub struct Lines {
    started: Instant,
    last: Instant,
    total: u64,
    already: u64,
    done: u64,
    failed: u64,
    waiting: Option<String>,
    /// Done and failed at the last line.
    said: (u64, u64),
}

impl Lines {
    pub fn new(now: Instant) -> Lines {
        Lines { started: now, last: now, total: 0, already: 0, done: 0, failed: 0, waiting: None, said: (0, 0) }
    }

    /// The line due at `now`, if one is: [`LINES_EVERY`] after the last, when clips ended since or the run
    /// waits.
    pub fn due(&mut self, now: Instant) -> Option<String> {
        if now.saturating_duration_since(self.last) < LINES_EVERY {
            return None;
        }
        if (self.done, self.failed) == self.said && self.waiting.is_none() {
            return None;
        }
        self.last = now;
        self.said = (self.done, self.failed);
        let ended = self.done + self.failed;
        let minutes = now.saturating_duration_since(self.started).as_secs_f64() / 60.0;
        let per_min = if minutes > 0.0 { ended as f64 / minutes } else { 0.0 };
        let left = self.total.saturating_sub(self.already + ended);
        let mut line = format!(
            "{}/{} clips ({} done, {} failed this run) · {per_min:.1} clips/min",
            self.already + ended,
            self.total,
            self.done,
            self.failed
        );
        if per_min > 0.0 && left > 0 {
            let eta = Duration::from_secs_f64(left as f64 / per_min * 60.0);
            line.push_str(&format!(" · ETA {}", crate::retry::format_duration(eta)));
        }
        if let Some(w) = &self.waiting {
            line.push_str(" · ");
            line.push_str(w);
        }
        Some(line)
    }
}

impl Reporter for Lines {
    fn begin(&mut self, total: u64, already: u64) {
        (self.total, self.already) = (total, already);
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Done { .. } | Event::Adopted { .. } => self.done += 1,
            Event::Failed { .. } => self.failed += 1,
            Event::MirrorBytes { .. } | Event::Tarball { .. } | Event::Retrying { .. } => {}
        }
    }

    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }

    fn waiting(&mut self, what: Option<String>) {
        self.waiting = what;
    }

    fn tick(&mut self) {
        if let Some(line) = self.due(Instant::now()) {
            eprintln!("{line}");
        }
    }

    fn end(&mut self) {}
}

/// The terminal bar: done / failed / remaining, clips per minute, ETA.
pub struct Bar {
    bar: ProgressBar,
    started: Instant,
    done: u64,
    failed: u64,
    already: u64,
    bytes: u64,
    tarballs: u64,
    waiting: Option<String>,
}

impl Bar {
    pub fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(5));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Bar { bar, started: Instant::now(), done: 0, failed: 0, already: 0, bytes: 0, tarballs: 0, waiting: None }
    }

    fn refresh(&self) {
        let minutes = self.started.elapsed().as_secs_f64() / 60.0;
        let rate = if minutes > 0.0 { self.done as f64 / minutes } else { 0.0 };
        let mut msg = format!(
            "done {} failed {} left {} · {:.1} clips/min · {}",
            self.done + self.already,
            self.failed,
            self.bar.length().unwrap_or(0).saturating_sub(self.bar.position()),
            rate,
            crate::units::human_bytes(self.bytes)
        );
        if self.tarballs > 0 {
            msg.push_str(&format!(" · {} tarballs", self.tarballs));
        }
        if let Some(w) = &self.waiting {
            msg.push_str(" · ");
            msg.push_str(w);
        }
        self.bar.set_message(msg);
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Bar {
    fn begin(&mut self, total: u64, already: u64) {
        self.already = already;
        self.bar.set_length(total);
        self.bar.set_position(already);
        self.bar.reset_eta();
        self.started = Instant::now();
        self.bar.enable_steady_tick(Duration::from_millis(200));
        self.refresh();
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Done { bytes, .. } => {
                self.done += 1;
                self.bytes += bytes;
                self.bar.inc(1);
            }
            Event::Adopted { .. } => {
                self.done += 1;
                self.bar.inc(1);
            }
            Event::Failed { id, category, message } => {
                self.failed += 1;
                self.bar.inc(1);
                tracing::info!("{id}: {category}: {message}");
            }
            Event::MirrorBytes { n } => self.bytes += n,
            Event::Tarball { name, ok } => {
                self.tarballs += u64::from(ok);
                tracing::info!("tarball {name} {}", if ok { "extracted" } else { "failed" });
            }
            Event::Retrying { id, category, after } => {
                tracing::info!("{id}: {category}, retrying in {}", crate::retry::format_duration(after));
            }
        }
        self.refresh();
    }

    fn note(&mut self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn waiting(&mut self, what: Option<String>) {
        self.waiting = what;
        self.refresh();
    }

    fn tick(&mut self) {
        self.refresh();
    }

    fn end(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line every minute while clips end or the run waits; none while nothing moves, or before the minute.
    #[test]
    fn lines_say_how_the_run_stands_every_minute() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut lines = Lines::new(t0);
        lines.begin(100, 10);
        for _ in 0..8 {
            lines.event(Event::Done { id: "a", bytes: 1 });
        }
        lines.event(Event::Failed { id: "b", category: "unavailable", message: "gone" });
        lines.event(Event::Retrying { id: "c", category: "network", after: Duration::from_secs(5) });
        assert_eq!(lines.due(at(59)), None, "not before the minute");
        // 9 clips in 1 minute: 81 left, 9 a minute, 9 minutes.
        let want = "19/100 clips (8 done, 1 failed this run) · 9.0 clips/min · ETA 9m";
        assert_eq!(lines.due(at(60)).as_deref(), Some(want));
        assert_eq!(lines.due(at(90)), None, "a minute after the last");
        assert_eq!(lines.due(at(130)), None, "nothing moved");
        lines.waiting(Some("throttled: 127.0.0.2 resumes in 5m".into()));
        let waiting = lines.due(at(131)).expect("the run waits");
        assert!(waiting.ends_with(" · throttled: 127.0.0.2 resumes in 5m"), "{waiting}");
        lines.waiting(None);
        for _ in 0..81 {
            lines.event(Event::Adopted { id: "d" });
        }
        let end = lines.due(at(200)).expect("clips ended");
        assert!(end.starts_with("100/100 clips (89 done, 1 failed this run)") && !end.contains("ETA"), "{end}");
    }
}

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

/// When stderr is not a terminal (a log file, a pipe, a batch job): no bar, but the lines for the user still
/// print, one each (a breaker opening and the rate its egress learned, a halt, a lost fleet database).
pub struct Lines;

impl Reporter for Lines {
    fn begin(&mut self, _: u64, _: u64) {}
    fn event(&mut self, _: Event<'_>) {}
    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn waiting(&mut self, _: Option<String>) {}
    fn tick(&mut self) {}
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

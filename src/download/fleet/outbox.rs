//! What a worker tells the fleet about each clip it worked on, and what it does while the database is away:
//! it stops claiming, lets running clips finish (each is already in the local journal), keeps their reports
//! here in order, reconnects with backoff and then delivers them. Completions stay fenced, so a report whose
//! lease expired meanwhile changes nothing and the record stays exactly-once.

use super::report::{Offline, Report};
use super::FleetStore;
use crate::classify::Category;
use crate::fleet::{is_connection_error, Completion};
use crate::progress::{Event, Reporter};
use crate::summary::Summary;
use std::time::{Duration, Instant};

/// The longest wait between two reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl FleetStore<'_> {
    /// `Ok(None)` when the connection failed (the worker goes offline); the error when the statement did.
    pub(super) fn online<T>(
        &mut self,
        result: anyhow::Result<T>,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) if is_connection_error(&e) => {
                if self.offline.is_none() {
                    tracing::info!("lost the fleet database ({e:#}); not claiming until it is back");
                    reporter.note(&format!("lost the fleet database ({e:#}); not claiming until it is back"));
                    let now = Instant::now();
                    self.offline = Some(Offline { since: now, next_try: now + Duration::from_millis(200), tries: 0 });
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `report` now, or keeps it for later while the database is away.
    pub(super) async fn report(
        &mut self,
        report: Report,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        if self.offline.is_some() || !self.outbox.is_empty() {
            self.outbox.push_back(report);
            return Ok(());
        }
        if let Some(report) = self.send(report, summary, reporter).await? {
            self.outbox.push_back(report);
        }
        Ok(())
    }

    /// Delivers one report; gives it back when the connection failed.
    async fn send(
        &mut self,
        report: Report,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<Option<Report>> {
        let result = match &report {
            Report::Done { key, token, sha256, done, .. } => {
                let location = format!("worker:{}", self.id);
                let c = Completion {
                    location: &location,
                    bytes_fetched: done.bytes_fetched,
                    size_bytes: done.size_bytes,
                    sha256,
                };
                self.db.complete(key, *token, &self.id, &c).await.map(|ok| ok.then_some("done"))
            }
            Report::GiveBack { key, token } => self.db.give_back(key, *token).await.map(|_| None),
            Report::Failed { key, token, retry_after, category, message, bytes_fetched } => {
                self.db.fail(key, *token, *retry_after, category.as_str(), message, *bytes_fetched).await.map(|_| None)
            }
            Report::GeoBlocked { key, token, message, .. } => {
                let state = self.db.geo_block(key, *token, &self.opts.region, message).await;
                state.map(|s| (s.as_deref() == Some("failed")).then_some("failed"))
            }
        };
        let Some(answer) = self.online(result, reporter)? else { return Ok(Some(report)) };
        match (&report, answer) {
            (Report::Done { done, youtube_id, .. }, Some(_)) => {
                summary.add_done(done);
                reporter.event(Event::Done { id: youtube_id, bytes: done.bytes_fetched });
            }
            (Report::Done { key, .. }, None) => reporter
                .note(&format!("{key}: made here after its lease was lost; the fleet keeps the other worker's copy")),
            (Report::GeoBlocked { youtube_id, message, .. }, Some(_)) => {
                let category = Category::GeoBlocked.as_str();
                *summary.failed.entry(category.to_string()).or_default() += 1;
                reporter.event(Event::Failed { id: youtube_id, category, message });
            }
            _ => {}
        }
        Ok(None)
    }

    /// While offline: reconnects when due, then delivers the outbox in order. True when it came back.
    pub(super) async fn try_reconnect(
        &mut self,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<bool> {
        let Some(off) = self.offline else { return Ok(false) };
        if Instant::now() < off.next_try {
            return Ok(false);
        }
        if let Err(e) = self.db.reconnect().await {
            let tries = off.tries + 1;
            let backoff = Duration::from_millis(200).saturating_mul(1 << tries.min(8)).min(MAX_BACKOFF);
            let next_try = Instant::now() + backoff.mul_f64(0.75 + 0.5 * fastrand::f64());
            self.offline = Some(Offline { next_try, tries, ..off });
            tracing::info!(tries, "the fleet database is still away: {e:#}");
            return Ok(false);
        }
        self.offline = None;
        let waiting = self.outbox.len();
        tracing::info!(waiting, "the fleet database is back");
        reporter.note(&format!(
            "the fleet database is back after {}; delivering {waiting} outcomes kept meanwhile",
            crate::retry::format_duration(off.since.elapsed())
        ));
        while let Some(report) = self.outbox.pop_front() {
            if let Some(report) = self.send(report, summary, reporter).await? {
                self.outbox.push_front(report);
                break;
            }
        }
        Ok(self.offline.is_none())
    }
}

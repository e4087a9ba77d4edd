//! What every worker of one mirror fetch shares: the configuration, the client, the claims on wanted
//! clips, the counters, the stop and the first fatal error.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch, Semaphore};

use super::claims::Claims;
use super::lists::Tarball;
use super::report::{Counters, DiskMeter, MirrorEvent};
use super::source::MirrorConfig;
use super::types::TarballFailure;
use super::verify::Verifier;

/// What every worker of one fetch shares.
pub(crate) struct Shared {
    pub cfg: MirrorConfig,
    pub client: reqwest::Client,
    pub events: mpsc::UnboundedSender<MirrorEvent>,
    pub claims: Claims,
    pub counters: Counters,
    pub meter: DiskMeter,
    /// Numbers temp files.
    pub seq: AtomicU64,
    /// The caller's stop, or a fatal error here.
    pub stop: watch::Receiver<bool>,
    pub verifier: Verifier,
    pub verify_slots: Arc<Semaphore>,
    /// Open once K400's replacement tarball is done: train parts extract only after it.
    pub replacement_done: watch::Sender<bool>,
    /// Stops every worker (the caller's stop is forwarded into it).
    pub(super) abort: watch::Sender<bool>,
    /// The first fatal error, returned by the fetch.
    pub(super) fatal: Mutex<Option<anyhow::Error>>,
}

impl Shared {
    /// Reports a failed tarball, or stops everything for a fatal error.
    pub fn fail(&self, t: &Tarball, failure: TarballFailure) {
        match failure {
            TarballFailure::Tarball(message) => {
                tracing::warn!(tarball = %t.name, "tarball failed: {message}");
                Counters::bump(&self.counters.tarballs_failed, 1);
                let _ = self.events.send(MirrorEvent::TarballFailed { name: t.name.clone(), message });
            }
            TarballFailure::Fatal(e) => self.fatal(e),
        }
    }

    /// Records the first fatal error and stops every worker.
    pub fn fatal(&self, e: anyhow::Error) {
        tracing::error!("mirror fetch stopping: {e:#}");
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
        self.abort.send_replace(true);
    }
}

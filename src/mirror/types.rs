//! The plain types the stages of the mirror pipeline (download → unpack → verify → place) share.

use std::path::Path;

use tokio::sync::watch;

/// Why a tarball did not finish.
pub(crate) enum TarballFailure {
    /// This tarball only: report it and go on with the others.
    Tarball(String),
    /// The machine: stop everything and return the error.
    Fatal(anyhow::Error),
}

impl TarballFailure {
    pub fn local(e: std::io::Error, path: &Path) -> TarballFailure {
        TarballFailure::Fatal(anyhow::Error::new(e).context(format!("failed to write {}", path.display())))
    }
}

/// Resolves once `stop` turns true; never if its sender is gone without doing so.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

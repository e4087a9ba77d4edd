//! The process exit codes, in one place, and the mark that makes an error the user's to fix.
//!
//! `commands::exit_code` turns a command's error into a code: [`USAGE`] when the error (or any error it
//! wraps) is the user's to fix, [`FAILED`] otherwise.

/// Every clip is done or failed for a permanent reason.
pub const SUCCESS: i32 = 0;
/// The command failed at run time for a reason outside the user's input (a disk full, an I/O error, a
/// journal that cannot be written): the error says why. (`diff` uses 1 for "the datasets differ", as diff(1)
/// does, and 2 for any error.)
pub const FAILED: i32 = 1;
/// Bad usage, bad input, or a broken environment (yt-dlp/ffmpeg missing, another run holding OUT, no
/// journal where one is needed): nothing was downloaded for it.
pub const USAGE: i32 = 2;
/// Clips remain pending or failed for a retryable reason: rerun the same command to resume.
pub const INCOMPLETE: i32 = 3;
/// Interrupted by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// An error the user must fix before anything can run (exit [`USAGE`]); its message is the wrapped error's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Usage(#[from] pub anyhow::Error);

/// Marks a result's error as the user's to fix.
pub trait UsageExt<T> {
    fn or_usage(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> UsageExt<T> for Result<T, E> {
    fn or_usage(self) -> anyhow::Result<T> {
        self.map_err(|e| Usage(e.into()).into())
    }
}

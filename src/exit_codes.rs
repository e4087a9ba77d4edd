//! The process exit codes, in one place.

/// Every clip is done or failed for a permanent reason.
pub const SUCCESS: i32 = 0;
/// Bad usage, bad input, or a broken environment (yt-dlp/ffmpeg missing): nothing was downloaded for it.
pub const USAGE: i32 = 2;
/// Clips remain pending or failed for a retryable reason: rerun the same command to resume.
pub const INCOMPLETE: i32 = 3;
/// Interrupted by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

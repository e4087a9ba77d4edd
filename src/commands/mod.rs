//! The subcommands: each takes the domain's options (never clap's), does its work through the domain's
//! modules and returns the process exit code; `app.rs` dispatches. [`exit_code`] is the one place where a
//! command's error becomes an exit code.

pub mod doctor;
pub mod download;
pub mod export;
pub mod manifest;
pub mod merge;
pub mod report;
pub mod status;
pub mod verify;

use crate::exit_codes::{self, Usage};

/// The exit code for a command that ended with `error`: [`exit_codes::USAGE`] when the error, or any error
/// it wraps, is the user's to fix (bad input, no journal where one is needed, a tool missing, another run
/// holding OUT, a path that cannot be exported); [`exit_codes::FAILED`] for anything else (an I/O error, a
/// full disk, a journal that cannot be written).
pub fn exit_code(error: &anyhow::Error) -> i32 {
    let theirs = error.chain().any(|cause| {
        cause.is::<Usage>()
            || cause.is::<crate::annotations::InputError>()
            || cause.is::<crate::download::EnvironmentError>()
            || cause.is::<crate::verify::ToolsBroken>()
            || cause.is::<crate::export::lists::Unexportable>()
            || matches!(cause.downcast_ref(), Some(crate::journal::read::OpenError::NoJournal(_)))
    });
    if theirs {
        exit_codes::USAGE
    } else {
        exit_codes::FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_codes::UsageExt;
    use anyhow::Context;

    #[test]
    fn errors_map_to_codes() {
        let io = || std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let no_journal = || crate::journal::read::OpenError::NoJournal("/data/k400".into());
        let cases: Vec<(&str, anyhow::Error, i32)> = vec![
            ("a full disk", anyhow::Error::new(io()), exit_codes::FAILED),
            ("a full disk, with context", Err::<(), _>(io()).context("failed to write report.html").unwrap_err(), 1),
            ("no journal", no_journal().into(), exit_codes::USAGE),
            ("no journal, with context", Err::<(), _>(no_journal()).context("report").unwrap_err(), 2),
            ("marked usage", Err::<(), _>(io()).or_usage().unwrap_err(), 2),
            ("marked usage, then context", Err::<(), _>(io()).or_usage().context("opening OUT").unwrap_err(), 2),
            ("a broken tool", crate::download::EnvironmentError("yt-dlp: not found".into()).into(), 2),
            ("ffprobe broken", crate::verify::ToolsBroken("ffprobe: not found".into()).into(), 2),
            ("unexportable", crate::export::lists::Unexportable("a space in a path".into()).into(), 2),
            ("a journal that cannot be opened", anyhow::anyhow!("database disk image is malformed"), 1),
        ];
        for (what, error, code) in cases {
            assert_eq!(exit_code(&error), code, "{what}: {error:#}");
        }
    }

    #[test]
    fn usage_keeps_the_message() {
        let e = Err::<(), _>(anyhow::anyhow!("another kinetics-dl (pid 7) is already working in /d")).or_usage();
        assert_eq!(format!("{:#}", e.unwrap_err()), "another kinetics-dl (pid 7) is already working in /d");
    }
}

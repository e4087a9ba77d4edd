//! `kinetics-dl verify`: checks every done clip again and sends broken ones back to pending.

use crate::exit_codes::{self, UsageExt};
use crate::journal::read::{self, OpenError};
use crate::outdir::OutDir;
use crate::tools::ffmpeg::Ffmpeg;
use crate::verify::{render, verify, VerifyOptions};

/// Verifies OUT. Returns 0 when every done clip is good, 3 when some went back to pending.
pub fn run(args: &VerifyOptions) -> anyhow::Result<i32> {
    if !read::journal_path(&args.out).is_file() {
        return Err(OpenError::NoJournal(args.out.display().to_string()).into());
    }
    // Holding the output folder's lock keeps a download from writing the same rows meanwhile.
    let _lock = OutDir::open(&args.out).or_usage()?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ffmpeg = Ffmpeg { ffmpeg: args.ffmpeg.clone(), ffprobe: args.ffprobe.clone() };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let outcome = rt.block_on(verify(&args.out, &ffmpeg, args.jobs.unwrap_or(cores).max(1)))?;
    print!("{}", render(&outcome, &args.out));
    Ok(if outcome.broken.is_empty() { exit_codes::SUCCESS } else { exit_codes::INCOMPLETE })
}

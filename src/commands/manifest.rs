//! `kinetics-dl manifest` (what a dataset holds, as a file others can compare against) and `kinetics-dl diff`.

use crate::exit_codes;
use crate::manifest::{build, diff, DiffOptions, ManifestOptions, DEFAULT_FILE, DIFFERENT};
use std::io::Write;
use std::path::PathBuf;

/// Writes OUT's manifest; returns the exit code.
pub fn run(args: &ManifestOptions) -> anyhow::Result<i32> {
    let dest = args.output.clone().unwrap_or_else(|| args.out.join(DEFAULT_FILE));
    let (c, fingerprint) = build::build_and_write(&args.out, &dest)?;
    eprintln!(
        "wrote {}: {} clips ({} done, {} failed, {} pending), fingerprint {}",
        dest.display(),
        c.total,
        c.done,
        c.failed,
        c.pending,
        fingerprint
    );
    if c.broken > 0 {
        eprintln!(
            "warning: {} clips are marked done but their files are missing or resized; run `kinetics-dl verify --out {}`",
            c.broken,
            args.out.display()
        );
    }
    Ok(exit_codes::SUCCESS)
}

/// Compares two datasets. Returns 0 when they hold the same clips with the same bytes, [`DIFFERENT`]
/// otherwise. Any error is exit 2, as for diff(1), since 1 already means "different".
pub fn run_diff(args: &DiffOptions) -> i32 {
    match compare(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_codes::USAGE
        }
    }
}

fn compare(args: &DiffOptions) -> anyhow::Result<i32> {
    let load = |p: &PathBuf| diff::load_side(p);
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let d = diff::diff(&a, &args.a.display().to_string(), &b, &args.b.display().to_string());
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&d)?)?;
    } else {
        write!(out, "{}", diff::render(&d))?;
    }
    Ok(if d.identical { exit_codes::SUCCESS } else { DIFFERENT })
}

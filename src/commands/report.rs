//! `kinetics-dl report`: writes `OUT/report.html` and, with `--json`, prints the report's numbers.

use crate::exit_codes;
use crate::exit_codes::UsageExt;
use crate::fleet::FleetRef;
use crate::report::{self, ReportOptions};
use std::io::Write;

/// Writes the page (and prints JSON with `--json`); returns the exit code.
pub fn run(args: &ReportOptions) -> anyhow::Result<i32> {
    if let Some(f) = &args.fleet {
        return run_fleet(f, args);
    }
    let data = report::data::gather(&args.out)?;
    let path = report::write_page(&data, &args.out)?;
    done(&path, &data, args.json)
}

/// After the page is written: its numbers as JSON on stdout with `--json`, else where it went.
fn done(path: &std::path::Path, data: &impl serde::Serialize, json: bool) -> anyhow::Result<i32> {
    if json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string_pretty(data)?)?;
    } else {
        eprintln!("wrote {}", path.display());
    }
    Ok(exit_codes::SUCCESS)
}

/// The fleet's page from its database, written into `--out`.
fn run_fleet(f: &FleetRef, args: &ReportOptions) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, history) = rt.block_on(async {
        let db = f.open().await.or_usage()?;
        anyhow::Ok((db.status().await?, db.history().await?))
    })?;
    let data = report::fleet::FleetReport::new(status, history);
    std::fs::create_dir_all(&args.out)?;
    let path = report::write_fleet_page(&data, &args.out)?;
    done(&path, &data, args.json)
}

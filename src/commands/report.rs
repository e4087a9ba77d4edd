//! `kinetics-dl report`: writes `OUT/report.html` and, with `--json`, prints the report's numbers.

use crate::exit_codes;
use crate::report::{self, ReportOptions};
use std::io::Write;

/// Writes the page (and prints JSON with `--json`); returns the exit code.
pub fn run(args: &ReportOptions) -> anyhow::Result<i32> {
    let data = report::data::gather(&args.out)?;
    let path = report::write_page(&data, &args.out)?;
    if args.json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string_pretty(&data)?)?;
    } else {
        eprintln!("wrote {}", path.display());
    }
    Ok(exit_codes::SUCCESS)
}

//! `kinetics-dl doctor`: checks the machine before a long run.

use crate::doctor::{self, DoctorOptions};
use crate::exit_codes;
use std::path::Path;

/// Prints the checks; exit 2 when one fails.
pub fn run(out: Option<&Path>, opts: &DoctorOptions) -> i32 {
    let report = doctor::run_with(out, opts);
    print!("{report}");
    if report.has_failures() {
        exit_codes::USAGE
    } else {
        exit_codes::SUCCESS
    }
}

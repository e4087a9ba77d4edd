//! The `kinetics-dl` binary: parse the command line, hand over to the library, exit with its code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = kinetics_dl::cli::Cli::parse();
    ExitCode::from(kinetics_dl::app::run(cli) as u8)
}

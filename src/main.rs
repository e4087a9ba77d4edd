//! The `kinetics-dl` binary: parse the command line, hand over to the library, map the result to an exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = kinetics_dl::cli::Cli::parse();
    match kinetics_dl::app::run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(kinetics_dl::exit_codes::USAGE as u8)
        }
    }
}

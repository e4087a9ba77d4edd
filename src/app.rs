//! Command dispatch: what `main` calls once the command line is parsed.

use crate::cli::{Cli, Command};
use crate::commands;
use crate::exit_codes;

/// Runs a parsed command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    init_tracing(cli.verbose);
    match cli.command {
        Command::Download(args) => {
            let cfg = match args.into_config() {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(exit_codes::USAGE);
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(commands::download::run(cfg))
        }
        Command::Status(args) => commands::status::run(&args.out, args.json),
        Command::Report(args) => crate::report::run(&args.into()),
        Command::Export(args) => crate::export::run(&args.into()),
        Command::Manifest(args) => crate::manifest::run(&args.into()),
        Command::Diff(args) => crate::manifest::run_diff(&args.into()),
        Command::Verify(args) => crate::verify::run(&args.into()),
        Command::Doctor(args) => {
            let opts = crate::doctor::DoctorOptions {
                yt_dlp: args.ytdlp,
                ffmpeg: args.ffmpeg,
                ffprobe: args.ffprobe,
                ..Default::default()
            };
            let report = crate::doctor::run_with(args.out.as_deref(), &opts);
            print!("{report}");
            Ok(if report.has_failures() { exit_codes::USAGE } else { exit_codes::SUCCESS })
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "kinetics_dl=info",
        _ => "kinetics_dl=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

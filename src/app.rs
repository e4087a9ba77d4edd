//! Command dispatch: what `main` calls once the command line is parsed.

use crate::cli::{Cli, Command};
use crate::commands;
use crate::exit_codes;

/// Runs a parsed command and returns the process exit code; an error is printed here, once, and mapped to
/// its code by [`commands::exit_code`].
pub fn run(cli: Cli) -> i32 {
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Download(args) => match args.into_config() {
            Ok(cfg) => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(commands::download::run(cfg))),
            Err(e) => Err(exit_codes::Usage(e).into()),
        },
        Command::Status(args) => match (args.out, args.fleet.into_ref()) {
            (Some(out), _) => commands::status::run(&out, args.json),
            (None, Some(fleet)) => commands::status::run_fleet(&fleet, args.json),
            (None, None) => {
                Err(exit_codes::Usage(anyhow::anyhow!("status needs --out DIR or --db URL --fleet NAME")).into())
            }
        },
        Command::Report(args) => commands::report::run(&args.into()),
        Command::Export(args) => commands::export::run(&args.into()),
        Command::Manifest(args) => commands::manifest::run(&args.into()),
        Command::Diff(args) => Ok(commands::manifest::run_diff(&args.into())),
        Command::Verify(args) => commands::verify::run(&args.into()),
        Command::Merge(args) => commands::merge::run(&args.into()),
        Command::Doctor(args) => {
            let opts = crate::doctor::DoctorOptions {
                yt_dlp: args.ytdlp,
                ffmpeg: args.ffmpeg,
                ffprobe: args.ffprobe,
                ytdlp_python: args.ytdlp_python,
                ..Default::default()
            };
            Ok(commands::doctor::run(args.out.as_deref(), &opts))
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        commands::exit_code(&e)
    })
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

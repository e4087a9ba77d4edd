//! Command dispatch: what `main` calls once the command line is parsed.

use crate::cli::{Cli, Command, StatusArgs};
use crate::config::Config;
use crate::exit_codes;
use crate::journal::Journal;
use crate::progress::{Bar, Reporter, Silent};
use std::io::{IsTerminal, Write};
use tokio::sync::watch;

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
            rt.block_on(download(cfg))
        }
        Command::Status(args) => status(&args),
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

async fn download(cfg: Config) -> anyhow::Result<i32> {
    let quiet = cfg.quiet;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(watch_signals(stop_tx));
    let mut reporter: Box<dyn Reporter> =
        if quiet || !std::io::stderr().is_terminal() { Box::new(Silent) } else { Box::new(Bar::new()) };
    let interrupted = stop_rx.clone();
    match crate::download::run(cfg, reporter.as_mut(), stop_rx).await {
        Ok(result) => {
            if !quiet {
                eprint!("{}", result.summary);
            }
            if let Some(env) = &result.summary.environment {
                eprintln!("error: {env}");
            }
            Ok(result.exit_code)
        }
        // Ctrl-C before the first clip started (during the tool checks, say): nothing to save.
        Err(_) if *interrupted.borrow() => Ok(exit_codes::INTERRUPTED),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(exit_codes::USAGE)
        }
    }
}

/// First Ctrl-C (or SIGTERM): stop scheduling and end children cleanly. Second: exit at once; children
/// die with us through their parent-death signal.
async fn watch_signals(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return;
    };
    for press in 0.. {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if press == 0 {
            eprintln!("\nstopping: ending running clips and saving state (press Ctrl-C again to quit at once)");
            let _ = stop.send(true);
        } else {
            crate::tools::process::kill_all();
            let _ = std::io::stderr().flush();
            std::process::exit(exit_codes::INTERRUPTED);
        }
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<i32> {
    let journal = match Journal::open_existing(&args.out) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit_codes::USAGE);
        }
    };
    let counts = journal.counts()?;
    let last = journal.last_run()?;
    let egresses = egress_report(&journal)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(&counts)?;
        if let Some((started, finished, ytdlp, ffmpeg)) = last {
            v["last_run"] = serde_json::json!({
                "started_ms": started, "finished_ms": finished, "ytdlp_version": ytdlp, "ffmpeg_version": ffmpeg,
            });
        }
        v["egresses"] = serde_json::to_value(&egresses)?;
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(exit_codes::SUCCESS);
    }
    writeln!(out, "{}", args.out.display())?;
    writeln!(out, "  clips     {:>8}", counts.total)?;
    writeln!(out, "  done      {:>8}", counts.done)?;
    for (source, n) in &counts.by_source {
        writeln!(out, "    from {source:<15} {n:>6}")?;
    }
    writeln!(out, "  pending   {:>8}", counts.pending)?;
    writeln!(out, "  failed    {:>8}", counts.failed_total())?;
    let mut failed: Vec<_> = counts.failed.iter().collect();
    failed.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (category, n) in failed {
        writeln!(out, "    {category:<20} {n:>6}")?;
    }
    writeln!(
        out,
        "  on disk   {} ({} fetched, {} whole-video fallbacks)",
        crate::summary::human_bytes(counts.bytes_on_disk),
        crate::summary::human_bytes(counts.bytes_fetched),
        counts.whole_video_fallbacks
    )?;
    for e in &egresses {
        let state = match &e.open_until {
            Some(t) => format!("cooling down until {t}"),
            None => "open for work".to_string(),
        };
        writeln!(
            out,
            "  egress {:<22} {state}; {} throttle signals, {} requests into bans",
            e.egress, e.throttle_events, e.wasted
        )?;
    }
    if let Some((_, _, ytdlp, ffmpeg)) = last {
        writeln!(out, "  last run with yt-dlp {} and {}", ytdlp.unwrap_or_default(), ffmpeg.unwrap_or_default())?;
    }
    Ok(exit_codes::SUCCESS)
}

/// An egress's breaker as `status` shows it.
#[derive(serde::Serialize)]
struct EgressReport {
    egress: String,
    /// RFC 3339 time the cool-off ends, when it is still running.
    open_until: Option<String>,
    cooloff_s: f64,
    throttle_events: i64,
    wasted: i64,
}

fn egress_report(journal: &Journal) -> anyhow::Result<Vec<EgressReport>> {
    let now = crate::journal::now_ms();
    let counts = journal.throttle_counts()?;
    Ok(journal
        .egress_states()?
        .into_iter()
        .map(|(egress, until, cooloff_ms)| {
            let (events, wasted) = counts.iter().find(|c| c.0 == egress).map(|c| (c.1, c.2)).unwrap_or((0, 0));
            let open_until = until.filter(|u| *u > now).map(|u| {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u as u64);
                humantime::format_rfc3339_seconds(t).to_string()
            });
            EgressReport { egress, open_until, cooloff_s: cooloff_ms as f64 / 1000.0, throttle_events: events, wasted }
        })
        .collect())
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

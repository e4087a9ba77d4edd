//! `kinetics-dl download`: the run with what only the binary does around it (the bar, the summary, signals).

use crate::config::Config;
use crate::exit_codes;
use crate::progress::{Bar, Lines, Reporter, Silent};
use std::io::{IsTerminal, Write};
use tokio::sync::watch;

/// Runs a download with a progress bar (not a terminal: its lines alone; quiet: nothing) and the Ctrl-C
/// escalation; returns the exit code.
pub async fn run(cfg: Config) -> anyhow::Result<i32> {
    let quiet = cfg.quiet;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(watch_signals(stop_tx));
    let mut reporter: Box<dyn Reporter> = match (quiet, std::io::stderr().is_terminal()) {
        (true, _) => Box::new(Silent),
        (false, false) => Box::new(Lines::new(std::time::Instant::now())),
        (false, true) => Box::new(Bar::new()),
    };
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
        Err(e) => Err(e),
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

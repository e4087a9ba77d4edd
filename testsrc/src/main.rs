//! The `kinetics-testsrc` binary: serve the test source until a signal or the end of stdin.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kinetics_testsrc::{Behaviour, Config, ScenarioEntry};

/// Local stand-in for YouTube: synthetic self-describing videos over HTTP with Range support,
/// scripted failures, bandwidth caps and YouTube-like throttling.
#[derive(Debug, Parser)]
#[command(name = "kinetics-testsrc", version, after_help = ROUTES)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// JSON config file; the flags below override its fields.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the generated videos.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Global bandwidth cap in bytes per second shared by all connections (0 = none).
    #[arg(long, value_name = "BYTES")]
    bandwidth: Option<u64>,
    /// Throttle open-ended ranges with more than --throttle-threshold bytes left, like YouTube.
    #[arg(long)]
    open_range_throttle: bool,
    /// Remaining size above which open-ended ranges are throttled.
    #[arg(long, value_name = "BYTES", requires = "open_range_throttle")]
    throttle_threshold: Option<u64>,
    /// Rate for throttled open-ended ranges, in bytes per second.
    #[arg(long, value_name = "BYTES", requires = "open_range_throttle")]
    throttle_rate: Option<u64>,
    /// Ban a client IP with 429s after more than this many video requests in the window.
    #[arg(long, value_name = "B")]
    throttle_requests: Option<u32>,
    /// Window of the per-IP request count, in seconds.
    #[arg(long, value_name = "S", requires = "throttle_requests")]
    throttle_window: Option<f64>,
    /// Length of a per-IP ban, in seconds.
    #[arg(long, value_name = "S", requires = "throttle_requests")]
    throttle_ban: Option<f64>,
    /// Requests during a ban restart it.
    #[arg(long, requires = "throttle_requests")]
    throttle_extend_ban: bool,
    /// A ban's 429s say no Retry-After (YouTube's watch page mostly does not).
    #[arg(long, requires = "throttle_requests")]
    throttle_no_retry_after: bool,
    /// Refuse DASH media to this client IP past its first --dash-token-window bytes (403), like YouTube's
    /// URLs without a proof-of-origin token; repeatable.
    #[arg(long, value_name = "IP")]
    dash_token_ip: Vec<std::net::IpAddr>,
    /// Bytes of each DASH file served to a --dash-token-ip client before its 403s.
    #[arg(long, value_name = "BYTES", requires = "dash_token_ip")]
    dash_token_window: Option<u64>,
    /// Directory served under /files/.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Duration of the default video profile, in seconds.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Script one id, e.g. `--scenario abc=status:404` or `--scenario xyz=fail_then_ok:503:2`.
    #[arg(long, value_name = "ID=BEHAVIOUR", value_parser = parse_scenario)]
    scenario: Vec<(String, Behaviour)>,
    /// Exit when stdin reaches end of file (for parents that may die without signalling).
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// Print one line per finished request to stderr.
    #[arg(short, long)]
    verbose: bool,
}

/// What the server answers, shown after the options in `--help`.
const ROUTES: &str = "\
Routes (every /watch and /v/ request counts for --scenario, the per-IP throttle and /_stats):
  /watch?v={id}        watch page listing every format in one response, as YouTube's player response
                       does: the manifest below with /v/{id}.mp4 added as format 18 (a DASH manifest is
                       what yt-dlp's generic extractor reads formats from without a second request)
  /v/{id}.mp4          progressive MP4 with video and audio, like YouTube's itag 18
  /v/{id}.mpd          DASH on-demand manifest (application/dash+xml) naming the two tracks below
  /v/{id}/video.mp4    video-only fragmented MP4 (ftyp, moov, sidx, moof/mdat...)
  /v/{id}/audio.m4a    audio-only fragmented MP4, when the profile has audio
  /files/{path}        files under --static
  /_stats              counters and the request log as JSON
Media and files honour Range; ids are [A-Za-z0-9_-]{1,64}.";

fn parse_scenario(s: &str) -> Result<(String, Behaviour), String> {
    let (id, behaviour) = s.split_once('=').ok_or("expected ID=BEHAVIOUR")?;
    Ok((id.to_owned(), behaviour.parse()?))
}

impl Cli {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => {
                Config::from_json_file(path).with_context(|| format!("failed to read config {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(dir) = self.cache {
            config.cache_dir = dir;
        }
        if let Some(bytes) = self.bandwidth {
            config.bandwidth = bytes;
        }
        let orl = &mut config.open_range_throttle;
        orl.enabled |= self.open_range_throttle;
        orl.threshold = self.throttle_threshold.unwrap_or(orl.threshold);
        orl.rate = self.throttle_rate.unwrap_or(orl.rate);
        if let Some(max) = self.throttle_requests {
            let ip = &mut config.ip_throttle;
            ip.enabled = true;
            ip.max_requests = max;
            ip.window_secs = self.throttle_window.unwrap_or(ip.window_secs);
            ip.ban_secs = self.throttle_ban.unwrap_or(ip.ban_secs);
            ip.extend_ban |= self.throttle_extend_ban;
            ip.unsaid |= self.throttle_no_retry_after;
        }
        config.dash_token.ips.extend(self.dash_token_ip.iter().map(ToString::to_string));
        config.dash_token.window_bytes = self.dash_token_window.unwrap_or(config.dash_token.window_bytes);
        if let Some(dir) = self.static_dir {
            config.static_dir = Some(dir);
        }
        if let Some(secs) = self.duration {
            config.profile.duration_secs = secs;
        }
        for (id, behaviour) in self.scenario {
            let entry = config.scenario.remove(&id).unwrap_or_default();
            config.scenario.insert(id, ScenarioEntry { behaviour, ..entry });
        }
        config.log_requests |= self.verbose;
        Ok(config)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kinetics-testsrc: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listen = cli.listen;
    let exit_on_eof = cli.exit_on_stdin_eof;
    let server = kinetics_testsrc::spawn(cli.into_config()?, listen)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", server.base_url())?;
    stdout.flush()?;
    wait_for_stop(exit_on_eof)?;
    drop(server);
    Ok(())
}

/// Blocks until SIGINT, SIGTERM, or (when asked) the end of stdin.
fn wait_for_stop(exit_on_eof: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    if exit_on_eof {
        // A plain thread: stdin reads block, and it is left behind harmlessly when the process exits.
        std::thread::spawn(move || {
            let mut sink = [0u8; 1024];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = eof_tx.send(());
        });
    }
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let eof = async {
            match eof_rx.await {
                Ok(()) => (),
                // No watcher thread: never resolve.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            () = eof => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for route in
            ["/watch?v={id}", "/v/{id}.mp4", "/v/{id}.mpd", "/v/{id}/video.mp4", "/v/{id}/audio.m4a", "/_stats"]
        {
            assert!(help.contains(route), "--help lists {route}");
        }
    }

    #[test]
    fn flags_override_config() {
        let cli = Cli::parse_from([
            "kinetics-testsrc",
            "--bandwidth",
            "1000",
            "--open-range-throttle",
            "--throttle-rate",
            "2048",
            "--throttle-requests",
            "5",
            "--throttle-ban",
            "3",
            "--throttle-no-retry-after",
            "--duration",
            "20",
            "--scenario",
            "abc=status:404",
            "--scenario",
            "xyz=fail_then_ok:503:2",
            "--dash-token-ip",
            "127.0.0.3",
            "--dash-token-window",
            "4096",
        ]);
        let config = cli.into_config().unwrap();
        assert_eq!(config.bandwidth, 1000);
        assert!(config.open_range_throttle.enabled);
        assert_eq!(config.open_range_throttle.rate, 2048);
        assert_eq!(config.open_range_throttle.threshold, 10_000_000);
        assert!(config.ip_throttle.enabled);
        assert_eq!((config.ip_throttle.max_requests, config.ip_throttle.ban_secs), (5, 3.0));
        assert_eq!(config.ip_throttle.window_secs, 60.0);
        assert!(config.ip_throttle.unsaid);
        assert_eq!(config.profile.duration_secs, 20.0);
        assert_eq!(
            config.dash_token,
            kinetics_testsrc::DashToken { ips: vec!["127.0.0.3".into()], window_bytes: 4096 }
        );
        assert_eq!(config.entry_for("abc").behaviour, Behaviour::Status(404));
        assert_eq!(config.entry_for("xyz").behaviour, Behaviour::FailThenOk { status: 503, count: 2 });
        config.validate().unwrap();
    }

    #[test]
    fn bad_scenarios_are_usage_errors() {
        assert!(Cli::try_parse_from(["kinetics-testsrc", "--scenario", "abc"]).is_err());
        assert!(Cli::try_parse_from(["kinetics-testsrc", "--scenario", "abc=bogus"]).is_err());
    }
}

//! The command line, as clap sees it. Validation into a `Config` happens in `config.rs`.

use crate::plan::ClassDirs;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kinetics-dl",
    version,
    about = "Build Kinetics-style datasets: clip-only downloads, frame-accurate cuts, a journal that resumes",
    after_help = "Exit codes: 0 all clips done or permanently failed, 2 bad usage/input/environment, \
                  3 clips remain (rerun to resume), 130 interrupted."
)]
pub struct Cli {
    /// More diagnostics (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download, cut and verify the clips of annotation files into OUT.
    Download(Box<DownloadArgs>),
    /// Show what the journal in OUT knows.
    Status(StatusArgs),
    /// Check yt-dlp, ffmpeg, a JavaScript runtime and disk space, and say how to fix what is missing.
    Doctor(DoctorArgs),
    /// Write OUT/report.html: coverage, failures, durations, bytes, throughput, projections.
    Report(crate::report::ReportArgs),
    /// Write the files a training framework expects (torchvision, mmaction2, pytorchvideo, slowfast, csv, webdataset).
    Export(crate::export::ExportArgs),
    /// Write a manifest of every row's outcome and every clip's sha256, size, source and settings.
    Manifest(crate::manifest::ManifestArgs),
    /// Compare two manifests (or output folders): what one has that the other lacks, and why.
    Diff(crate::manifest::DiffArgs),
    /// Re-check every done clip on disk; broken ones go back to pending for the next download.
    Verify(crate::verify::VerifyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Trim {
    /// Frame-accurate: the first frame is the one at time_start; one re-encode to H.264 + AAC.
    #[default]
    Exact,
    /// Keyframe cut by stream copy: fast, but may start early and show frozen frames.
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Source {
    /// Every clip from YouTube (or `--url-template`).
    #[default]
    Youtube,
    /// Every clip from the CVDF mirror's tarballs; clips it lacks or has broken are recorded as failed.
    Mirror,
    /// The mirror for every clip it has, YouTube for the rest and for clips the mirror has broken.
    Auto,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// A dataset whose annotations are fetched from DeepMind first: k400, k600, k700, k700-2020.
    pub dataset: Option<String>,
    /// Annotation files (CSV or JSON, any DeepMind variant); repeat for several.
    #[arg(long = "annotations", value_name = "FILE")]
    pub annotations: Vec<PathBuf>,
    /// Output folder: clips, the journal, stats.csv and failed.csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only these splits (repeatable; `val` means `validate`).
    #[arg(long = "split", value_name = "SPLIT")]
    pub splits: Vec<String>,
    /// Only these classes (comma-separated labels).
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Only the classes listed in this file, one label a line.
    #[arg(long, value_name = "FILE")]
    pub classes_file: Option<PathBuf>,
    /// At most N annotation rows (after the other filters).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Clips worked on at once [default: 4 × cores, at most 16].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Encodes run at once [default: cores].
    #[arg(long, value_name = "N")]
    pub encode_jobs: Option<usize>,
    /// How class folders are named.
    #[arg(long, value_enum, default_value_t = ClassDirs::Underscore)]
    pub class_dirs: ClassDirs,
    /// Where a video lives; `{youtube_id}` is replaced by the id.
    #[arg(long, value_name = "TEMPLATE", default_value = "https://www.youtube.com/watch?v={youtube_id}")]
    pub url_template: String,
    /// Prefer formats at most this many pixels on the short side (never fails when it is missing). YouTube's
    /// DASH video-only + audio-only pair comes first (a window costs a few KB of index), itag 18 when the
    /// pair is missing; `--ytdlp-arg=-f --ytdlp-arg=18` forces itag 18.
    #[arg(long, value_name = "PIXELS", default_value_t = 360)]
    pub max_height: u32,
    /// Frame-accurate re-encode or fast keyframe copy.
    #[arg(long, value_enum, default_value_t = Trim::Exact)]
    pub trim: Trim,
    /// Scale so the shorter side is N pixels, in the same encode.
    #[arg(long, value_name = "N")]
    pub short_side: Option<u32>,
    /// Resample to N frames per second, in the same encode.
    #[arg(long, value_name = "N")]
    pub fps: Option<f64>,
    /// Drop the audio track.
    #[arg(long)]
    pub no_audio: bool,
    /// Retry clips that failed permanently: all, or only these categories (`--retry-failed=http_404,private`).
    #[arg(long, value_name = "CATEGORY", num_args = 0..=1, require_equals = true, value_delimiter = ',')]
    pub retry_failed: Option<Vec<String>>,
    /// First delay before retrying a clip that failed for a passing reason (doubles, with jitter).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub retry_delay: String,
    /// Longest single wait before a retry.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub retry_max_delay: String,
    /// Largest byte range requested from a media server at once (YouTube throttles open-ended ones).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub request_size: u64,
    /// Where clips come from.
    #[arg(long, value_enum, default_value_t = Source::Youtube)]
    pub source: Source,
    /// Base URL of the CVDF mirror.
    #[arg(long, env = "KINETICS_DL_MIRROR_URL", value_name = "URL", default_value = crate::mirror::DEFAULT_BASE_URL)]
    pub mirror_url: String,
    /// Which mirror dataset annotation files belong to (k400, k600, k700-2020) when no DATASET is named.
    #[arg(long, value_name = "DATASET")]
    pub mirror_dataset: Option<String>,
    /// Mirror tarballs downloaded at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub mirror_jobs: usize,
    /// Keep mirror tarballs after extracting them.
    #[arg(long)]
    pub keep_tarballs: bool,
    /// Re-encode mirror clips to the target (--max-height as the largest short side, --short-side, --fps,
    /// --no-audio): the mirror keeps original resolutions, some 720p.
    #[arg(long)]
    pub mirror_reencode: bool,
    /// Base URL of DeepMind's annotation archives.
    #[arg(
        long,
        env = "KINETICS_DL_ANNOTATIONS_URL",
        value_name = "URL",
        default_value = "https://storage.googleapis.com/deepmind-media/Datasets"
    )]
    pub annotations_base_url: String,
    /// Where downloaded annotation archives are cached [default: ~/.cache/kinetics-dl].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// An egress: leave through this local address (yt-dlp's --source-address; the relay binds to it too).
    /// Repeat for several; clips are spread over them.
    #[arg(long = "source-address", value_name = "IP")]
    pub source_addresses: Vec<std::net::IpAddr>,
    /// An egress: send every request of a clip through this proxy (repeatable).
    #[arg(long = "proxy", value_name = "URL")]
    pub proxies: Vec<String>,
    /// Proxies, one URL a line (`#` comments), each an egress.
    #[arg(long, value_name = "FILE")]
    pub proxies_file: Option<PathBuf>,
    /// Netscape cookies file for yt-dlp (age-restricted videos, better limits): one for all egresses, or
    /// one per egress in the order they are given.
    #[arg(long = "cookies", value_name = "FILE")]
    pub cookies: Vec<PathBuf>,
    /// Cool-off of an egress after a throttle signal (HTTP 429, bot check); doubles after each failed probe.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub cooldown: String,
    /// The longest cool-off.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub cooldown_max: String,
    /// When every egress is cooling for longer than this, end the run (exit 3) and say when to rerun.
    #[arg(long, value_name = "DURATION", default_value = "12h")]
    pub max_wait: String,
    /// Clips an hour per egress, e.g. `300/h`, or `off` [default: 300/h for YouTube, off for other URL templates].
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Treat throttling like any passing failure (no breakers): for comparisons only.
    #[arg(long)]
    pub no_breaker: bool,
    /// Pass an option to yt-dlp verbatim (repeatable), e.g. `--ytdlp-arg=--js-runtimes=node`.
    #[arg(long = "ytdlp-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub ytdlp_args: Vec<String>,
    /// The yt-dlp program.
    #[arg(long, env = "KINETICS_DL_YTDLP", default_value = "yt-dlp", value_name = "PATH")]
    pub ytdlp: PathBuf,
    /// The ffmpeg program.
    #[arg(long, env = "KINETICS_DL_FFMPEG", default_value = "ffmpeg", value_name = "PATH")]
    pub ffmpeg: PathBuf,
    /// The ffprobe program.
    #[arg(long, env = "KINETICS_DL_FFPROBE", default_value = "ffprobe", value_name = "PATH")]
    pub ffprobe: PathBuf,
    /// No progress bar, no summary; errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The output folder of a download.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print a JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check free space where clips will go.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The yt-dlp program to check [default: yt-dlp on PATH].
    #[arg(long, env = "KINETICS_DL_YTDLP", value_name = "PATH")]
    pub ytdlp: Option<PathBuf>,
    /// The ffmpeg program to check.
    #[arg(long, env = "KINETICS_DL_FFMPEG", value_name = "PATH")]
    pub ffmpeg: Option<PathBuf>,
    /// The ffprobe program to check.
    #[arg(long, env = "KINETICS_DL_FFPROBE", value_name = "PATH")]
    pub ffprobe: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn retry_failed_takes_zero_or_more_categories() {
        let cli =
            Cli::parse_from(["kinetics-dl", "download", "--out", "o", "--annotations", "a.csv", "--retry-failed"]);
        let Command::Download(d) = cli.command else { panic!() };
        assert_eq!(d.retry_failed, Some(vec![]));
        let cli = Cli::parse_from(["kinetics-dl", "download", "--out", "o", "--retry-failed=http_404,network", "k400"]);
        let Command::Download(d) = cli.command else { panic!() };
        assert_eq!(d.retry_failed, Some(vec!["http_404".to_string(), "network".to_string()]));
        assert_eq!(d.dataset.as_deref(), Some("k400"));
    }
}

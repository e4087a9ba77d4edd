//! The validated configuration of a download: everything the CLI said, checked once.

use crate::annotations::Filters;
use crate::classify::Category;
use crate::plan::ClassDirs;
use crate::retry::RetryPolicy;
use crate::tools::ffmpeg::Encode;
use std::path::PathBuf;

/// Where clips come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// Every clip from YouTube (or the URL template).
    #[default]
    Youtube,
    /// Every clip from the CVDF mirror's tarballs; clips it lacks or has broken are recorded as failed.
    Mirror,
    /// The mirror for every clip it has, YouTube for the rest and for clips the mirror has broken.
    Auto,
}

/// Where the annotation rows come from.
#[derive(Debug, Clone)]
pub enum Input {
    Files(Vec<PathBuf>),
    /// A dataset name whose archive is fetched from `base_url`, plus any extra files.
    Dataset {
        name: String,
        base_url: String,
        cache_dir: PathBuf,
        extra: Vec<PathBuf>,
    },
}

/// The CVDF mirror as a source.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub dataset: crate::mirror::MirrorDataset,
    pub base_url: String,
    pub concurrency: usize,
    pub keep_tarballs: bool,
    /// Re-encode placed clips with this (the user's target); `None` keeps the mirror's bytes.
    pub reencode: Option<Encode>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    /// Set when `source` is mirror or auto.
    pub mirror: Option<Mirror>,
    pub input: Input,
    pub out: PathBuf,
    pub filters: Filters,
    pub classes_file: Option<PathBuf>,
    /// The annotation files' format (`--preset`).
    pub preset: crate::annotations::Preset,
    /// How the formats that need more than their file are read (`--labels-file`, ...).
    pub read: crate::annotations::ReadOptions,
    pub class_dirs: ClassDirs,
    pub jobs: usize,
    pub encode_jobs: usize,
    pub url_template: String,
    pub max_height: u32,
    pub encode: Encode,
    /// `--trim` was given. Without it a rerun goes on with the trim its folder's last run used (see
    /// `download::keep_the_folders_trim`), where the default would otherwise be `smart`.
    pub trim_given: bool,
    /// `None`: permanent failures stay failed. `Some(empty)`: retry all. Otherwise only these.
    pub retry_failed: Option<Vec<Category>>,
    pub retry: RetryPolicy,
    pub request_size: u64,
    pub egresses: Vec<crate::governor::Egress>,
    pub throttle: crate::governor::Policy,
    pub max_wait: std::time::Duration,
    /// Cookies were given (age-restricted clips are worth retrying).
    pub have_cookies: bool,
    pub ytdlp_args: Vec<String>,
    pub ytdlp: PathBuf,
    /// How yt-dlp is run for extraction (`--ytdlp-mode`).
    pub ytdlp_mode: YtdlpMode,
    /// `--ytdlp-python`: the Python for API workers (found from the yt-dlp program when `None`).
    pub ytdlp_python: Option<PathBuf>,
    /// `--extract-timeout`: an API worker that has not answered within this is stopped and replaced.
    pub extract_timeout: std::time::Duration,
    /// `--worker-clips`: extractions an API worker serves before a fresh one replaces it.
    pub worker_clips: u32,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub quiet: bool,
    /// The command line, for the journal.
    pub command_line: String,
    /// `--db`: this run is one worker of a fleet that shares its clips through PostgreSQL.
    pub fleet: Option<FleetOptions>,
    /// `--shard`: this run takes only the clips of this share of the videos.
    pub shard: Option<crate::shard::Shard>,
}

/// A worker's place in a fleet (`--db`, `--fleet`, `--db-schema`, `--lease`, `--throttle-domain`, `--region`).
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub url: String,
    pub name: String,
    pub schema: String,
    pub lease: std::time::Duration,
    /// Workers naming the same domain share one breaker (one public IP); `None`: this host and egress alone.
    pub domain: Option<String>,
    /// Where the worker's egress appears to be (geo_blocked clips go to other regions); `unknown` if unsaid.
    pub region: String,
}

pub const ID_PLACEHOLDER: &str = "{youtube_id}";

impl Config {
    /// The video URL of a clip. Ids are checked against `[A-Za-z0-9_-]` when read, so they are URL-safe.
    pub fn url_for(&self, youtube_id: &str) -> String {
        self.url_template.replace(ID_PLACEHOLDER, youtube_id)
    }

    /// The settings that shape the clips, for the journal and reports, with the way yt-dlp ran
    /// (`ytdlp_mode`: `api`, `cli`, or `cli (api: why not)` when the API was asked for but could not serve).
    pub fn settings_json(&self, ytdlp_mode: &str) -> String {
        serde_json::json!({
            "max_height": self.max_height,
            "trim": self.encode.trim_name(),
            "short_side": self.encode.short_side,
            "fps": self.encode.fps,
            "no_audio": self.encode.no_audio,
            "audio_only": self.encode.audio_only,
            "crf": self.encode.crf,
            "preset": self.encode.preset,
            "class_dirs": self.class_dirs,
            "url_template": self.url_template,
            "request_size": self.request_size,
            "egresses": self.egresses.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            "breaker": self.throttle.breaker,
            "learn_rate": self.throttle.learn_rate,
            "cooldown_s": self.throttle.cooldown.as_secs_f64(),
            "rate_per_hour": self.throttle.rate_per_hour,
            "ytdlp_mode": ytdlp_mode,
        })
        .to_string()
    }
}

/// How yt-dlp extracts (`--ytdlp-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YtdlpMode {
    /// yt-dlp's Python API in long-lived workers, one pool per egress (`tools/extractor.rs`); the command
    /// line when the yt-dlp program is not a Python script or its Python cannot serve.
    #[default]
    Api,
    /// One yt-dlp command line per extraction.
    Cli,
}

/// Clips an hour per egress guest sessions can sustain on YouTube (about 300 videos an hour, see the docs).
pub const YOUTUBE_RATE_PER_HOUR: f64 = 300.0;

/// `--rate`: `300/h`, `5/m`, `off`; by default paced only for YouTube.
pub fn parse_rate(rate: Option<&str>, url_template: &str) -> anyhow::Result<Option<f64>> {
    let Some(rate) = rate else {
        let youtube = url_template.contains("youtube.com/") || url_template.contains("youtu.be/");
        return Ok(youtube.then_some(YOUTUBE_RATE_PER_HOUR));
    };
    if rate == "off" || rate == "0" {
        return Ok(None);
    }
    let (n, unit) = rate.split_once('/').unwrap_or((rate, "h"));
    let n: f64 = n.trim().parse().map_err(|_| anyhow::anyhow!("--rate: `{rate}` is not like `300/h` or `off`"))?;
    let per_hour = match unit.trim() {
        "h" | "hour" => n,
        "m" | "min" => n * 60.0,
        "s" | "sec" => n * 3600.0,
        other => anyhow::bail!("--rate: unknown unit `{other}` (use /h, /m or /s)"),
    };
    anyhow::ensure!(per_hour.is_finite() && per_hour > 0.0, "--rate must be positive, got `{rate}`");
    Ok(Some(per_hour))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_table() {
        let yt = "https://www.youtube.com/watch?v={youtube_id}";
        let local = "http://127.0.0.1:8080/v/{youtube_id}.mp4";
        assert_eq!(parse_rate(None, yt).unwrap(), Some(YOUTUBE_RATE_PER_HOUR));
        assert_eq!(parse_rate(None, local).unwrap(), None);
        assert_eq!(parse_rate(Some("off"), yt).unwrap(), None);
        assert_eq!(parse_rate(Some("120/h"), local).unwrap(), Some(120.0));
        assert_eq!(parse_rate(Some("2/m"), local).unwrap(), Some(120.0));
        assert_eq!(parse_rate(Some("1/s"), local).unwrap(), Some(3600.0));
        assert!(parse_rate(Some("fast"), local).is_err());
        assert!(parse_rate(Some("3/week"), local).is_err());
        assert!(parse_rate(Some("-1/h"), local).is_err());
    }
}

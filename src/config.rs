//! The validated configuration of a download: everything the CLI said, checked once.

use crate::annotations::Filters;
use crate::classify::Category;
use crate::cli::{DownloadArgs, Source, Trim};
use crate::plan::ClassDirs;
use crate::retry::RetryPolicy;
use crate::tools::ffmpeg::Encode;
use anyhow::{bail, Context};
use std::path::PathBuf;

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
    pub class_dirs: ClassDirs,
    pub jobs: usize,
    pub encode_jobs: usize,
    pub url_template: String,
    pub max_height: u32,
    pub encode: Encode,
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
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub quiet: bool,
    /// The command line, for the journal.
    pub command_line: String,
}

pub const ID_PLACEHOLDER: &str = "{youtube_id}";

impl Config {
    pub fn from_args(a: DownloadArgs) -> anyhow::Result<Config> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let input = match &a.dataset {
            Some(name) => Input::Dataset {
                name: name.clone(),
                base_url: a.annotations_base_url.trim_end_matches('/').to_string(),
                cache_dir: a.cache_dir.clone().unwrap_or_else(default_cache_dir),
                extra: a.annotations.clone(),
            },
            None if a.annotations.is_empty() => {
                bail!("nothing to download: name a dataset (k400, k600, k700, k700-2020) or give --annotations FILE")
            }
            None => Input::Files(a.annotations.clone()),
        };
        if !a.url_template.contains(ID_PLACEHOLDER) {
            bail!("--url-template must contain {ID_PLACEHOLDER}, got `{}`", a.url_template);
        }
        if !(a.url_template.starts_with("http://") || a.url_template.starts_with("https://")) {
            bail!("--url-template must be an http:// or https:// URL, got `{}`", a.url_template);
        }
        let jobs = a.jobs.unwrap_or((4 * cores).min(16));
        let encode_jobs = a.encode_jobs.unwrap_or(cores);
        if jobs == 0 || encode_jobs == 0 {
            bail!("-j and --encode-jobs must be at least 1");
        }
        if a.request_size < 64 * 1024 {
            bail!("--request-size must be at least 65536 bytes");
        }
        if let Some(fps) = a.fps {
            if !(fps.is_finite() && fps > 0.0 && fps <= 240.0) {
                bail!("--fps must be between 0 and 240, got {fps}");
            }
        }
        if a.short_side == Some(0) {
            bail!("--short-side must be at least 1");
        }
        if a.trim == Trim::Copy && (a.short_side.is_some() || a.fps.is_some()) {
            bail!("--short-side and --fps need a re-encode: drop them or use --trim exact");
        }
        let retry_failed = match &a.retry_failed {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        n.parse::<Category>().map_err(|_| anyhow::anyhow!("--retry-failed: unknown category `{n}`"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
        };
        let base = crate::retry::parse_duration(&a.retry_delay).map_err(|e| anyhow::anyhow!("--retry-delay: {e}"))?;
        let max =
            crate::retry::parse_duration(&a.retry_max_delay).map_err(|e| anyhow::anyhow!("--retry-max-delay: {e}"))?;
        let retry = RetryPolicy { base, max: max.max(base), ..RetryPolicy::default() };
        let mut classes = a.classes.iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).peekable();
        let classes = classes.peek().is_some().then(|| classes.collect());
        for cookies in &a.cookies {
            std::fs::metadata(cookies).with_context(|| format!("--cookies {}", cookies.display()))?;
        }
        let egresses = crate::governor::egress::from_options(
            &a.source_addresses,
            &a.proxies,
            a.proxies_file.as_deref(),
            &a.cookies,
        )?;
        let duration =
            |flag: &str, v: &str| crate::retry::parse_duration(v).map_err(|e| anyhow::anyhow!("{flag}: {e}"));
        let cooldown = duration("--cooldown", &a.cooldown)?;
        let throttle = crate::governor::Policy {
            breaker: !a.no_breaker,
            cooldown,
            cooldown_cap: duration("--cooldown-max", &a.cooldown_max)?.max(cooldown),
            rate_per_hour: parse_rate(a.rate.as_deref(), &a.url_template)?,
            jitter: 0.25,
        };
        let max_wait = duration("--max-wait", &a.max_wait)?;
        let mirror = match a.source {
            Source::Youtube => None,
            Source::Mirror | Source::Auto => {
                let name = a.mirror_dataset.as_deref().or(a.dataset.as_deref()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--source mirror needs a dataset: name one (k400, k600, k700-2020) or --mirror-dataset"
                    )
                })?;
                let dataset = name.parse::<crate::mirror::MirrorDataset>().map_err(|e| anyhow::anyhow!("{e}"))?;
                anyhow::ensure!(a.mirror_jobs > 0, "--mirror-jobs must be at least 1");
                Some(Mirror {
                    dataset,
                    base_url: a.mirror_url.trim_end_matches('/').to_string(),
                    concurrency: a.mirror_jobs,
                    keep_tarballs: a.keep_tarballs,
                    reencode: a.mirror_reencode.then(|| Encode {
                        copy: false,
                        short_side: a.short_side,
                        max_short_side: Some(a.max_height),
                        fps: a.fps,
                        no_audio: a.no_audio,
                        crf: 23,
                        preset: "veryfast".into(),
                    }),
                })
            }
        };
        Ok(Config {
            source: a.source,
            mirror,
            input,
            out: a.out.clone(),
            filters: Filters {
                splits: a.splits.iter().map(|s| crate::annotations::normalize_split(s)).collect(),
                classes,
                limit: a.limit,
            },
            classes_file: a.classes_file.clone(),
            class_dirs: a.class_dirs,
            jobs,
            encode_jobs,
            url_template: a.url_template.clone(),
            max_height: a.max_height,
            encode: Encode {
                copy: a.trim == Trim::Copy,
                short_side: a.short_side,
                max_short_side: None,
                fps: a.fps,
                no_audio: a.no_audio,
                crf: 23,
                preset: "veryfast".into(),
            },
            retry_failed,
            retry,
            request_size: a.request_size,
            have_cookies: !a.cookies.is_empty(),
            egresses,
            throttle,
            max_wait,
            ytdlp_args: a.ytdlp_args.clone(),
            ytdlp: a.ytdlp.clone(),
            ffmpeg: a.ffmpeg.clone(),
            ffprobe: a.ffprobe.clone(),
            quiet: a.quiet,
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
        })
    }

    /// The video URL of a clip. Ids are checked against `[A-Za-z0-9_-]` when read, so they are URL-safe.
    pub fn url_for(&self, youtube_id: &str) -> String {
        self.url_template.replace(ID_PLACEHOLDER, youtube_id)
    }

    /// The settings that shape the clips, for the journal and reports.
    pub fn settings_json(&self) -> String {
        serde_json::json!({
            "max_height": self.max_height,
            "trim": if self.encode.copy { "copy" } else { "exact" },
            "short_side": self.encode.short_side,
            "fps": self.encode.fps,
            "no_audio": self.encode.no_audio,
            "crf": self.encode.crf,
            "preset": self.encode.preset,
            "class_dirs": self.class_dirs,
            "url_template": self.url_template,
            "request_size": self.request_size,
            "egresses": self.egresses.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            "breaker": self.throttle.breaker,
            "cooldown_s": self.throttle.cooldown.as_secs_f64(),
            "rate_per_hour": self.throttle.rate_per_hour,
        })
        .to_string()
    }
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

fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("kinetics-dl");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("kinetics-dl"),
        None => std::env::temp_dir().join("kinetics-dl-cache"),
    }
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

//! `download`'s options into the validated [`Config`]: every check a flag needs, done once at the edge.

use super::{DownloadArgs, SourceArg, Trim};
use crate::annotations::Filters;
use crate::classify::Category;
use crate::config::{parse_rate, Config, Input, Mirror, ID_PLACEHOLDER};
use crate::retry::RetryPolicy;
use crate::tools::ffmpeg::Encode;
use anyhow::{bail, Context};
use std::path::PathBuf;

impl DownloadArgs {
    /// Checks the options once and turns them into the download's [`Config`].
    pub fn into_config(self) -> anyhow::Result<Config> {
        let a = self;
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
            SourceArg::Youtube => None,
            SourceArg::Mirror | SourceArg::Auto => {
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
            source: a.source.into(),
            mirror,
            input,
            out: a.out.clone(),
            filters: Filters {
                splits: a.splits.iter().map(|s| crate::annotations::normalize_split(s)).collect(),
                classes,
                limit: a.limit,
            },
            classes_file: a.classes_file.clone(),
            class_dirs: a.class_dirs.into(),
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

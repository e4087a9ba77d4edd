//! `download`'s options into the validated [`Config`]: every check a flag needs, done once at the edge.

use super::{DownloadArgs, SourceArg, Trim};
use crate::annotations::Filters;
use crate::classify::Category;
use crate::config::{parse_rate, Config, FleetOptions, Input, Mirror, ID_PLACEHOLDER};
use crate::retry::RetryPolicy;
use crate::tools::ffmpeg::Encode;
use anyhow::{bail, Context};
use std::path::PathBuf;

impl DownloadArgs {
    /// Checks the options once and turns them into the download's [`Config`]. The checks run in the order
    /// of the pieces below, so the first bad option is the one reported.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let input = self.input()?;
        let preset = self.preset()?;
        let read = self.read_options()?;
        self.check_url_template()?;
        let (jobs, encode_jobs) = self.concurrency()?;
        self.check_encode()?;
        self.check_audio()?;
        let retry_failed = self.retry_failed()?;
        let retry = self.retry_policy()?;
        let classes = self.classes();
        let egresses = self.egresses()?;
        let (throttle, max_wait) = self.throttle()?;
        let mirror = self.mirror()?;
        let fleet = self.fleet()?;
        let shard = self.shard(&|name| std::env::var(name).ok())?;
        if shard.is_some() && fleet.is_some() {
            bail!("--shard and --db exclude each other: a fleet shares its clips through the database");
        }
        let a = self;
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
            preset,
            read,
            class_dirs: a.class_dirs.into(),
            jobs,
            encode_jobs,
            url_template: a.url_template.clone(),
            max_height: a.max_height,
            encode: Encode {
                copy: a.trim() == Trim::Copy,
                smart: a.trim() == Trim::Smart,
                max_short_side: None,
                audio_only: a.audio_out(),
                ..a.target_encode()
            },
            trim_given: a.trim.is_some(),
            retry_failed,
            retry,
            request_size: a.request_size,
            have_cookies: !a.cookies.is_empty(),
            egresses,
            throttle,
            max_wait,
            ytdlp_args: a.ytdlp_args.clone(),
            ytdlp: a.ytdlp.clone(),
            ytdlp_mode: a.ytdlp_mode.into(),
            ytdlp_python: a.ytdlp_python.clone(),
            extract_timeout: duration("--extract-timeout", &a.extract_timeout)?,
            worker_clips: a.worker_clips,
            ffmpeg: a.ffmpeg.clone(),
            ffprobe: a.ffprobe.clone(),
            quiet: a.quiet,
            command_line: command_line(std::env::args()),
            fleet,
            shard,
        })
    }

    /// `--shard` (with `--shards` for `auto`), resolved against the environment `get` reads.
    fn shard(&self, get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<crate::shard::Shard>> {
        use crate::shard::ShardArg;
        match self.shard {
            None if self.shards.is_some() => bail!("--shards N goes with --shard auto"),
            None => Ok(None),
            Some(ShardArg::Fixed(s)) => {
                if let Some(n) = self.shards.filter(|&n| n != s.count) {
                    bail!("--shards {n} disagrees with --shard {s}");
                }
                Ok(Some(s))
            }
            Some(ShardArg::Auto) => crate::shard::from_env(get, self.shards).map(Some).map_err(|e| anyhow::anyhow!(e)),
        }
    }

    /// `--preset`, or the column map `--columns` and its options describe.
    fn preset(&self) -> anyhow::Result<crate::annotations::Preset> {
        use crate::annotations::{ColumnMap, MapOptions, Preset};
        let Some(columns) = &self.columns else { return Ok(self.preset.map(Into::into).unwrap_or_default()) };
        let map = ColumnMap::parse(&MapOptions {
            columns,
            duration: self.duration,
            id_from_url: self.id_from_url,
            no_header: self.no_header,
            delimiter: self.delimiter.as_deref(),
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Preset::Columns(map))
    }

    /// `--labels-file`, AVA's window, `--keep-negatives`.
    fn read_options(&self) -> anyhow::Result<crate::annotations::ReadOptions> {
        let mut read = crate::annotations::ReadOptions {
            labels_file: self.labels_file.clone(),
            keep_negatives: self.keep_negatives,
            ..Default::default()
        };
        for (flag, value, slot) in [
            ("--window-before", self.window_before, &mut read.window_before),
            ("--window-after", self.window_after, &mut read.window_after),
        ] {
            if let Some(v) = value {
                if !(v.is_finite() && (0.0..=3600.0).contains(&v)) {
                    bail!("{flag} must be between 0 and 3600 seconds, got {v}");
                }
                *slot = v;
            }
        }
        if read.window_before + read.window_after < 0.001 {
            bail!("--window-before and --window-after leave an empty window: give one of them a length");
        }
        Ok(read)
    }

    /// A dataset name (its archive fetched and cached) and/or annotation files.
    fn input(&self) -> anyhow::Result<Input> {
        Ok(match &self.dataset {
            Some(name) => Input::Dataset {
                name: name.clone(),
                base_url: self.annotations_base_url.trim_end_matches('/').to_string(),
                cache_dir: self.cache_dir.clone().unwrap_or_else(default_cache_dir),
                extra: self.annotations.clone(),
            },
            // A fleet worker may come with nothing: the fleet's database holds the clips.
            None if self.annotations.is_empty() && self.fleet.at.db.is_some() => Input::Files(vec![]),
            None if self.annotations.is_empty() => {
                bail!("nothing to download: name a dataset (k400, k600, k700, k700-2020) or give --annotations FILE")
            }
            None => Input::Files(self.annotations.clone()),
        })
    }

    fn check_url_template(&self) -> anyhow::Result<()> {
        if !self.url_template.contains(ID_PLACEHOLDER) {
            bail!("--url-template must contain {ID_PLACEHOLDER}, got `{}`", self.url_template);
        }
        if !(self.url_template.starts_with("http://") || self.url_template.starts_with("https://")) {
            bail!("--url-template must be an http:// or https:// URL, got `{}`", self.url_template);
        }
        Ok(())
    }

    /// `-j` and `--encode-jobs`, defaulted from the cores.
    fn concurrency(&self) -> anyhow::Result<(usize, usize)> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let jobs = self.jobs.unwrap_or((4 * cores).min(16));
        let encode_jobs = self.encode_jobs.unwrap_or(cores);
        if jobs == 0 || encode_jobs == 0 {
            bail!("-j and --encode-jobs must be at least 1");
        }
        Ok((jobs, encode_jobs))
    }

    /// The request size and the target's shape.
    fn check_encode(&self) -> anyhow::Result<()> {
        if self.request_size < 64 * 1024 {
            bail!("--request-size must be at least 65536 bytes");
        }
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && fps > 0.0 && fps <= 240.0) {
                bail!("--fps must be between 0 and 240, got {fps}");
            }
        }
        if self.short_side == Some(0) {
            bail!("--short-side must be at least 1");
        }
        if self.trim == Some(Trim::Copy) && (self.short_side.is_some() || self.fps.is_some()) {
            bail!("--short-side and --fps need a re-encode: drop them or use --trim exact");
        }
        Ok(())
    }

    /// `--audio-only` and its options: each of them needs it, and it excludes what only video has.
    fn check_audio(&self) -> anyhow::Result<()> {
        if !self.audio_only {
            let given = [
                ("--audio-format", self.audio_format.is_some()),
                ("--sample-rate", self.sample_rate.is_some()),
                ("--channels", self.channels.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                bail!("{flag} goes with --audio-only: add --audio-only for audio clips, or drop {flag}");
            }
            return Ok(());
        }
        // (option, given, why it cannot go with audio clips)
        let video_only = [
            (
                "--trim copy/smart",
                self.trim.is_some_and(|t| t != Trim::Exact),
                "audio clips are always cut to the sample",
            ),
            ("--short-side", self.short_side.is_some(), "it shapes video"),
            ("--fps", self.fps.is_some(), "it shapes video"),
            ("--no-audio", self.no_audio, "the audio is all an audio clip has"),
            ("--source mirror/auto", self.source != SourceArg::Youtube, "the mirror holds video clips"),
            ("--mirror-reencode", self.mirror_reencode, "the mirror holds video clips"),
        ];
        if let Some((flag, _, why)) = video_only.iter().find(|(_, given, _)| *given) {
            bail!("--audio-only excludes {flag}: {why}");
        }
        if let Some(rate) = self.sample_rate.filter(|r| !(8_000..=192_000).contains(r)) {
            bail!("--sample-rate must be between 8000 and 192000 Hz, got {rate}");
        }
        if let Some(n) = self.channels.filter(|n| !(1..=8).contains(n)) {
            bail!("--channels must be between 1 and 8, got {n}");
        }
        Ok(())
    }

    /// The trim that cuts the clips: the one asked for; by default `smart` (frame-accurate, encoding only
    /// what it must), and `exact` where every frame is encoded anyway (`--short-side`, `--fps`) or there is
    /// no video (`--audio-only`, which cuts to the sample its own way).
    pub fn trim(&self) -> Trim {
        match self.trim {
            Some(t) => t,
            None if self.short_side.is_some() || self.fps.is_some() || self.audio_only => Trim::Exact,
            None => Trim::Smart,
        }
    }

    /// The audio-only target, when asked for.
    fn audio_out(&self) -> Option<crate::tools::ffmpeg::AudioOut> {
        self.audio_only.then(|| crate::tools::ffmpeg::AudioOut {
            format: self.audio_format.unwrap_or_default().into(),
            sample_rate: self.sample_rate,
            channels: self.channels,
        })
    }

    /// The user's target as a re-encode (`--max-height` as the largest short side).
    fn target_encode(&self) -> Encode {
        Encode {
            copy: false,
            short_side: self.short_side,
            max_short_side: Some(self.max_height),
            fps: self.fps,
            smart: false,
            no_audio: self.no_audio,
            crf: 23,
            preset: "veryfast".into(),
            audio_only: None,
        }
    }

    fn retry_failed(&self) -> anyhow::Result<Option<Vec<Category>>> {
        let Some(names) = &self.retry_failed else { return Ok(None) };
        let parse =
            |n: &String| n.parse::<Category>().map_err(|_| anyhow::anyhow!("--retry-failed: unknown category `{n}`"));
        Ok(Some(names.iter().map(parse).collect::<anyhow::Result<Vec<_>>>()?))
    }

    fn retry_policy(&self) -> anyhow::Result<RetryPolicy> {
        let base = duration("--retry-delay", &self.retry_delay)?;
        let max = duration("--retry-max-delay", &self.retry_max_delay)?;
        Ok(RetryPolicy { base, max: max.max(base), ..RetryPolicy::default() })
    }

    /// `--classes`, blanks dropped; `None` when none is left.
    fn classes(&self) -> Option<std::collections::BTreeSet<String>> {
        let mut classes = self.classes.iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).peekable();
        classes.peek().is_some().then(|| classes.collect())
    }

    /// The egresses, after checking that every cookies file is there.
    fn egresses(&self) -> anyhow::Result<Vec<crate::governor::Egress>> {
        for cookies in &self.cookies {
            std::fs::metadata(cookies).with_context(|| format!("--cookies {}", cookies.display()))?;
        }
        crate::governor::egress::from_options(
            &self.source_addresses,
            &self.proxies,
            self.proxies_file.as_deref(),
            &self.cookies,
        )
    }

    /// Breakers and pacing, and the longest wait for a cooling egress.
    fn throttle(&self) -> anyhow::Result<(crate::governor::Policy, std::time::Duration)> {
        let cooldown = duration("--cooldown", &self.cooldown)?;
        let policy = crate::governor::Policy {
            breaker: !self.no_breaker,
            learn_rate: !self.no_breaker && !self.no_learned_rate,
            cooldown,
            cooldown_cap: duration("--cooldown-max", &self.cooldown_max)?.max(cooldown),
            rate_per_hour: parse_rate(self.rate.as_deref(), &self.url_template)?,
            jitter: 0.25,
            down_after: self.down_after.max(1),
            down_cooloff: duration("--down-cooloff", &self.down_cooloff)?,
            down_cooloff_cap: duration("--down-cooloff", &self.down_cooloff)?.max(std::time::Duration::from_secs(300)),
        };
        Ok((policy, duration("--max-wait", &self.max_wait)?))
    }

    /// The CVDF mirror, for `--source mirror|auto`.
    fn mirror(&self) -> anyhow::Result<Option<Mirror>> {
        if self.source == SourceArg::Youtube {
            return Ok(None);
        }
        let name = self.mirror_dataset.as_deref().or(self.dataset.as_deref()).ok_or_else(|| {
            anyhow::anyhow!("--source mirror needs a dataset: name one (k400, k600, k700-2020) or --mirror-dataset")
        })?;
        let dataset = name.parse::<crate::mirror::MirrorDataset>().map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(self.mirror_jobs > 0, "--mirror-jobs must be at least 1");
        Ok(Some(Mirror {
            dataset,
            base_url: self.mirror_url.trim_end_matches('/').to_string(),
            concurrency: self.mirror_jobs,
            keep_tarballs: self.keep_tarballs,
            reencode: self.mirror_reencode.then(|| self.target_encode()),
        }))
    }
}

impl DownloadArgs {
    /// `--db` and the options that go with it.
    fn fleet(&self) -> anyhow::Result<Option<FleetOptions>> {
        let f = &self.fleet;
        let Some(url) = f.at.db.clone().filter(|u| !u.is_empty()) else {
            if f.at.fleet.is_some() || f.throttle_domain.is_some() || f.region.is_some() {
                bail!("--fleet, --throttle-domain and --region need --db URL (or KINETICS_DL_DB)");
            }
            return Ok(None);
        };
        let name = f.at.fleet.clone().ok_or_else(|| anyhow::anyhow!("--db needs --fleet NAME"))?;
        let plain = |s: &str| !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_graphic());
        if !plain(&name) {
            bail!("--fleet must be 1-100 visible ASCII characters, got `{name}`");
        }
        if let Some(d) = f.throttle_domain.as_deref().filter(|d| !plain(d)) {
            bail!("--throttle-domain must be 1-100 visible ASCII characters, got `{d}`");
        }
        let region = f.region.clone().unwrap_or_else(|| "unknown".into());
        if !plain(&region) {
            bail!("--region must be a country code like `DE`, got `{region}`");
        }
        if self.source != SourceArg::Youtube {
            bail!("--db works with --source youtube only (mirror clips are not shared through a fleet yet)");
        }
        let lease = duration("--lease", &f.lease)?;
        if lease < std::time::Duration::from_secs(1) {
            bail!("--lease must be at least 1s, got `{}`", f.lease);
        }
        Ok(Some(FleetOptions {
            url,
            name,
            schema: f.at.db_schema.clone(),
            lease,
            domain: f.throttle_domain.clone(),
            region,
        }))
    }
}

/// A duration option, its flag named in the error.
fn duration(flag: &str, value: &str) -> anyhow::Result<std::time::Duration> {
    crate::retry::parse_duration(value).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
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

/// The command line as the journal records it (and the report shows it): a `--db` URL's password hidden.
pub(super) fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut after_db = false;
    let args: Vec<String> = args
        .map(|arg| {
            let shown = match arg.strip_prefix("--db=") {
                Some(url) => format!("--db={}", crate::fleet::redact(url)),
                None if after_db => crate::fleet::redact(&arg),
                None => arg.clone(),
            };
            after_db = arg == "--db";
            shown
        })
        .collect();
    args.join(" ")
}

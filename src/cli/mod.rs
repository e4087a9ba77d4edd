//! The command line, as clap sees it: the outermost layer. clap's types stop here; each command's arguments
//! are converted into the domain's own options (`download.rs` checks `download`'s into a `Config`), so
//! nothing inside knows clap.

mod download;

use crate::config::Source;
use crate::export::Format;
use crate::plan::ClassDirs;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kinetics-dl",
    version,
    about = "Build Kinetics-style datasets: clip-only downloads, frame-accurate cuts, a journal that resumes",
    after_help = "Exit codes: 0 all clips done or permanently failed, 1 failed at run time (disk, I/O), \
                  2 bad usage/input/environment, 3 clips remain (rerun to resume), 130 interrupted."
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
    Report(ReportArgs),
    /// Write the files a training framework expects (torchvision, mmaction2, pytorchvideo, slowfast, csv, webdataset).
    Export(ExportArgs),
    /// Write a manifest of every row's outcome and every clip's sha256, size, source and settings.
    Manifest(ManifestArgs),
    /// Compare two manifests (or output folders): what one has that the other lacks, and why.
    Diff(DiffArgs),
    /// Re-check every done clip on disk; broken ones go back to pending for the next download.
    Verify(VerifyArgs),
    /// Build one output folder from shard or worker folders: clips (sha256 checked), journal, logs.
    Merge(MergeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The folder to build (new or empty); built beside it and renamed into place.
    #[arg(long, value_name = "FINAL")]
    pub out: PathBuf,
    /// The shard or worker output folders.
    #[arg(value_name = "SOURCES", required = true)]
    pub sources: Vec<PathBuf>,
    /// How clips reach FINAL: hard links (a copy across filesystems), copies, or moved out of the sources.
    #[arg(long, value_enum, default_value = "hardlink")]
    pub mode: MergeMode,
    // The fleet whose workers made SOURCES: of several copies of a clip, the one its record names wins.
    #[command(flatten)]
    pub fleet: FleetDbArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MergeMode {
    Hardlink,
    Copy,
    Move,
}

impl From<MergeArgs> for crate::commands::merge::MergeOptions {
    fn from(a: MergeArgs) -> Self {
        use crate::commands::merge::Mode;
        let mode = match a.mode {
            MergeMode::Hardlink => Mode::Hardlink,
            MergeMode::Copy => Mode::Copy,
            MergeMode::Move => Mode::Move,
        };
        Self { out: a.out, sources: a.sources, mode, arbiter: a.fleet.into_ref() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum YtdlpModeArg {
    /// yt-dlp's Python API in long-lived workers.
    Api,
    /// The yt-dlp command line for each clip.
    Cli,
}

impl From<YtdlpModeArg> for crate::config::YtdlpMode {
    fn from(m: YtdlpModeArg) -> Self {
        match m {
            YtdlpModeArg::Api => crate::config::YtdlpMode::Api,
            YtdlpModeArg::Cli => crate::config::YtdlpMode::Cli,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Trim {
    /// Frame-accurate: the frames whose time is in [time_start, time_end); one re-encode of the whole clip
    /// to H.264 + stereo AAC, the same for every clip.
    Exact,
    /// Keyframe cut by stream copy: fast, but may start early and show frozen frames.
    Copy,
    /// Frame-accurate like exact, re-encoding only up to the first keyframe (and, with B-frames, a few
    /// frames at the end) and copying the rest (and AAC audio as the source has it); exact where the source
    /// does not allow it (not H.264, an open GOP, --short-side/--fps), noted in the journal.
    Smart,
}

/// An audio-only clip's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum AudioFormatArg {
    /// Lossless FLAC (`.flac`).
    #[default]
    Flac,
    /// 16-bit PCM WAV (`.wav`).
    Wav,
    /// AAC at 128 kb/s in MP4 (`.m4a`).
    M4a,
}

impl From<AudioFormatArg> for crate::tools::ffmpeg::AudioFormat {
    fn from(f: AudioFormatArg) -> Self {
        use crate::tools::ffmpeg::AudioFormat;
        match f {
            AudioFormatArg::Flac => AudioFormat::Flac,
            AudioFormatArg::Wav => AudioFormat::Wav,
            AudioFormatArg::M4a => AudioFormat::M4a,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SourceArg {
    /// Every clip from YouTube (or `--url-template`).
    #[default]
    Youtube,
    /// Every clip from the CVDF mirror's tarballs; clips it lacks or has broken are recorded as failed.
    Mirror,
    /// The mirror for every clip it has, YouTube for the rest and for clips the mirror has broken.
    Auto,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Source {
        match s {
            SourceArg::Youtube => Source::Youtube,
            SourceArg::Mirror => Source::Mirror,
            SourceArg::Auto => Source::Auto,
        }
    }
}

/// How class folders are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ClassDirsArg {
    /// The label as is (spaces kept), made safe.
    Raw,
    /// Spaces become `_` (mmaction2).
    #[default]
    Underscore,
    /// torchvision's form: spaces become `_`, `'`, `(` and `)` removed.
    Torchvision,
    /// As underscore, and a clip with several labels (AudioSet, AVA) goes under its first label's folder
    /// instead of the split's.
    First,
}

impl From<ClassDirsArg> for ClassDirs {
    fn from(c: ClassDirsArg) -> ClassDirs {
        match c {
            ClassDirsArg::Raw => ClassDirs::Raw,
            ClassDirsArg::Underscore => ClassDirs::Underscore,
            ClassDirsArg::Torchvision => ClassDirs::Torchvision,
            ClassDirsArg::First => ClassDirs::First,
        }
    }
}

/// `--preset`: the published annotation formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// DeepMind's CSV and JSON, any release.
    Kinetics,
    /// VGGSound's `vggsound.csv`: no header, youtube_id,start_seconds,label,split; 10 s clips.
    Vggsound,
    /// HACS Clips' CSV: classname,youtube_id,subset,start,end,label; positives (label 1) only.
    HacsClips,
    /// HACS Segments' JSON (the ActivityNet shape): one clip per segment.
    HacsSegments,
    /// ActivityNet 1.3's JSON: database[id].annotations[].segment, label; one clip per segment.
    Activitynet,
    /// AudioSet's segments CSV: `#` comments, YTID, start_seconds, end_seconds, "label ids"; every label
    /// kept (names from --labels-file).
    Audioset,
    /// AVA-Kinetics' boxes: no header, youtube_id,timestamp,x1,y1,x2,y2,action_id[,person_id]; one clip per
    /// keyframe (--window-before, --window-after), every action and box kept.
    AvaKinetics,
}

impl From<PresetArg> for crate::annotations::Preset {
    fn from(p: PresetArg) -> Self {
        use crate::annotations::Preset;
        match p {
            PresetArg::Kinetics | PresetArg::HacsClips => Preset::Kinetics,
            PresetArg::Vggsound => Preset::VggSound,
            PresetArg::HacsSegments | PresetArg::Activitynet => Preset::ActivityNet,
            PresetArg::Audioset => Preset::AudioSet,
            PresetArg::AvaKinetics => Preset::AvaKinetics,
        }
    }
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
    /// The annotation files' format [default: recognised from each file's start].
    #[arg(long, value_enum, value_name = "NAME")]
    pub preset: Option<PresetArg>,
    /// Read any delimited file through this column map: KEY=COLUMN for id, start and end, label, split
    /// (header names, or positions from 0 with --no-header), e.g. id=ytid,start=t0,end=t1,label=cls.
    #[arg(long, value_name = "MAP", conflicts_with_all = ["preset", "dataset"])]
    pub columns: Option<String>,
    /// With --columns and no end column: every clip lasts S seconds from its start.
    #[arg(long, value_name = "S", requires = "columns")]
    pub duration: Option<f64>,
    /// With --columns: the id column holds YouTube video URLs (watch?v=, youtu.be/, shorts/, embed/).
    #[arg(long, requires = "columns")]
    pub id_from_url: bool,
    /// With --columns: the file has no header; columns are positions from 0.
    #[arg(long, requires = "columns")]
    pub no_header: bool,
    /// With --columns: the field delimiter, one character (\t for a tab) [default: ,].
    #[arg(long, value_name = "C", requires = "columns", allow_hyphen_values = true)]
    pub delimiter: Option<String>,
    /// Label ids to names: AudioSet's class_labels_indices.csv (index,mid,display_name).
    #[arg(long, value_name = "FILE")]
    pub labels_file: Option<PathBuf>,
    /// HACS Clips: keep the sampled negatives (label -1) too, in the split `{subset}_negatives` under their
    /// class.
    #[arg(long)]
    pub keep_negatives: bool,
    /// AVA-Kinetics: a keyframe's clip starts S seconds before it (never before 0) [default: 5].
    #[arg(long, value_name = "S")]
    pub window_before: Option<f64>,
    /// AVA-Kinetics: a keyframe's clip ends S seconds after it [default: 5].
    #[arg(long, value_name = "S")]
    pub window_after: Option<f64>,
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
    #[arg(long, value_enum, default_value_t = ClassDirsArg::Underscore)]
    pub class_dirs: ClassDirsArg,
    /// Where a video lives; `{youtube_id}` is replaced by the id.
    #[arg(long, value_name = "TEMPLATE", default_value = "https://www.youtube.com/watch?v={youtube_id}")]
    pub url_template: String,
    /// Prefer formats at most this many pixels on the short side (never fails when it is missing). YouTube's
    /// DASH video-only + audio-only pair comes first (a window costs a few KB of index), itag 18 when the
    /// pair is missing; `--ytdlp-arg=-f --ytdlp-arg=18` forces itag 18.
    #[arg(long, value_name = "PIXELS", default_value_t = 360)]
    pub max_height: u32,
    /// How a clip is cut out of its window [default: smart; exact with --short-side or --fps, which
    /// re-encode every frame anyway].
    #[arg(long, value_enum)]
    pub trim: Option<Trim>,
    /// Scale so the shorter side is N pixels, in the same encode.
    #[arg(long, value_name = "N")]
    pub short_side: Option<u32>,
    /// Resample to N frames per second, in the same encode.
    #[arg(long, value_name = "N")]
    pub fps: Option<f64>,
    /// Drop the audio track.
    #[arg(long)]
    pub no_audio: bool,
    /// Clips of the audio stream alone: only its bytes are fetched (YouTube's audio-only itag 140), cut to
    /// the sample, saved as --audio-format.
    #[arg(long)]
    pub audio_only: bool,
    /// Audio-only clips' format (with --audio-only); the file extension follows it.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub audio_format: Option<AudioFormatArg>,
    /// Resample audio-only clips to N Hz (with --audio-only) [default: the source's].
    #[arg(long, value_name = "HZ")]
    pub sample_rate: Option<u32>,
    /// Mix audio-only clips to N channels (with --audio-only) [default: the source's].
    #[arg(long, value_name = "N")]
    pub channels: Option<u32>,
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
    #[arg(long, value_enum, default_value_t = SourceArg::Youtube)]
    pub source: SourceArg,
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
    /// An egress that reaches nothing (DNS, refused, no route, proxy, TLS) on this many clips in a row is
    /// down: its clips wait, uncharged, for a probe to get through.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub down_after: u32,
    /// First cool-off of a down egress; doubles after each failed probe, up to 5m (or this, if longer).
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub down_cooloff: String,
    /// When every egress is cooling for longer than this, end the run (exit 3) and say when to rerun.
    #[arg(long, value_name = "DURATION", default_value = "12h")]
    pub max_wait: String,
    /// Clips an hour per egress, e.g. `300/h`, or `off` [default: 300/h for YouTube, off for other URL templates].
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Treat throttling like any passing failure (no breakers): for comparisons only.
    #[arg(long)]
    pub no_breaker: bool,
    /// Pace each egress by `--rate` alone, learning no request rate from its bans: for hosts whose bans count
    /// requests over hours (a quota), which no request rate avoids.
    #[arg(long)]
    pub no_learned_rate: bool,
    /// Pass an option to yt-dlp verbatim (repeatable), e.g. `--ytdlp-arg=--js-runtimes=node`.
    #[arg(long = "ytdlp-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub ytdlp_args: Vec<String>,
    /// The yt-dlp program.
    #[arg(long, env = "KINETICS_DL_YTDLP", default_value = "yt-dlp", value_name = "PATH")]
    pub ytdlp: PathBuf,
    /// How yt-dlp extracts: `api` runs its Python API in long-lived workers (one pool per egress, no Python
    /// start per clip; the command line when the yt-dlp program is not a Python script), `cli` runs the
    /// yt-dlp command for every clip.
    #[arg(long, value_enum, default_value_t = YtdlpModeArg::Api, value_name = "MODE")]
    pub ytdlp_mode: YtdlpModeArg,
    /// The Python that runs the API workers [default: the one the yt-dlp program names in its `#!` line].
    #[arg(long, env = "KINETICS_DL_PYTHON", value_name = "PATH")]
    pub ytdlp_python: Option<PathBuf>,
    /// An API worker that has not answered an extraction within this is stopped, and the clip goes to a
    /// new worker without an attempt charged.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub extract_timeout: String,
    /// Extractions an API worker serves before a fresh one replaces it.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub worker_clips: u32,
    /// The ffmpeg program.
    #[arg(long, env = "KINETICS_DL_FFMPEG", default_value = "ffmpeg", value_name = "PATH")]
    pub ffmpeg: PathBuf,
    /// The ffprobe program.
    #[arg(long, env = "KINETICS_DL_FFPROBE", default_value = "ffprobe", value_name = "PATH")]
    pub ffprobe: PathBuf,
    /// No progress bar, no summary; errors only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Take one stable share of the planned clips (all clips of a video together): `i/N` with i from 0 to
    /// N-1, or `auto` from a Slurm job array (SLURM_ARRAY_TASK_*) or a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX, with --shards N). The journal pins the shard.
    #[arg(long, value_name = "i/N|auto", value_parser = crate::shard::parse_arg, help_heading = "Static shards")]
    pub shard: Option<crate::shard::ShardArg>,
    /// How many shards `--shard auto` splits into where the scheduler does not say (Kubernetes: the Job's
    /// completions).
    #[arg(long, value_name = "N", help_heading = "Static shards")]
    pub shards: Option<u64>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// A fleet: many workers share one dataset through a PostgreSQL database.
#[derive(Debug, Args)]
#[command(next_help_heading = "Fleet (PostgreSQL)")]
pub struct FleetArgs {
    // Work as one worker of the fleet.
    #[command(flatten)]
    pub at: FleetDbArgs,
    /// How long a claimed clip stays this worker's without a heartbeat; a dead worker's clips return after it.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub lease: String,
    /// Workers sharing a public IP (a NAT, a node) name the same domain: one breaker for all of them
    /// [default: this host and egress alone].
    #[arg(long, value_name = "NAME")]
    pub throttle_domain: Option<String>,
    /// The region (country code) this worker's egress is seen from: clips geo-blocked here go to other regions.
    #[arg(long, value_name = "CC")]
    pub region: Option<String>,
}

/// Where a fleet lives: `--db URL --fleet NAME [--db-schema S]`, the same three options for every command
/// that works on a fleet (download, status, report, merge).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Fleet (PostgreSQL)")]
pub struct FleetDbArgs {
    /// A fleet's PostgreSQL database (`postgres://...`), with --fleet: `download` works as one of its
    /// workers (the first run with annotations creates the fleet and seeds its clips, later ones only add new
    /// clips), `status` and `report` show it, `merge` lets its record pick between copies of a clip.
    #[arg(long, env = "KINETICS_DL_DB", value_name = "URL", hide_env_values = true)]
    pub db: Option<String>,
    /// The fleet's name (several fleets can share one database).
    #[arg(long, value_name = "NAME", requires = "db")]
    pub fleet: Option<String>,
    /// The PostgreSQL schema holding the fleet's tables.
    #[arg(long, value_name = "NAME", default_value = "kdl")]
    pub db_schema: String,
}

impl FleetDbArgs {
    /// The fleet named, if both `--db` (or `KINETICS_DL_DB`) and `--fleet` are given; a database alone (the
    /// variable set in the environment for the workers) names no fleet.
    pub fn into_ref(self) -> Option<crate::fleet::FleetRef> {
        match (self.db.filter(|u| !u.is_empty()), self.fleet) {
            (Some(url), Some(name)) => Some(crate::fleet::FleetRef { url, schema: self.db_schema, name }),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The output folder of a download.
    #[arg(long, value_name = "DIR", required_unless_present = "fleet", conflicts_with = "fleet")]
    pub out: Option<PathBuf>,
    /// Print a JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    // A fleet instead of an output folder: totals, failures, workers alive and dead, throttle domains,
    // throughput, time left.
    #[command(flatten)]
    pub fleet: FleetDbArgs,
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
    /// The Python of the yt-dlp API workers to check [default: the one the yt-dlp program names].
    #[arg(long, env = "KINETICS_DL_PYTHON", value_name = "PATH")]
    pub ytdlp_python: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The output folder of a download (with --fleet: the folder the fleet's page is written to).
    #[arg(long, value_name = "DIR", required_unless_present = "fleet")]
    pub out: Option<PathBuf>,
    /// Print the report's numbers as JSON to stdout (the page is written too).
    #[arg(long)]
    pub json: bool,
    // A fleet instead of a folder's journal: totals, workers, domains, and throughput per worker with bans on
    // the same axis, written to `fleet-report.html` in --out (default: the current folder).
    #[command(flatten)]
    pub fleet: FleetDbArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The folder tree as it is, plus `classes.txt` (torchvision.datasets.Kinetics, DatasetFolder).
    Torchvision,
    /// `kinetics_{split}_list_videos.txt`: `class_dir/clip.mp4 label_index`, relative to the split folder.
    Mmaction2,
    /// `pytorchvideo/{split}.csv`: `path label_index`, relative to OUT (split from the right).
    Pytorchvideo,
    /// `slowfast/{train,val,test}.csv`: `path label_index`, no header, relative to OUT.
    Slowfast,
    /// `clips.csv`: every column of the journal's clips table.
    Csv,
    /// `webdataset/{split}-NNNNN.tar` shards of `KEY.mp4` + `KEY.json` samples.
    Webdataset,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The output folder of a download.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Samples per WebDataset shard.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_size: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// The output folder of a download.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where to write the manifest [default: OUT/manifest.json].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// A manifest file or an output folder.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// A manifest file or an output folder.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Print a JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The output folder of a download.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Clips checked at once [default: cores].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// The ffmpeg program.
    #[arg(long, env = "KINETICS_DL_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
    /// The ffprobe program.
    #[arg(long, env = "KINETICS_DL_FFPROBE", default_value = "ffprobe")]
    pub ffprobe: PathBuf,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Torchvision => Format::Torchvision,
            FormatArg::Mmaction2 => Format::Mmaction2,
            FormatArg::Pytorchvideo => Format::Pytorchvideo,
            FormatArg::Slowfast => Format::Slowfast,
            FormatArg::Csv => Format::Csv,
            FormatArg::Webdataset => Format::Webdataset,
        }
    }
}

impl From<ReportArgs> for crate::report::ReportOptions {
    fn from(a: ReportArgs) -> Self {
        Self { out: a.out.unwrap_or_else(|| PathBuf::from(".")), json: a.json, fleet: a.fleet.into_ref() }
    }
}

impl From<ExportArgs> for crate::export::ExportOptions {
    fn from(a: ExportArgs) -> Self {
        Self { out: a.out, format: a.format.into(), shard_size: a.shard_size }
    }
}

impl From<ManifestArgs> for crate::manifest::ManifestOptions {
    fn from(a: ManifestArgs) -> Self {
        Self { out: a.out, output: a.output }
    }
}

impl From<DiffArgs> for crate::manifest::DiffOptions {
    fn from(a: DiffArgs) -> Self {
        Self { a: a.a, b: a.b, json: a.json }
    }
}

impl From<VerifyArgs> for crate::verify::VerifyOptions {
    fn from(a: VerifyArgs) -> Self {
        Self { out: a.out, jobs: a.jobs, ffmpeg: a.ffmpeg, ffprobe: a.ffprobe }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The journal's record of a command line hides a `--db` password, in both spellings of the option.
    #[test]
    fn the_recorded_command_line_hides_the_database_password() {
        let cases = [
            (
                "kinetics-dl download --db postgres://u:pw@h/db --fleet f",
                "kinetics-dl download --db postgres://u:***@h/db --fleet f",
            ),
            (
                "kinetics-dl download --db=postgres://u:pw@h/db?sslmode=require",
                "kinetics-dl download --db=postgres://u:***@h/db?sslmode=require",
            ),
            ("kinetics-dl download --out u:pw@x --fleet f", "kinetics-dl download --out u:pw@x --fleet f"),
        ];
        for (line, want) in cases {
            assert_eq!(download::command_line(line.split(' ').map(String::from)), want);
        }
    }

    #[test]
    fn value_names_match_the_domain_names() {
        for f in FormatArg::value_variants() {
            assert_eq!(f.to_possible_value().unwrap().get_name(), Format::from(*f).name());
        }
        for c in ClassDirsArg::value_variants() {
            let domain = serde_json::to_value(ClassDirs::from(*c)).unwrap();
            assert_eq!(c.to_possible_value().unwrap().get_name(), domain.as_str().unwrap());
        }
    }

    /// `--trim` left out is `smart`, except where every frame is encoded anyway or there is no video; a
    /// trim asked for is the trim used.
    #[test]
    fn the_default_trim_is_smart_unless_every_frame_is_encoded() {
        let cases: [(&[&str], Trim); 9] = [
            (&[], Trim::Smart),
            (&["--no-audio"], Trim::Smart),
            (&["--short-side", "128"], Trim::Exact),
            (&["--fps", "10"], Trim::Exact),
            (&["--audio-only"], Trim::Exact),
            (&["--trim", "exact"], Trim::Exact),
            (&["--trim", "copy"], Trim::Copy),
            (&["--trim", "smart"], Trim::Smart),
            (&["--trim", "smart", "--short-side", "128"], Trim::Smart),
        ];
        for (extra, want) in cases {
            let args = ["kinetics-dl", "download", "--out", "o", "--annotations", "a.csv"].iter().chain(extra);
            let Command::Download(d) = Cli::parse_from(args).command else { panic!() };
            assert_eq!(d.trim(), want, "{extra:?}");
        }
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

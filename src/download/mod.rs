//! `kinetics-dl download`: annotations → plan → journal → clips, with resume.

mod clip;
mod fleet;
mod from_mirror;
mod local;
pub mod logs;
pub(crate) mod outages;
mod scheduler;
mod store;

pub use clip::{expected_duration, DashRefusal, Engine, Exit, Outcome, Task};

use crate::config::Source;
use crate::config::{Config, Input};
use crate::exit_codes::UsageExt;
use crate::journal::{Journal, KnownPlan};
use crate::outdir::OutDir;
use crate::progress::Reporter;
use crate::summary::Summary;
use crate::tools::ffmpeg::Ffmpeg;
use crate::tools::process::StopSignal;
use crate::tools::ytdlp::YtDlp;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use store::Store as _;

/// How a download ended.
#[derive(Debug)]
pub struct RunResult {
    pub exit_code: i32,
    pub summary: Summary,
}

/// A broken machine (a tool missing or failing its version check): the run ends with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvironmentError(pub String);

/// Runs a whole download. `stop` turns true on the first Ctrl-C.
pub async fn run(cfg: Config, reporter: &mut dyn Reporter, stop: StopSignal) -> anyhow::Result<RunResult> {
    let started = std::time::Instant::now();
    let usage = crate::cpu::Usage::now();
    let ytdlp = YtDlp {
        max_height: cfg.max_height,
        extra_args: cfg.ytdlp_args.clone(),
        audio_only: cfg.encode.audio_only.is_some(),
        ..YtDlp::new(cfg.ytdlp.clone())
    };
    let ffmpeg = Ffmpeg { ffmpeg: cfg.ffmpeg.clone(), ffprobe: cfg.ffprobe.clone() };
    // The tools answer their version check (a Python start for yt-dlp) while the annotations are read.
    let tools = {
        let (ytdlp, ffmpeg, stop, cfg) = (ytdlp.clone(), ffmpeg.clone(), stop.clone(), cfg.clone());
        tokio::spawn(async move {
            // The API's first worker starts beside them: each is a Python start and a yt-dlp import.
            let (versions, api) = tokio::join!(check_tools(&ytdlp, &ffmpeg, stop.clone()), api_workers(&cfg, stop));
            let versions = versions?;
            let api = api?.settle(&versions.0, &cfg.ytdlp).await?;
            Ok::<_, EnvironmentError>((versions, api))
        })
    };
    let inputs = match &cfg.input {
        // A fleet worker without annotations: the fleet's database holds the clips.
        Input::Files(files) if files.is_empty() && cfg.fleet.is_some() => None,
        _ => Some(resolve_inputs(&cfg).await.or_usage()?),
    };
    // A rerun whose inputs and settings are those of the plan the journal holds skips reading and
    // journaling it again: the digest covers every byte of the annotation files and every setting that
    // shapes the plan. The mirror and the fleet need the plan itself.
    let digest = match &inputs {
        Some((paths, filters)) if cfg.fleet.is_none() && cfg.source == Source::Youtube => {
            Some(plan_digest(&cfg, paths, filters).or_usage()?)
        }
        _ => None,
    };
    // OUT is opened before reading only when it already has a journal, which may know this plan.
    let mut opened = None;
    let mut known = None;
    if let Some(digest) = &digest {
        if Journal::path_in(&cfg.out).is_file() {
            let out = OutDir::open(&cfg.out).or_usage()?;
            let journal = Journal::open(&Journal::path_in(out.root())).or_usage()?;
            known = journal.known_plan(digest)?;
            opened = Some((out, journal));
        }
    }
    let (n_rows, plan) = match (&known, inputs) {
        (Some(k), _) => (k.rows, None),
        (None, None) => (0, Some(crate::plan::Plan { class_dirs: cfg.class_dirs, ..Default::default() })),
        (None, Some((paths, filters))) => {
            // Each row goes into the plan as it is read: 650,000 rows are never held at once.
            let mut planner = crate::plan::Builder::new(cfg.class_dirs, crate::tools::ffmpeg::clip_ext(&cfg.encode));
            let read = crate::annotations::read_each_with(&paths, &filters, &cfg.preset, &cfg.read, &mut |row| {
                planner.add(row)
            });
            let n_rows = read.or_usage()? as u64;
            let mut plan = planner.finish();
            if let Some(shard) = cfg.shard {
                // After planning, by video: the share is the same for any row order or file split.
                plan.jobs.retain(|j| shard.owns(&j.key.youtube_id));
            }
            (n_rows, Some(plan))
        }
    };
    match (&plan, &known) {
        (Some(plan), _) => {
            tracing::info!(rows = n_rows, clips = plan.jobs.len(), merged = plan.duplicates_merged, "planned")
        }
        (None, Some(k)) => tracing::info!(rows = k.rows, clips = k.clips, "the journal holds this plan already"),
        (None, None) => {}
    }
    let ((ytdlp_version, ffmpeg_version), api) = tools.await.context("the tool check did not finish")??;

    // An unreachable database or other settings than the fleet's: the user's to fix, exit 2.
    let db = match (&cfg.fleet, &plan) {
        (Some(f), Some(plan)) => Some(join_fleet(&cfg, f, plan).await.or_usage()?),
        _ => None,
    };
    let (out, mut journal) = match opened {
        Some(opened) => opened,
        None => {
            let out = OutDir::open(&cfg.out).or_usage()?;
            let journal = Journal::open(&Journal::path_in(out.root())).or_usage()?;
            (out, journal)
        }
    };
    journal.pin_shard(cfg.shard.map(|s| s.to_string()).as_deref()).or_usage()?;
    let cfg = keep_the_folders_trim(cfg, &journal)?;
    // A fleet worker's journal holds the clips it claims, added one by one: the plan is the fleet's.
    let synced = match &plan {
        Some(plan) if db.is_none() => journal.sync(&plan.jobs)?,
        _ => crate::journal::Synced { added: 0, imported_from: None },
    };
    tracing::info!(added = synced.added, imported = synced.imported_from.is_some(), "journal synced");
    let run_id = journal.begin_run(&cfg.command_line, &cfg.settings_json(&api.1), &ytdlp_version, &ffmpeg_version)?;
    let api = api.0;

    let relay =
        crate::relay::Relay::start(crate::relay::RelayConfig { request_size: cfg.request_size, ..Default::default() })
            .await
            .context("failed to start the media relay")?;
    // An egress refused DASH in an earlier run starts its clips from itag 18 (the journal keeps it).
    // A refusal lapses after a day: that egress tries DASH again, and a new refusal holds another day.
    let now_ms = crate::journal::now_ms();
    let (refused, lapsed): (Vec<_>, Vec<_>) = journal.dash_refused()?.into_iter().partition(|r| r.holds_at(now_ms));
    let refused: std::collections::HashSet<String> = refused.into_iter().map(|r| r.egress).collect();
    for r in lapsed.iter().filter(|r| cfg.egresses.iter().any(|e| e.name == r.egress)) {
        tracing::info!(egress = %r.egress, "DASH was refused on this egress more than a day ago: trying DASH again");
    }
    let exits = cfg
        .egresses
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let dash_refused = if refused.contains(&e.name) { DashRefusal::recorded() } else { DashRefusal::default() };
            // The learned rate starts unpaced under the `--rate` ceiling; the store puts back what an earlier
            // run learned (`Store::load_breakers`).
            let aimd = crate::governor::Aimd::new(crate::governor::rate::ceiling_per_s(cfg.throttle.rate_per_hour));
            let gate = crate::governor::Gate::new(aimd, cfg.throttle.breaker);
            // The hold, for the egress's yt-dlp workers: in the run's temp space (cleared at each start), named
            // by the egress's place in the list, not by anything the user wrote.
            let hold = cfg.throttle.breaker.then(|| out.tmp().join(format!("hold-{i}")));
            if let Some(path) = &hold {
                gate.watch_hold(tell_hold(path.clone()));
            }
            Ok(Exit { args: e.ytdlp_args(), client: e.client()?, dash_refused, gate, hold })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .or_usage()?;
    // The run's temp space is empty after it, holds and all (a killed run's are swept at the next start).
    let _holds = HoldFiles(exits.iter().filter_map(|e| e.hold.clone()).collect());
    if !refused.is_empty() {
        tracing::info!(egresses = ?refused, "DASH was refused on these egresses in an earlier run: their clips start from itag 18");
    }
    let cache_dir = Some(out.root().join(crate::journal::STATE_DIR).join("yt-dlp-cache"));
    let ytdlp = YtDlp { cache_dir, api: api.clone(), ..ytdlp };
    let engine = Arc::new(Engine {
        ytdlp,
        ffmpeg,
        relay,
        exits,
        encode: cfg.encode.clone(),
        encode_slots: Arc::new(tokio::sync::Semaphore::new(cfg.encode_jobs)),
        tmp_dir: out.tmp(),
    });

    if let Some(db) = db {
        let store = fleet::FleetStore::new(&cfg, db, &out, &mut journal).await?;
        let mut summary = scheduler::Scheduler::new(&cfg, store, engine, run_id, stop)?.run(reporter).await?;
        end_workers(api.as_deref()).await;
        summary.elapsed = started.elapsed();
        summary.process_cpu = crate::cpu::Usage::now().since(&usage);
        summary.rows = n_rows;
        logs::write(&journal, out.root()).context("failed to write stats.csv and failed.csv")?;
        journal.finish_run(run_id, summary.exit_code)?;
        return Ok(RunResult { exit_code: summary.exit_code, summary });
    }
    let mirror = match (cfg.source, &plan) {
        (Source::Mirror | Source::Auto, Some(plan)) => {
            Some(from_mirror::run(&cfg, &out, &mut journal, plan, run_id, reporter, stop.clone()).await?)
        }
        _ => None,
    };
    let scope = match (&plan, &known, synced.imported_from) {
        // Nothing but the import touched the journal: its clips are the plan's, all pending.
        (Some(plan), _, Some(first_id)) if mirror.is_none() => local::Scope::Imported { plan, first_id },
        (Some(plan), _, _) => local::Scope::Plan(plan),
        (None, Some(k), _) => local::Scope::Journal { planned: k.clips },
        (None, None, _) => unreachable!("a run without a plan knows its plan"),
    };
    let store = local::JournalStore::new(&cfg, &out, &mut journal, engine.clone(), scope, stop.clone())?;
    let mut sched = scheduler::Scheduler::new(&cfg, store, engine, run_id, stop)?;
    let duplicates_merged = match (&plan, &known) {
        (Some(plan), _) => plan.duplicates_merged as u64,
        (None, Some(k)) => k.merged,
        (None, None) => 0,
    };
    if let (Some(digest), Some(plan)) = (&digest, &plan) {
        if sched.store().plan_is_journal() {
            let known = KnownPlan { clips: plan.jobs.len() as u64, rows: n_rows, merged: duplicates_merged };
            sched.store().journal().remember_plan(digest, &known)?;
        }
    }
    drop(plan);
    let mut summary = sched.run(reporter).await?;
    end_workers(api.as_deref()).await;
    if let Some(m) = mirror {
        summary.from_mirror = m.placed;
        summary.mirror_bad = m.bad;
        summary.mirror_missing = m.missing;
        summary.mirror_tarballs = m.stats.tarballs;
        summary.mirror_bytes = m.stats.bytes_downloaded;
        summary.mirror_unmatched = m.unmatched;
        // The scheduler saw the clips the mirror just placed as already done.
        summary.already_done = summary.already_done.saturating_sub(m.placed);
        summary.done += m.placed;
    }
    summary.elapsed = started.elapsed();
    summary.process_cpu = crate::cpu::Usage::now().since(&usage);
    summary.duplicates_merged = duplicates_merged;
    summary.rows = n_rows;
    logs::write(&journal, out.root()).context("failed to write stats.csv and failed.csv")?;
    journal.finish_run(run_id, summary.exit_code)?;
    Ok(RunResult { exit_code: summary.exit_code, summary })
}

/// Connects to the fleet's database, pins (or checks) the settings and adds the planned clips it lacks.
async fn join_fleet(
    cfg: &Config,
    f: &crate::config::FleetOptions,
    plan: &crate::plan::Plan,
) -> anyhow::Result<crate::fleet::Db> {
    let db = crate::fleet::Db::connect(&f.url, &f.schema, &f.name).await?;
    let (settings, hash) = crate::fleet::pinned_settings(cfg);
    db.pin(&settings, &hash, f.lease).await?;
    if !plan.jobs.is_empty() {
        let t0 = std::time::Instant::now();
        let seeded = db.seed(&plan.jobs).await.context("failed to seed the fleet's clips")?;
        let (added, filled_in) = (seeded.added, seeded.filled_in);
        tracing::info!(added, filled_in, planned = plan.jobs.len(), secs = t0.elapsed().as_secs_f64(), "fleet seeded");
    }
    Ok(db)
}

/// Asks each tool for its version: a missing or broken tool stops the run before any clip is tried.
async fn check_tools(ytdlp: &YtDlp, ffmpeg: &Ffmpeg, stop: StopSignal) -> Result<(String, String), EnvironmentError> {
    // Side by side (a Python start is most of the wait); a missing tool is said in this order.
    let (mut s1, mut s2, mut s3) = (stop.clone(), stop.clone(), stop);
    let (ytdlp_version, ffmpeg_version, probe) =
        tokio::join!(ytdlp.version(&mut s1), ffmpeg.version(&mut s2), ffmpeg.probe_version(&mut s3));
    let ytdlp_version = ytdlp_version.map_err(|f| EnvironmentError(f.message))?;
    let ffmpeg_version = ffmpeg_version.map_err(|f| EnvironmentError(f.message))?;
    let probe = probe.map_err(|f| EnvironmentError(f.message))?;
    tracing::debug!(%ytdlp_version, %ffmpeg_version, %probe, "tools");
    Ok((ytdlp_version, ffmpeg_version))
}

/// The API workers' pools, if the run has them, and the mode the run uses as the journal records it.
type ApiWorkers = (Option<Arc<crate::tools::extractor::Pools>>, String);

/// The API workers before their yt-dlp is compared with the command's: the pools and what their first
/// worker answered, or why the command line serves.
enum ApiStart {
    Cli(String),
    Pinged { pools: Box<crate::tools::extractor::Pools>, ping: crate::tools::extractor::Ping, explicit: bool },
}

/// Tells an egress's hold to its yt-dlp workers: the file at `path` holds the Unix milliseconds it lasts to
/// (0: lifted), put in place whole. A hold is only ever pushed later here, since a worker that met a 429 may
/// have pushed it further already (the gate hears of that a moment later, in its note); the probe's answer
/// lifts it.
fn tell_hold(path: PathBuf) -> crate::governor::rate::HoldWatch {
    Box::new(move |until: Option<std::time::Instant>| {
        let ms = until.map_or(0, |u| {
            let left = u.saturating_duration_since(std::time::Instant::now());
            crate::journal::now_ms() as u64 + left.as_millis() as u64
        });
        let told = || std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<u64>().ok());
        if until.is_some() && told().is_some_and(|t| t >= ms) {
            return;
        }
        if let Err(e) = crate::outdir::write_atomic(&path, ms.to_string().as_bytes()) {
            tracing::warn!("failed to write the egress's hold {}: {e}", path.display());
        }
    })
}

/// The egresses' hold files, taken away when the run ends, after its yt-dlp workers.
struct HoldFiles(Vec<PathBuf>);

impl Drop for HoldFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `--ytdlp-mode api`: the pools, once a worker has started and answered (it then serves the first clip).
/// [`ApiStart::settle`] keeps them if that worker's yt-dlp is the command's. The command line serves when
/// the mode is `cli`, or when the yt-dlp program is not a Python script or its Python cannot serve (said in
/// the log and in the mode recorded: `cli (api: why not)`); an explicit `--ytdlp-python` that cannot serve
/// is the machine's fault (exit 2).
async fn api_workers(cfg: &Config, mut stop: StopSignal) -> Result<ApiStart, EnvironmentError> {
    use crate::tools::extractor::{find_python, Limits, Pools, Python};
    if cfg.ytdlp_mode == crate::config::YtdlpMode::Cli {
        return Ok(ApiStart::Cli("cli".into()));
    }
    let python = match &cfg.ytdlp_python {
        Some(program) => Python { program: program.clone(), zipapp: None },
        None => match find_python(&cfg.ytdlp, std::env::var_os("PATH").as_deref()) {
            Ok(python) => python,
            Err(why) => {
                tracing::info!("{why}: yt-dlp runs as a command line for each clip");
                return Ok(ApiStart::Cli(format!("cli (api: {why})")));
            }
        },
    };
    let limits = Limits { timeout: cfg.extract_timeout, recycle_after: cfg.worker_clips, max_idle: cfg.jobs };
    let pools = Pools::new(python, limits);
    let explicit = cfg.ytdlp_python.is_some();
    match pools.ping(&mut stop).await {
        Ok(ping) => Ok(ApiStart::Pinged { pools: Box::new(pools), ping, explicit }),
        Err(f) if explicit => Err(EnvironmentError(f.message)),
        Err(f) => {
            tracing::warn!("{}: yt-dlp runs as a command line for each clip", f.message);
            Ok(ApiStart::Cli(format!("cli (api: {})", f.message)))
        }
    }
}

impl ApiStart {
    /// The pools if their yt-dlp is `version`, that of the command `ytdlp`; else they end, and the command
    /// line serves.
    async fn settle(self, version: &str, ytdlp: &std::path::Path) -> Result<ApiWorkers, EnvironmentError> {
        let (pools, ping, explicit) = match self {
            ApiStart::Cli(mode) => return Ok((None, mode)),
            ApiStart::Pinged { pools, ping, explicit } => (pools, ping, explicit),
        };
        if ping.version == version {
            tracing::info!(python = %ping.python, module = %ping.module, %version, "yt-dlp runs in API workers");
            return Ok((Some(Arc::new(*pools)), "api".into()));
        }
        pools.shutdown().await;
        let why =
            format!("the Python {} has yt-dlp {} but {} is {version}", ping.python, ping.version, ytdlp.display());
        if explicit {
            return Err(EnvironmentError(format!("{why}: --ytdlp-python must name the Python of --ytdlp")));
        }
        tracing::warn!("{why}: yt-dlp runs as a command line for each clip (--ytdlp-python picks the Python)");
        Ok((None, format!("cli (api: {why})")))
    }
}

/// Ends the API workers at the end of a run (each saves its cookies, as the command line does).
async fn end_workers(api: Option<&crate::tools::extractor::Pools>) {
    if let Some(pools) = api {
        pools.shutdown().await;
        let (started, lost) = pools.counts();
        tracing::info!(started, lost, "yt-dlp API workers ended");
    }
}

/// The annotation files (fetched dataset archives first, when a dataset is named, then the files given)
/// and the row filters, with the classes file read into them.
async fn resolve_inputs(cfg: &Config) -> anyhow::Result<(Vec<PathBuf>, crate::annotations::Filters)> {
    let mut filters = cfg.filters.clone();
    if let Some(path) = &cfg.classes_file {
        let set = crate::annotations::read_classes_file(path)?;
        filters.classes.get_or_insert_with(Default::default).extend(set);
    }
    let paths: Vec<PathBuf> = match &cfg.input {
        Input::Files(files) => files.clone(),
        Input::Dataset { name, base_url, cache_dir, extra } => {
            let client = reqwest::Client::builder().build()?;
            let mut paths =
                crate::dataset::fetch_annotations(name, base_url, cache_dir, &filters.splits, &client).await?;
            paths.extend(extra.iter().cloned());
            paths
        }
    };
    Ok((paths, filters))
}

/// A rerun without `--trim` goes on the way its folder's clips were made: with the trim of the journal's last
/// run, where the default (`smart`) would otherwise apply. A folder begun before `smart` became the default
/// (issue 10) keeps the exact cut, and one made with `--trim copy` the keyframe copy, instead of mixing trims
/// (which `merge` would refuse, and a fleet's pinned settings too). Where the default is `exact` anyway
/// (`--short-side`, `--fps`, `--audio-only`), `--trim` was given, or in a fleet, nothing changes.
fn keep_the_folders_trim(mut cfg: Config, journal: &Journal) -> anyhow::Result<Config> {
    // A fleet's settings, the trim among them, are pinned in its database by its first run.
    if cfg.trim_given || !cfg.encode.smart || cfg.fleet.is_some() {
        return Ok(cfg);
    }
    let (copy, smart) = match journal.last_trim()?.as_deref() {
        Some("exact") => (false, false),
        Some("copy") => (true, false),
        _ => return Ok(cfg),
    };
    (cfg.encode.copy, cfg.encode.smart) = (copy, smart);
    let trim = cfg.encode.trim_name();
    // A warning, so that it shows without -v and in a log: the default is not what this run does.
    tracing::warn!("cutting with --trim {trim}, as this folder's last run did (give --trim to change it)");
    Ok(cfg)
}

/// sha256 over everything that shapes the plan: this build, the filters, the class folder naming, the
/// static shard and every byte of every annotation file, in order.
fn plan_digest(cfg: &Config, paths: &[PathBuf], filters: &crate::annotations::Filters) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut h = Sha256::new();
    let settings = format!(
        "kinetics-dl {} journal {} plan v1\npreset {:?}\nread {:?}\nsplits {:?}\nclasses {:?}\nlimit {:?}\nclass_dirs {:?}\nshard {:?}\nclips .{}\nfiles {}\n",
        env!("CARGO_PKG_VERSION"),
        crate::journal::SCHEMA_VERSION,
        cfg.preset,
        cfg.read,
        filters.splits,
        filters.classes,
        filters.limit,
        cfg.class_dirs,
        cfg.shard.map(|s| s.to_string()),
        crate::tools::ffmpeg::clip_ext(&cfg.encode),
        paths.len()
    );
    h.update(settings.as_bytes());
    let mut buf = vec![0u8; 1 << 20];
    for path in paths.iter().chain(&cfg.read.labels_file) {
        let mut file = std::fs::File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).with_context(|| format!("failed to read {}", path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            len += n as u64;
        }
        h.update(format!("\nend of file, {len} bytes\n").as_bytes());
    }
    Ok(crate::units::hex(&h.finalize()))
}

//! `kinetics-dl download`: annotations → plan → journal → clips, with resume.

mod clip;
mod fleet;
mod from_mirror;
pub mod logs;
pub(crate) mod outages;
mod scheduler;

pub use clip::{expected_duration, Engine, Exit, Outcome, Task};

use crate::config::Source;
use crate::config::{Config, Input};
use crate::exit_codes::UsageExt;
use crate::journal::Journal;
use crate::outdir::OutDir;
use crate::progress::Reporter;
use crate::summary::Summary;
use crate::tools::ffmpeg::Ffmpeg;
use crate::tools::process::StopSignal;
use crate::tools::ytdlp::YtDlp;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;

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
    let rows = match &cfg.input {
        // A fleet worker without annotations: the fleet's database holds the clips.
        Input::Files(files) if files.is_empty() && cfg.fleet.is_some() => vec![],
        _ => read_rows(&cfg).await.or_usage()?,
    };
    let mut plan = crate::plan::build(&rows, cfg.class_dirs);
    if let Some(shard) = cfg.shard {
        // After planning, by video: the share is the same for any row order or file split.
        plan.jobs.retain(|j| shard.owns(&j.key.youtube_id));
    }
    tracing::info!(rows = rows.len(), clips = plan.jobs.len(), merged = plan.duplicates_merged, "planned");

    let ytdlp = YtDlp {
        program: cfg.ytdlp.clone(),
        max_height: cfg.max_height,
        cache_dir: None,
        socket_timeout_secs: 30,
        extra_args: cfg.ytdlp_args.clone(),
    };
    let ffmpeg = Ffmpeg { ffmpeg: cfg.ffmpeg.clone(), ffprobe: cfg.ffprobe.clone() };
    let (ytdlp_version, ffmpeg_version) = check_tools(&ytdlp, &ffmpeg, stop.clone()).await?;

    // An unreachable database or other settings than the fleet's: the user's to fix, exit 2.
    let db = match &cfg.fleet {
        Some(f) => Some(join_fleet(&cfg, f, &plan).await.or_usage()?),
        None => None,
    };
    let out = OutDir::open(&cfg.out).or_usage()?;
    let mut journal = Journal::open(&Journal::path_in(out.root())).or_usage()?;
    journal.pin_shard(cfg.shard.map(|s| s.to_string()).as_deref()).or_usage()?;
    // A fleet worker's journal holds the clips it claims, added one by one: the plan is the fleet's.
    let added = if db.is_some() { 0 } else { journal.sync_plan(&plan.jobs)? };
    tracing::info!(added, "journal synced");
    let run_id = journal.begin_run(&cfg.command_line, &cfg.settings_json(), &ytdlp_version, &ffmpeg_version)?;

    let relay =
        crate::relay::Relay::start(crate::relay::RelayConfig { request_size: cfg.request_size, ..Default::default() })
            .await
            .context("failed to start the media relay")?;
    let exits = cfg
        .egresses
        .iter()
        .map(|e| Ok(Exit { args: e.ytdlp_args(), client: e.client()? }))
        .collect::<anyhow::Result<Vec<_>>>()
        .or_usage()?;
    let ytdlp = YtDlp { cache_dir: Some(out.root().join(crate::journal::STATE_DIR).join("yt-dlp-cache")), ..ytdlp };
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
        let worker = fleet::Worker::new(&cfg, db, &out, &mut journal, engine, run_id, stop).await?;
        let mut summary = worker.run(reporter).await?;
        summary.elapsed = started.elapsed();
        summary.rows = rows.len() as u64;
        logs::write(&journal, out.root()).context("failed to write stats.csv and failed.csv")?;
        journal.finish_run(run_id, summary.exit_code)?;
        return Ok(RunResult { exit_code: summary.exit_code, summary });
    }
    let mirror = match cfg.source {
        Source::Youtube => None,
        Source::Mirror | Source::Auto => {
            Some(from_mirror::run(&cfg, &out, &mut journal, &plan, run_id, reporter, stop.clone()).await?)
        }
    };
    let sched = scheduler::Scheduler::new(&cfg, &out, &mut journal, engine, run_id, &plan, stop)?;
    let mut summary = sched.run(reporter).await?;
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
    summary.duplicates_merged = plan.duplicates_merged as u64;
    summary.rows = rows.len() as u64;
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
        let added = db.seed(&plan.jobs).await.context("failed to seed the fleet's clips")?;
        tracing::info!(added, planned = plan.jobs.len(), secs = t0.elapsed().as_secs_f64(), "fleet seeded");
    }
    Ok(db)
}

/// Asks each tool for its version: a missing or broken tool stops the run before any clip is tried.
async fn check_tools(
    ytdlp: &YtDlp,
    ffmpeg: &Ffmpeg,
    mut stop: StopSignal,
) -> Result<(String, String), EnvironmentError> {
    let ytdlp_version = ytdlp.version(&mut stop).await.map_err(|f| EnvironmentError(f.message))?;
    let ffmpeg_version = ffmpeg.version(&mut stop).await.map_err(|f| EnvironmentError(f.message))?;
    let probe = ffmpeg.probe_version(&mut stop).await.map_err(|f| EnvironmentError(f.message))?;
    tracing::debug!(%ytdlp_version, %ffmpeg_version, %probe, "tools");
    Ok((ytdlp_version, ffmpeg_version))
}

/// The annotation rows: fetched dataset archives first (when a dataset is named), then the files given.
async fn read_rows(cfg: &Config) -> anyhow::Result<Vec<crate::annotations::Row>> {
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
    Ok(crate::annotations::read_all(&paths, &filters)?)
}

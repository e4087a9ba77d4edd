//! `kinetics-dl status`: what the journal in OUT knows (counts, failures by category, egresses).

use crate::exit_codes::{self, UsageExt};
use crate::journal::Journal;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Prints what the journal in `out` knows, as a table or (`json`) a JSON object; returns the exit code.
pub fn run(out_dir: &Path, json: bool) -> anyhow::Result<i32> {
    let journal = Journal::open_existing(out_dir)?;
    let crate::journal::StatusCounts { counts, cpu, classes } = journal.status_counts()?;
    let classes = crate::report::data::classes(classes);
    let last = journal.last_run()?;
    let egresses = egress_report(&journal)?;
    let shard = journal.shard()?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(&counts)?;
        if let Some((started, finished, ytdlp, ffmpeg, mode)) = &last {
            v["last_run"] = serde_json::json!({
                "started_ms": started, "finished_ms": finished, "ytdlp_version": ytdlp, "ffmpeg_version": ffmpeg,
                "ytdlp_mode": mode,
            });
        }
        v["egresses"] = serde_json::to_value(&egresses)?;
        v["shard"] = serde_json::to_value(&shard)?;
        v["cpu_per_clip"] = serde_json::to_value(&cpu)?;
        v["classes"] = serde_json::to_value(&classes)?;
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(exit_codes::SUCCESS);
    }
    writeln!(out, "{}", out_dir.display())?;
    if let Some(s) = &shard {
        writeln!(out, "  shard     {s:>8}")?;
    }
    writeln!(out, "  clips     {:>8}", counts.total)?;
    writeln!(out, "  done      {:>8}", counts.done)?;
    for (source, n) in &counts.by_source {
        writeln!(out, "    from {source:<15} {n:>6}")?;
    }
    writeln!(out, "  pending   {:>8}", counts.pending)?;
    writeln!(out, "  failed    {:>8}", counts.failed_total())?;
    let mut failed: Vec<_> = counts.failed.iter().collect();
    failed.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (category, n) in failed {
        writeln!(out, "    {category:<20} {n:>6}")?;
    }
    writeln!(
        out,
        "  on disk   {} ({} fetched, {} whole-video fallbacks)",
        crate::units::human_bytes(counts.bytes_on_disk),
        crate::units::human_bytes(counts.bytes_fetched),
        counts.whole_video_fallbacks
    )?;
    if counts.media_requests > 0 {
        writeln!(
            out,
            "  media requests {} for the done clips ({:.1} a clip fetched through the relay)",
            counts.media_requests, counts.media_requests_per_clip
        )?;
    }
    for line in class_lines(&classes) {
        writeln!(out, "{line}")?;
    }
    for line in cpu.lines("  ") {
        writeln!(out, "{line}")?;
    }
    for e in &egresses {
        let state = match &e.open_until {
            Some(t) => format!("cooling down until {t}"),
            None => "open for work".to_string(),
        };
        writeln!(
            out,
            "  egress {:<22} {state}; {} throttle signals, {} requests into bans",
            e.egress, e.throttle_events, e.wasted
        )?;
        if let Some(rate) = e.learned_rate_per_min {
            writeln!(out, "         {:<22} learned rate {rate:.1} requests/min (from its bans)", "")?;
        }
        if let (Some(since), Some(until)) = (&e.dash_refused_since, &e.dash_refused_until) {
            let then = match e.dash_refused_lapsed {
                false => format!("clips start from itag 18 until {until}, then DASH is tried again"),
                true => format!("lapsed at {until}: the next run tries DASH again"),
            };
            writeln!(out, "         {:<22} DASH refused since {since}; {then}", "")?;
        }
        if e.outages > 0 || e.outage_signals > 0 {
            writeln!(
                out,
                "         {:<22} down {} times, {} in all; {} clips given back, uncharged",
                "",
                e.outages,
                crate::retry::format_duration(std::time::Duration::from_secs_f64(e.down_s)),
                e.outage_signals
            )?;
        }
    }
    if let Some((_, _, ytdlp, ffmpeg, mode)) = last {
        let mode = mode.map(|m| format!(" ({m})")).unwrap_or_default();
        writeln!(out, "  last run with yt-dlp {}{mode} and {}", ytdlp.unwrap_or_default(), ffmpeg.unwrap_or_default())?;
    }
    Ok(exit_codes::SUCCESS)
}

/// How many classes, the fewest done clips a class has and which, the worst coverage (none without labels).
/// A clip with several labels counts in each of its classes.
fn class_lines(c: &crate::report::data::Classes) -> Vec<String> {
    if c.count == 0 {
        return Vec::new();
    }
    let names = |labels: &mut dyn Iterator<Item = &String>, n: usize| {
        let shown: Vec<String> = labels.take(3).map(|l| format!("{l:?}")).collect();
        let more = if n > shown.len() { format!(" and {} more", n - shown.len()) } else { String::new() };
        format!("{}{more}", shown.join(", "))
    };
    let mut lines = vec![format!("  classes   {:>8}", c.count)];
    if c.multi_label_clips > 0 {
        lines[0] += &format!(" ({} clips have several labels and count in each)", c.multi_label_clips);
    }
    lines.push(format!(
        "    fewest done {}: {}; median {}",
        c.min_done,
        names(&mut c.min_done_classes.iter(), c.min_done_classes.len()),
        c.median_done
    ));
    let worst: Vec<String> = (c.rows.iter().take(3))
        .map(|r| format!("{:?} {}/{} ({:.0}%)", r.label, r.tally.done, r.tally.total, r.coverage * 100.0))
        .collect();
    lines.push(format!("    worst coverage {}", worst.join(", ")));
    lines
}

/// Prints what fleet `fleet`'s database knows, as a table or (`json`) a JSON object with the keys of an
/// output folder's status plus the fleet's own.
pub fn run_fleet(fleet: &crate::fleet::FleetRef, json: bool) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status = rt.block_on(async {
        let db = fleet.open().await.or_usage()?;
        db.status().await
    })?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?;
        return Ok(exit_codes::SUCCESS);
    }
    let s = &status;
    writeln!(out, "fleet {}", s.fleet)?;
    writeln!(out, "  clips     {:>8}", s.total)?;
    writeln!(out, "  done      {:>8}", s.done)?;
    writeln!(out, "  pending   {:>8}", s.pending)?;
    writeln!(out, "  leased    {:>8}", s.leased)?;
    writeln!(out, "  failed    {:>8}", s.failed.values().sum::<u64>())?;
    let mut failed: Vec<_> = s.failed.iter().collect();
    failed.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (category, n) in failed {
        writeln!(out, "    {category:<20} {n:>6}")?;
    }
    writeln!(
        out,
        "  kept      {} ({} fetched)",
        crate::units::human_bytes(s.bytes_on_disk),
        crate::units::human_bytes(s.bytes_fetched)
    )?;
    if let Some(fewest) = s.classes.values().map(|c| c.done).min() {
        let names: Vec<&str> =
            s.classes.iter().filter(|(_, c)| c.done == fewest).map(|(name, _)| name.as_str()).take(3).collect();
        let more = s.classes.values().filter(|c| c.done == fewest).count().saturating_sub(names.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        writeln!(
            out,
            "  classes   {:>8} (every label of a clip counted; fewest done: {fewest}, {}{more})",
            s.classes.len(),
            names.join(", ")
        )?;
    }
    let eta = s.eta_s.map_or("unknown".to_string(), |e| crate::retry::format_duration(Duration::from_secs_f64(e)));
    writeln!(out, "  pace      {:.1} clips/min over the last 10 min; time left {eta}", s.clips_per_min)?;
    for w in &s.workers {
        let state = match (&w.stop_reason, w.alive) {
            (Some(reason), _) => format!("stopped ({reason})"),
            (None, true) => "alive".to_string(),
            (None, false) => format!("silent for {:.0} s (dead?)", w.heartbeat_age_s),
        };
        writeln!(
            out,
            "  worker {} on {} ({}, {}): {state}; {} done, {} held, {:.1} clips/min",
            w.worker, w.host, w.region, w.domain, w.done, w.leased, w.clips_per_min
        )?;
    }
    for d in &s.domains {
        let state = match (d.breaker.as_str(), d.reopens_in_s) {
            ("open", Some(secs)) => {
                format!("open, probed in {}", crate::retry::format_duration(Duration::from_secs_f64(secs)))
            }
            ("half_open", _) => format!("probing ({})", d.prober.as_deref().unwrap_or("?")),
            (other, _) => other.to_string(),
        };
        let rate = d.learned_rate_per_min.map(|r| format!("; learned rate {r:.1} requests/min")).unwrap_or_default();
        writeln!(out, "  domain {:<22} {state}; cool-off {:.0} s{rate}", d.domain, d.cooloff_s)?;
    }
    Ok(exit_codes::SUCCESS)
}

/// An egress's breaker as `status` shows it.
#[derive(serde::Serialize)]
struct EgressReport {
    egress: String,
    /// RFC 3339 time the cool-off ends, when it is still running.
    open_until: Option<String>,
    cooloff_s: f64,
    throttle_events: i64,
    wasted: i64,
    /// Clips given back because the egress reached nothing (`egress_down`): outages, not throttling.
    outage_signals: i64,
    /// Outages: the egress's breaker opened because it reached nothing, until a probe got through.
    outages: i64,
    /// Time it was down in all (an outage still on when its run stopped counts until then).
    down_s: f64,
    /// RFC 3339 time upstream last refused DASH through it (no proof-of-origin token): its clips start from
    /// itag 18, in later runs too, until `dash_refused_until`.
    dash_refused_since: Option<String>,
    /// RFC 3339 time the refusal lapses: from then on a run tries DASH again through it.
    dash_refused_until: Option<String>,
    /// The refusal has lapsed.
    dash_refused_lapsed: bool,
    /// The upstream request rate it learned from bans (requests a minute), which the next run starts from;
    /// absent before its first ban.
    learned_rate_per_min: Option<f64>,
}

/// Unix milliseconds as an RFC 3339 time to the second.
fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn egress_report(journal: &Journal) -> anyhow::Result<Vec<EgressReport>> {
    let now = crate::journal::now_ms();
    let counts = journal.throttle_counts()?;
    let outage_rows = journal.outages()?;
    let refused = journal.dash_refused()?;
    let rates = journal.egress_rates()?;
    // Every egress with a saved breaker, a signal or an outage (a fleet worker keeps its breakers in the
    // fleet, not here).
    let mut egresses: std::collections::BTreeMap<String, (Option<i64>, i64)> =
        journal.egress_states()?.into_iter().map(|(e, until, cooloff)| (e, (until, cooloff))).collect();
    let names = counts.iter().map(|c| &c.0).chain(outage_rows.iter().map(|o| &o.egress));
    for name in names.chain(refused.iter().map(|r| &r.egress)) {
        egresses.entry(name.clone()).or_insert((None, 0));
    }
    Ok(egresses
        .into_iter()
        .map(|(egress, (until, cooloff_ms))| {
            let (events, wasted, outages) =
                counts.iter().find(|c| c.0 == egress).map(|c| (c.1, c.2, c.3)).unwrap_or((0, 0, 0));
            let open_until = until.filter(|u| *u > now).map(rfc3339);
            let cooloff_s = cooloff_ms as f64 / 1000.0;
            let mine: Vec<_> = outage_rows.iter().filter(|o| o.egress == egress).collect();
            let down_s = mine.iter().map(|o| o.down_ms(now)).sum::<i64>() as f64 / 1000.0;
            let dash = refused.iter().find(|r| r.egress == egress);
            let dash_refused_since = dash.map(|r| rfc3339(r.since_ms));
            let dash_refused_until = dash.map(|r| rfc3339(r.until_ms));
            let dash_refused_lapsed = dash.is_some_and(|r| !r.holds_at(now));
            let learned_rate_per_min = rates.iter().find(|r| r.0 == egress).map(|r| r.1);
            EgressReport {
                learned_rate_per_min,
                dash_refused_since,
                dash_refused_until,
                dash_refused_lapsed,
                egress,
                open_until,
                cooloff_s,
                throttle_events: events,
                wasted,
                outage_signals: outages,
                outages: mine.len() as i64,
                down_s,
            }
        })
        .collect())
}

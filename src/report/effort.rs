//! The page's sections about what the dataset cost: time per clip, bytes, throughput over time (with
//! throttle events and the projection), and the tools and settings of each run.

use super::data::{ReportData, Timing};
use super::format::{fmt_bytes, fmt_secs, legend, pct};
use super::svg::{self, esc, fmt_num, Segment, ACCENT, ACCENT_2, DONE, DOWN, FAILED};
use std::fmt::Write as _;

/// Throttle events listed in the folded table (all of them are drawn).
const EVENT_ROWS: usize = 50;

pub(super) fn timings(h: &mut String, d: &ReportData) {
    h.push_str(r#"<section><h2>Time per clip</h2><p class="sub">Seconds spent fetching and encoding each done clip. The interquartile mean (IQM) averages the middle half, ignoring the long tail.</p>"#);
    let (Some(dl), Some(en)) = (&d.download, &d.encode) else {
        h.push_str(r#"<p class="empty">No clip is done yet.</p></section>"#);
        return;
    };
    h.push_str(r#"<table><tr><th>phase</th><th class="n">clips</th><th class="n">mean</th><th class="n">median</th><th class="n">IQM</th><th class="n">p90</th><th class="n">max</th><th class="n">total</th></tr>"#);
    for (name, t) in [("download", dl), ("encode", en)] {
        let s = &t.summary;
        let _ = write!(
            h,
            r#"<tr><td>{name}</td><td class="n">{}</td><td class="n">{:.2} s</td><td class="n">{:.2} s</td><td class="n">{:.2} s</td><td class="n">{:.2} s</td><td class="n">{:.2} s</td><td class="n">{}</td></tr>"#,
            s.n,
            s.mean,
            s.median,
            s.iqm,
            s.p90,
            s.max,
            fmt_secs(s.total)
        );
    }
    h.push_str("</table>");
    cpu(h, d);
    histogram(h, "download", dl, ACCENT);
    histogram(h, "encode", en, ACCENT_2);
    let p = &d.phases;
    let n = p.download_dominated + p.encode_dominated;
    let segs = vec![
        Segment { value: p.download_dominated as f64, color: ACCENT, name: "download took longer" },
        Segment { value: p.encode_dominated as f64, color: ACCENT_2, name: "encode took longer" },
    ];
    let note = format!(
        "{} / {}",
        pct(p.download_dominated as f64 / n.max(1) as f64),
        pct(p.encode_dominated as f64 / n.max(1) as f64)
    );
    let _ = write!(
        h,
        r#"<h2 style="margin-top:18px">Which phase dominated</h2><p class="sub">Per clip, the longer of the two phases; downloading took {} of all phase time.</p>"#,
        pct(p.download_share_of_time)
    );
    h.push_str(&svg::stacked_rows(&[("clips".to_string(), segs, note)], 1000.0, "clips by dominating phase"));
    legend(h, &[(ACCENT, "download dominated"), (ACCENT_2, "encode dominated")], "");
    h.push_str("</section>");
}

/// CPU seconds per clip by stage: what sizing a machine or a fleet needs.
fn cpu(h: &mut String, d: &ReportData) {
    let c = &d.cpu_per_clip;
    if c.total.clips == 0 {
        return;
    }
    let _ = write!(
        h,
        r#"<h2 style="margin-top:18px">CPU per clip</h2><p class="sub">CPU seconds (user + system) of {} done clips by stage: yt-dlp's extraction; the fetch (ffmpeg's stream copy and the relay's share); the encode (probe and cut); the verification (probe and decode).</p>"#,
        c.total.clips
    );
    h.push_str(
        r#"<table><tr><th>stage</th><th class="n">mean</th><th class="n">median</th><th class="n">p95</th></tr>"#,
    );
    for (name, s) in c.rows() {
        let _ = write!(
            h,
            r#"<tr><td>{name}</td><td class="n">{:.3} s</td><td class="n">{:.3} s</td><td class="n">{:.3} s</td></tr>"#,
            s.mean_s, s.median_s, s.p95_s
        );
    }
    h.push_str("</table>");
}

fn histogram(h: &mut String, name: &str, t: &Timing, color: &str) {
    let _ = write!(h, r#"<p class="sub" style="margin:16px 0 4px"><b>{name}</b> seconds, clips per bin</p>"#);
    h.push_str(&svg::histogram(&t.histogram, color, " s", &format!("histogram of {name} seconds")));
}

pub(super) fn bytes(h: &mut String, d: &ReportData) {
    let b = &d.bytes;
    h.push_str(r#"<section><h2>Bytes fetched vs kept</h2><p class="sub">Fetching only the clip's window keeps the ratio near 1; whole-video fallbacks push it up.</p>"#);
    if b.fetched == 0 && b.kept == 0 {
        h.push_str(r#"<p class="empty">Nothing fetched yet.</p></section>"#);
        return;
    }
    let max = b.fetched.max(b.kept) as f64;
    let rows = [
        ("fetched (all attempts)".to_string(), b.fetched as f64, fmt_bytes(b.fetched)),
        ("fetched for done clips".to_string(), b.fetched_for_done as f64, fmt_bytes(b.fetched_for_done)),
        ("kept on disk".to_string(), b.kept as f64, fmt_bytes(b.kept)),
    ];
    h.push_str(&svg::hbars(&rows, max, ACCENT_2, "bytes fetched and kept"));
    let ratio = if b.kept > 0 { format!("{:.2}", b.fetched_for_done as f64 / b.kept as f64) } else { "—".into() };
    let _ = write!(
        h,
        r#"<table><tr><th>disk used</th><th>average clip</th><th>fetched per kept byte</th><th>whole-video fallbacks</th><th>media requests (done clips)</th><th>media requests a clip</th></tr><tr><td>{}</td><td>{}</td><td>{ratio}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr></table></section>"#,
        fmt_bytes(b.kept),
        fmt_bytes(b.average_clip),
        b.whole_video_fallbacks,
        b.media_requests_for_done,
        b.media_requests_per_clip
    );
}

pub(super) fn throughput(h: &mut String, d: &ReportData) {
    let t = &d.throughput;
    let p = &d.projection;
    h.push_str(r#"<section><h2>Throughput over time</h2>"#);
    let rate = p.clips_per_hour.map_or("—".into(), |r| format!("{} clips/hour", fmt_num(r.round())));
    let eta = match p.eta_s {
        _ if p.remaining == 0 => "nothing remains".to_string(),
        Some(s) => format!("{} for the {} pending clips", fmt_secs(s), p.remaining),
        None => format!("unknown for the {} pending clips", p.remaining),
    };
    let from = t.buckets.first().map_or(String::new(), |b| format!(" from {}", svg::fmt_utc(b.start_ms)));
    let _ = write!(
        h,
        r#"<p class="sub">Attempts finished per {}{from} (UTC). Observed rate {rate} over {} of active runs; projected time to finish: <b>{eta}</b>.</p>"#,
        fmt_secs(t.bucket_ms as f64 / 1000.0),
        fmt_secs(p.active_s)
    );
    if t.buckets.is_empty() {
        h.push_str(r#"<p class="empty">No attempts recorded yet.</p></section>"#);
        return;
    }
    let buckets: Vec<_> = t.buckets.iter().map(|b| (b.start_ms, b.done, b.failed)).collect();
    // Outages are drawn as the spans they were; their give-backs are not throttling.
    let end_ms = t.buckets.last().map_or(0, |b| b.start_ms + t.bucket_ms);
    let bands: Vec<_> = t
        .outages
        .iter()
        .map(|o| svg::Band {
            from_ms: o.started_ms,
            until_ms: o.until_ms().unwrap_or(end_ms),
            what: outage_text(o),
            color: DOWN,
        })
        .collect();
    let events: Vec<_> = t
        .throttle_events
        .iter()
        .flatten()
        .filter(|e| t.outages.is_empty() || e.category.as_deref() != Some("egress_down"))
        .map(|e| (e.at_ms, event_text(e)))
        .collect();
    let label = "clips finished per time bucket with throttle events and outages";
    h.push_str(&svg::timeline(&buckets, t.bucket_ms, &events, &bands, label));
    let mut marker = match events.len() {
        0 => String::new(),
        n => format!(r#"<span><b style="color:{FAILED}">▼</b> throttle event ({n})</span>"#),
    };
    if !bands.is_empty() {
        let _ = write!(marker, r#"<span><b style="color:{DOWN}">■</b> egress down ({})</span>"#, bands.len());
    }
    legend(h, &[(DONE, "done"), (FAILED, "failed")], &marker);
    if !t.outages.is_empty() {
        h.push_str(r#"<details><summary>Outages</summary><table><tr><th>from (UTC)</th><th>egress</th><th class="n">down for</th><th class="n">clips given back</th></tr>"#);
        for o in t.outages.iter().take(EVENT_ROWS) {
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                svg::fmt_utc(o.started_ms),
                esc(&o.egress),
                o.until_ms().map_or("still down".into(), |u| fmt_secs((u - o.started_ms).max(0) as f64 / 1000.0)),
                o.given_back
            );
        }
        h.push_str("</table></details>");
    }
    for r in &t.learned_rates {
        let _ = write!(
            h,
            r#"<p>Learned request rate of <b>{}</b>: {:.1} requests/min (from its bans, as of {}; the next run starts from it).</p>"#,
            esc(&r.egress),
            r.per_min,
            svg::fmt_utc(r.at_ms)
        );
    }
    for d in &t.dash_refused {
        let then = match d.holds_at(crate::journal::now_ms()) {
            true => {
                format!("its clips start from itag 18 until {}, then DASH is tried again", svg::fmt_utc(d.until_ms))
            }
            false => format!("lapsed at {}: the next run tries DASH again", svg::fmt_utc(d.until_ms)),
        };
        let _ = write!(
            h,
            r#"<p>DASH refused on <b>{}</b> since {} (past the first bytes, no proof-of-origin token); {}.</p>"#,
            esc(&d.egress),
            svg::fmt_utc(d.since_ms),
            esc(&then)
        );
    }
    match &t.throttle_events {
        None => h.push_str(r#"<p class="empty">This journal does not record throttle events.</p>"#),
        Some(ev) if ev.is_empty() => {
            h.push_str(r#"<p class="empty">No throttle events: no egress was cooled down.</p>"#)
        }
        Some(ev) => {
            h.push_str(r#"<details><summary>Throttle events</summary><table><tr><th>at (UTC)</th><th>egress</th><th>category</th><th class="n">cool-off</th></tr>"#);
            for e in ev.iter().take(EVENT_ROWS) {
                let _ = write!(
                    h,
                    r#"<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class="n">{}</td></tr>"#,
                    svg::fmt_utc(e.at_ms),
                    esc(e.egress.as_deref().unwrap_or("")),
                    esc(e.category.as_deref().unwrap_or("")),
                    e.cooloff_s.map_or("—".into(), fmt_secs)
                );
            }
            h.push_str("</table></details>");
        }
    }
    h.push_str("</section>");
}

fn outage_text(o: &crate::journal::read::OutageRow) -> String {
    let still = if o.ended_ms.is_none() { " (still down when the run stopped)" } else { "" };
    format!("{} down{still}; {} clips given back, uncharged", o.egress, o.given_back)
}

fn event_text(e: &crate::journal::read::ThrottleEvent) -> String {
    let mut s = e.category.clone().unwrap_or_else(|| "throttle".into());
    if let Some(egress) = &e.egress {
        let _ = write!(s, " on {egress}");
    }
    if let Some(c) = e.cooloff_s {
        let _ = write!(s, ", cool-off {}", fmt_secs(c));
    }
    s
}

pub(super) fn tools(h: &mut String, d: &ReportData) {
    h.push_str(r#"<section><h2>Tools and settings</h2>"#);
    let Some(last) = d.runs.last() else {
        h.push_str(r#"<p class="empty">No run recorded.</p></section>"#);
        return;
    };
    let _ = write!(
        h,
        r#"<p class="sub">Latest run: yt-dlp <code>{}</code> · <code>{}</code></p><table><tr><th>setting</th><th>value</th></tr>"#,
        esc(last.ytdlp_version.as_deref().unwrap_or("?")),
        esc(last.ffmpeg_version.as_deref().unwrap_or("?"))
    );
    match &last.settings {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let v = if let serde_json::Value::String(s) = v { s.clone() } else { v.to_string() };
                let _ = write!(h, "<tr><td><code>{}</code></td><td>{}</td></tr>", esc(k), esc(&v));
            }
        }
        other => {
            let _ = write!(h, "<tr><td>settings</td><td>{}</td></tr>", esc(&other.to_string()));
        }
    }
    h.push_str(r#"</table><details><summary>All runs</summary><table><tr><th class="n">run</th><th>started (UTC)</th><th class="n">lasted</th><th>command</th><th>yt-dlp</th><th>yt-dlp mode</th><th>ffmpeg</th><th class="n">exit</th></tr>"#);
    for r in &d.runs {
        let lasted = r.finished_ms.map_or("unfinished".into(), |f| fmt_secs((f - r.started_ms) as f64 / 1000.0));
        let exit = r.exit_code.map_or("—".into(), |c| c.to_string());
        let _ = write!(
            h,
            r#"<tr><td class="n">{}</td><td>{}</td><td class="n">{lasted}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="n">{exit}</td></tr>"#,
            r.id,
            svg::fmt_utc(r.started_ms),
            esc(&r.command),
            esc(r.ytdlp_version.as_deref().unwrap_or("")),
            esc(r.ytdlp_mode().unwrap_or("")),
            esc(r.ffmpeg_version.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table></details></section>");
}

//! The fleet's report page (`report --db URL --fleet NAME`): what the fleet's database knows, drawn the way
//! the folder report draws a run: totals, failures, the workers and throttle domains, and completions per
//! worker over time with each domain's bans shaded on the same time axis.

use super::format::{fmt_bytes, fmt_secs, legend, pct};
use super::html::{kpi, CSS};
use super::svg::{self, esc, Band, DONE, FAILED};
use crate::fleet::{FleetHistory, FleetStatus};
use serde::Serialize;
use std::fmt::Write as _;

/// A ban's shade on the throughput charts.
const BANNED: &str = "#f59e0b";

/// Everything the fleet page shows, also printed by `--json`.
#[derive(Debug, Serialize)]
pub struct FleetReport {
    pub status: FleetStatus,
    pub history: FleetHistory,
    /// Each domain's bans: from the breaker opening to the probe that got through (or, for a ban still on,
    /// the end of the history), in Unix ms.
    pub bans: Vec<Ban>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ban {
    pub domain: String,
    pub from_ms: i64,
    /// `None`: no probe has got through yet.
    pub until_ms: Option<i64>,
}

impl FleetReport {
    pub fn new(status: FleetStatus, history: FleetHistory) -> FleetReport {
        let bans = bans(&history);
        FleetReport { status, history, bans }
    }
}

/// Pairs each domain's openings with the closing that followed (openings while open are not recorded: the
/// breaker opens once per ban, however many workers saw it).
fn bans(h: &FleetHistory) -> Vec<Ban> {
    let mut out: Vec<Ban> = Vec::new();
    for e in &h.domain_events {
        match e.kind.as_str() {
            "open" => out.push(Ban { domain: e.domain.clone(), from_ms: e.at_ms, until_ms: None }),
            _ => {
                if let Some(b) = out.iter_mut().rev().find(|b| b.domain == e.domain && b.until_ms.is_none()) {
                    b.until_ms = Some(e.at_ms);
                }
            }
        }
    }
    out
}

/// Renders the page; `generated_ms` is shown as the generation time (Unix ms).
pub fn render(r: &FleetReport, generated_ms: i64) -> String {
    let s = &r.status;
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>kinetics-dl fleet · {0}</title><style>{CSS}</style></head><body><header><h1>Fleet report</h1><p>fleet {0} · {1} workers · generated {2} UTC</p></header><main>",
        esc(&s.fleet),
        s.workers.len(),
        svg::fmt_utc(generated_ms)
    );
    let failed: u64 = s.failed.values().sum();
    let total = s.total.max(1) as f64;
    h.push_str(r#"<div class="kpis">"#);
    kpi(&mut h, "clips", &s.total.to_string(), "in the fleet");
    kpi(&mut h, "done", &s.done.to_string(), &pct(s.done as f64 / total));
    kpi(&mut h, "left", &(s.pending + s.leased).to_string(), &format!("{} leased now", s.leased));
    kpi(&mut h, "failed", &failed.to_string(), &pct(failed as f64 / total));
    let eta = s.eta_s.map_or("no recent pace".into(), |e| format!("{} left", fmt_secs(e)));
    kpi(&mut h, "pace", &format!("{:.1}/min", s.clips_per_min), &eta);
    kpi(&mut h, "on disk", &fmt_bytes(s.bytes_on_disk), &format!("{} fetched", fmt_bytes(s.bytes_fetched)));
    h.push_str("</div>");
    throughput(&mut h, r);
    workers(&mut h, s);
    domains(&mut h, r);
    classes(&mut h, s);
    failures(&mut h, s);
    h.push_str("</main><footer>kinetics-dl ");
    h.push_str(env!("CARGO_PKG_VERSION"));
    h.push_str(" · all numbers come from the fleet's database</footer></body></html>\n");
    h
}

fn throughput(h: &mut String, r: &FleetReport) {
    let hist = &r.history;
    h.push_str(r#"<section><h2>Throughput per worker</h2>"#);
    if hist.done.is_empty() {
        h.push_str(r#"<p class="empty">No clip is done yet.</p></section>"#);
        return;
    }
    let n = hist.done.values().map(Vec::len).max().unwrap_or(0);
    let end_ms = hist.origin_ms + n as i64 * hist.bucket_ms;
    let _ = write!(
        h,
        r#"<p class="sub">Clips done per {} (UTC), the whole fleet and then each worker on the same time axis; each throttle domain's bans are shaded from the breaker opening to the probe that got through.</p>"#,
        fmt_secs(hist.bucket_ms as f64 / 1000.0)
    );
    let bands_of = |domain: Option<&str>| -> Vec<Band> {
        r.bans
            .iter()
            .filter(|b| domain.is_none_or(|d| d == b.domain))
            .map(|b| Band {
                from_ms: b.from_ms,
                until_ms: b.until_ms.unwrap_or(end_ms),
                what: format!(
                    "domain {} banned{}",
                    b.domain,
                    if b.until_ms.is_none() { " (no probe has got through yet)" } else { "" }
                ),
                color: BANNED,
            })
            .collect()
    };
    let series = |counts: &[u64]| -> Vec<(i64, u64, u64)> {
        (0..n).map(|i| (hist.origin_ms + i as i64 * hist.bucket_ms, counts.get(i).copied().unwrap_or(0), 0)).collect()
    };
    let mut all = vec![0u64; n];
    for counts in hist.done.values() {
        for (slot, c) in all.iter_mut().zip(counts) {
            *slot += c;
        }
    }
    h.push_str("<h3>All workers</h3>");
    h.push_str(&svg::timeline(
        &series(&all),
        hist.bucket_ms,
        &[],
        &bands_of(None),
        "clips done per time bucket, fleet",
    ));
    let domain_of = |worker: &str| r.status.workers.iter().find(|w| w.worker == worker).map(|w| w.domain.clone());
    for (worker, counts) in &hist.done {
        let domain = domain_of(worker);
        let _ = write!(
            h,
            "<h3>{} <span class=\"pill\">{}</span> <span class=\"pill throttle\">domain {}</span></h3>",
            esc(worker),
            counts.iter().sum::<u64>(),
            esc(domain.as_deref().unwrap_or("?"))
        );
        let label = format!("clips done per time bucket by {worker}");
        h.push_str(&svg::timeline(&series(counts), hist.bucket_ms, &[], &bands_of(domain.as_deref()), &label));
    }
    let extra = if r.bans.is_empty() {
        String::new()
    } else {
        format!(r#"<span><i style="background:{BANNED};opacity:.5"></i>banned ({})</span>"#, r.bans.len())
    };
    legend(h, &[(DONE, "done")], &extra);
    h.push_str("</section>");
}

fn workers(h: &mut String, s: &FleetStatus) {
    h.push_str(r#"<section><h2>Workers</h2><table><tr><th>worker</th><th>host</th><th>region</th><th>domain</th><th>state</th><th class="n">done</th><th class="n">leased</th><th class="n">clips/min (10 min)</th></tr>"#);
    for w in &s.workers {
        let state = if w.alive { "alive".to_string() } else { w.stop_reason.clone().unwrap_or_else(|| "dead".into()) };
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{:.1}</td></tr>"#,
            esc(&w.worker),
            esc(&w.host),
            esc(&w.region),
            esc(&w.domain),
            esc(&state),
            w.done,
            w.leased,
            w.clips_per_min
        );
    }
    h.push_str("</table></section>");
}

fn domains(h: &mut String, r: &FleetReport) {
    h.push_str(r#"<section><h2>Throttle domains</h2><table><tr><th>domain</th><th>breaker</th><th class="n">bans</th><th class="n">time banned</th><th class="n">cool-off now</th><th class="n">learned rate</th></tr>"#);
    let now_end =
        r.history.origin_ms + r.history.done.values().map(Vec::len).max().unwrap_or(0) as i64 * r.history.bucket_ms;
    for d in &r.status.domains {
        let mine: Vec<_> = r.bans.iter().filter(|b| b.domain == d.domain).collect();
        let banned_ms: i64 = mine.iter().map(|b| (b.until_ms.unwrap_or(now_end) - b.from_ms).max(0)).sum();
        let state = match d.reopens_in_s {
            Some(s) if d.breaker == "open" => format!("open, probe in {}", fmt_secs(s)),
            _ => d.breaker.clone(),
        };
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(&d.domain),
            esc(&state),
            mine.len(),
            fmt_secs(banned_ms as f64 / 1000.0),
            fmt_secs(d.cooloff_s),
            d.learned_rate_per_min.map_or_else(|| "-".to_string(), |r| format!("{r:.1}/min"))
        );
    }
    h.push_str("</table></section>");
}

/// Coverage per class, fewest done first; a clip with several labels counts in each of its classes.
fn classes(h: &mut String, s: &FleetStatus) {
    h.push_str(r#"<section><h2>Classes</h2>"#);
    if s.classes.is_empty() {
        h.push_str(r#"<p class="empty">No clip has a label.</p></section>"#);
        return;
    }
    let mut rows: Vec<_> = s.classes.iter().collect();
    rows.sort_by(|a, b| (a.1.done * b.1.clips.max(1)).cmp(&(b.1.done * a.1.clips.max(1))).then(a.0.cmp(b.0)));
    let _ = write!(
        h,
        r#"<p class="sub">{} classes, fewest done first; a clip with several labels counts in each of them.</p><details><summary>Every class</summary><table><tr><th>class</th><th class="n">clips</th><th class="n">done</th><th class="n">failed</th><th class="n">coverage</th></tr>"#,
        rows.len()
    );
    for (name, c) in rows {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(name),
            c.clips,
            c.done,
            c.failed,
            pct(c.done as f64 / c.clips.max(1) as f64)
        );
    }
    h.push_str("</table></details></section>");
}

fn failures(h: &mut String, s: &FleetStatus) {
    h.push_str(r#"<section><h2>Failures by category</h2>"#);
    if s.failed.is_empty() {
        h.push_str(r#"<p class="empty">No clip has failed.</p></section>"#);
        return;
    }
    let mut rows: Vec<_> = s.failed.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    h.push_str(r#"<table><tr><th>category</th><th class="n">clips</th></tr>"#);
    for (category, n) in rows {
        let _ = write!(
            h,
            r#"<tr><td><code style="color:{FAILED}">{}</code></td><td class="n">{n}</td></tr>"#,
            esc(category)
        );
    }
    h.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::DomainEvent;

    fn event(domain: &str, kind: &str, at_ms: i64) -> DomainEvent {
        DomainEvent { domain: domain.into(), kind: kind.into(), at_ms, open_until_ms: None, worker: None }
    }

    #[test]
    fn each_opening_pairs_with_the_closing_that_follows_it_in_its_domain() {
        let h = FleetHistory {
            domain_events: vec![
                event("a", "open", 10),
                event("b", "open", 15),
                event("a", "close", 20),
                event("a", "open", 30),
                event("b", "close", 40),
            ],
            ..FleetHistory::default()
        };
        let got: Vec<_> = bans(&h).into_iter().map(|b| (b.domain, b.from_ms, b.until_ms)).collect();
        assert_eq!(
            got,
            [("a".to_string(), 10, Some(20)), ("b".to_string(), 15, Some(40)), ("a".to_string(), 30, None)]
        );
    }
}

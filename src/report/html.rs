//! The report page: one self-contained HTML file (inline CSS and SVG, system fonts, no scripts).

use super::data::ReportData;
use super::effort::{bytes, throughput, timings, tools};
use super::format::{fmt_bytes, fmt_secs, pct};
use super::outcome::{classes, coverage, failures};
use super::svg::{self, esc, fmt_num};
use std::fmt::Write as _;

pub(super) const CSS: &str = r#"
:root{--bg:#f6f7fb;--card:#fff;--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--accent:#6366f1}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:linear-gradient(120deg,#312e81,#6366f1 60%,#0ea5e9);color:#fff;padding:28px 40px 64px}
header h1{margin:0;font-size:24px;font-weight:650;letter-spacing:-.01em}
header p{margin:4px 0 0;opacity:.85}
main{max-width:1100px;margin:-44px auto 40px;padding:0 24px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:14px;margin-bottom:18px}
.kpi{background:var(--card);border-radius:14px;padding:16px 18px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 4px 14px rgba(16,24,40,.06)}
.kpi .n{font-size:24px;font-weight:650;letter-spacing:-.02em}
.kpi .t{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.kpi .s{color:var(--muted);font-size:12px}
section{background:var(--card);border-radius:14px;padding:20px 24px;margin-bottom:18px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 4px 14px rgba(16,24,40,.06)}
h2{font-size:16px;margin:0 0 4px;font-weight:650}
.sub{color:var(--muted);margin:0 0 14px}
.row{display:flex;gap:24px;align-items:center;flex-wrap:wrap}
.grow{flex:1;min-width:320px}
svg.chart{width:100%;height:auto;display:block}
svg.chart.donut{width:180px;flex:none}
svg.chart text{font-size:12px;fill:#374151}
svg.chart .axis{fill:#9ca3af;font-size:11px}
svg.chart .val{fill:#6b7280}
svg.chart .big{font-size:26px;font-weight:650;fill:#111827}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line)}
th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.legend{display:flex;gap:16px;color:var(--muted);font-size:12px;margin:6px 0 0}
.legend i{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11px;background:#eef2ff;color:#4338ca}
.pill.permanent{background:#fef2f2;color:#b91c1c}.pill.throttle{background:#fffbeb;color:#b45309}
details summary{cursor:pointer;color:var(--accent);margin:10px 0}
.empty{color:var(--muted);font-style:italic;padding:8px 0}
code{background:#f3f4f6;border-radius:4px;padding:1px 5px;font-size:12px}
footer{color:var(--muted);text-align:center;font-size:12px;margin:0 0 30px}
"#;

/// Renders the page; `generated` is shown as the generation time (Unix ms).
pub fn render(d: &ReportData, generated_ms: i64) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>kinetics-dl report · {}</title><style>{CSS}</style></head><body><header><h1>Dataset report</h1><p>{} · generated {} UTC</p></header><main>",
        esc(&d.out),
        esc(&d.out),
        svg::fmt_utc(generated_ms)
    );
    kpis(&mut h, d);
    coverage(&mut h, d);
    failures(&mut h, d);
    classes(&mut h, d);
    timings(&mut h, d);
    bytes(&mut h, d);
    throughput(&mut h, d);
    tools(&mut h, d);
    h.push_str("</main><footer>kinetics-dl ");
    h.push_str(env!("CARGO_PKG_VERSION"));
    h.push_str(
        " · all numbers come from the journal in <code>.kinetics-dl/journal.sqlite</code></footer></body></html>\n",
    );
    h
}

pub(super) fn kpi(h: &mut String, title: &str, n: &str, sub: &str) {
    let _ = write!(
        h,
        r#"<div class="kpi"><div class="t">{}</div><div class="n">{}</div><div class="s">{}</div></div>"#,
        esc(title),
        esc(n),
        esc(sub)
    );
}

fn kpis(h: &mut String, d: &ReportData) {
    let t = &d.totals;
    h.push_str(r#"<div class="kpis">"#);
    kpi(h, "Clips done", &t.done.to_string(), &format!("of {} ({})", t.total, pct(t.done_share())));
    kpi(h, "Failed", &t.failed.to_string(), &format!("{} of all clips", pct(t.failed as f64 / t.total.max(1) as f64)));
    kpi(h, "Pending", &t.pending.to_string(), "left for the next run");
    kpi(h, "Disk used", &fmt_bytes(d.bytes.kept), &format!("{} per clip on average", fmt_bytes(d.bytes.average_clip)));
    let eta = match (d.projection.remaining, d.projection.eta_s) {
        (0, _) => ("nothing left".to_string(), "every clip has an outcome".to_string()),
        (_, Some(eta)) => {
            (fmt_secs(eta), format!("at {} clips/hour", fmt_num(d.projection.clips_per_hour.unwrap_or(0.0).round())))
        }
        (_, None) => ("unknown".to_string(), "no finished attempts yet".to_string()),
    };
    kpi(h, "Time to finish", &eta.0, &eta.1);
    h.push_str("</div>");
}

//! Inline SVG charts, drawn here so the report is one file that opens offline: no scripts, no fonts.
//!
//! Every chart is `<svg class="chart">` sized by its viewBox and scaled by CSS; text inherits the page's
//! font. Callers skip a chart when there is nothing to draw, so a drawn chart always has marks in it.

use super::stats::{self, Histogram};
use std::fmt::Write as _;

pub const DONE: &str = "#10b981";
pub const FAILED: &str = "#ef4444";
pub const PENDING: &str = "#f59e0b";
pub const ACCENT: &str = "#6366f1";
pub const ACCENT_2: &str = "#0ea5e9";
/// Outages: an egress down, shaded behind the bars.
pub const DOWN: &str = "#94a3b8";
const GRID: &str = "#e5e7eb";
const WIDTH: f64 = 1000.0;

/// Escapes text for XML and HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn open(height: f64, label: &str) -> String {
    open_w(WIDTH, height, label)
}

fn open_w(width: f64, height: f64, label: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height:.0}" width="{width}" height="{height:.0}" role="img" aria-label="{}">"#,
        esc(label)
    )
}

/// A segment of a stacked bar: value, colour, name (for the tooltip).
pub struct Segment<'a> {
    pub value: f64,
    pub color: &'a str,
    pub name: &'a str,
}

/// One horizontal stacked bar per row, each scaled to its own total (shares), with the label on the left
/// and `note` on the right; `width` is the viewBox width (narrower beside a donut, so text stays legible).
pub fn stacked_rows(rows: &[(String, Vec<Segment>, String)], width: f64, label: &str) -> String {
    let label_w = label_width(rows.iter().map(|r| r.0.as_str()));
    let (bar_x, bar_w, row_h) = (label_w + 12.0, width - label_w - 12.0 - 150.0, 30.0);
    let mut s = open_w(width, rows.len() as f64 * row_h + 8.0, label);
    for (i, (name, segments, note)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let total: f64 = segments.iter().map(|g| g.value).sum();
        let _ = write!(
            s,
            r#"<text x="{label_w:.0}" y="{:.1}" text-anchor="end" class="lbl">{}</text>"#,
            y + 15.0,
            esc(name)
        );
        let _ = write!(s, r#"<rect x="{bar_x:.1}" y="{y:.1}" width="{bar_w:.1}" height="20" rx="4" fill="{GRID}"/>"#);
        let mut x = bar_x;
        for g in segments.iter().filter(|g| g.value > 0.0) {
            let w = bar_w * g.value / total;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="20" fill="{}"><title>{}: {}</title></rect>"#,
                g.color,
                esc(g.name),
                g.value
            );
            x += w;
        }
        let _ =
            write!(s, r#"<text x="{:.1}" y="{:.1}" class="val">{}</text>"#, bar_x + bar_w + 10.0, y + 15.0, esc(note));
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars against a common scale: (label, value, note at the bar's end).
pub fn hbars(rows: &[(String, f64, String)], max: f64, color: &str, label: &str) -> String {
    let label_w = label_width(rows.iter().map(|r| r.0.as_str()));
    let (bar_x, row_h) = (label_w + 12.0, 24.0);
    let bar_w = WIDTH - bar_x - 130.0;
    let max = if max > 0.0 { max } else { 1.0 };
    let mut s = open(rows.len() as f64 * row_h + 8.0, label);
    for (i, (name, value, note)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let w = (bar_w * value / max).max(2.0);
        let _ = write!(
            s,
            r#"<text x="{label_w:.0}" y="{:.1}" text-anchor="end" class="lbl">{}</text>"#,
            y + 13.0,
            esc(name)
        );
        let _ = write!(
            s,
            r#"<rect x="{bar_x:.1}" y="{y:.1}" width="{bar_w:.1}" height="16" rx="3" fill="{GRID}" opacity="0.5"/>"#
        );
        let _ = write!(
            s,
            r#"<rect x="{bar_x:.1}" y="{y:.1}" width="{w:.1}" height="16" rx="3" fill="{color}"><title>{}: {}</title></rect>"#,
            esc(name),
            esc(note)
        );
        let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" class="val">{}</text>"#, bar_x + w + 8.0, y + 13.0, esc(note));
    }
    s.push_str("</svg>");
    s
}

/// A donut of shares with the headline number in the middle.
pub fn donut(segments: &[Segment], center: &str, caption: &str, label: &str) -> String {
    let total: f64 = segments.iter().map(|g| g.value).sum();
    let (cx, cy, r, stroke) = (90.0, 90.0, 70.0, 22.0);
    let circumference = 2.0 * std::f64::consts::PI * r;
    let mut s = format!(
        r#"<svg class="chart donut" viewBox="0 0 180 180" width="180" height="180" role="img" aria-label="{}">"#,
        esc(label)
    );
    let _ = write!(s, r#"<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{GRID}" stroke-width="{stroke}"/>"#);
    let mut offset = 0.0;
    for g in segments.iter().filter(|g| g.value > 0.0 && total > 0.0) {
        let len = circumference * g.value / total;
        let _ = write!(
            s,
            r#"<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{}" stroke-width="{stroke}" stroke-dasharray="{len:.2} {:.2}" stroke-dashoffset="{:.2}" transform="rotate(-90 {cx} {cy})"><title>{}: {}</title></circle>"#,
            g.color,
            circumference - len,
            -offset,
            esc(g.name),
            g.value
        );
        offset += len;
    }
    let _ = write!(s, r#"<text x="{cx}" y="{:.0}" text-anchor="middle" class="big">{}</text>"#, cy + 4.0, esc(center));
    let _ =
        write!(s, r#"<text x="{cx}" y="{:.0}" text-anchor="middle" class="lbl">{}</text>"#, cy + 24.0, esc(caption));
    s.push_str("</svg>");
    s
}

/// Vertical bars of a histogram with a value axis along the bottom.
pub fn histogram(h: &Histogram, color: &str, unit: &str, label: &str) -> String {
    let (left, right, top, bottom, height) = (44.0, 16.0, 12.0, 30.0, 200.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = h.counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut s = open(height, label);
    let max = y_grid(&mut s, max, left, WIDTH - right, top, plot_h);
    let bin_w = plot_w / h.counts.len() as f64;
    for (i, &n) in h.counts.iter().enumerate() {
        let bh = plot_h * n as f64 / max;
        let x = left + i as f64 * bin_w;
        let last = i + 1 == h.counts.len();
        let range = if last && h.overflow {
            format!("≥ {}{unit}", fmt_num(h.edges[i]))
        } else {
            format!("{}–{}{unit}", fmt_num(h.edges[i]), fmt_num(h.edges[i + 1]))
        };
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" rx="2" fill="{color}"><title>{range}: {n} clips</title></rect>"#,
            x + 1.0,
            top + plot_h - bh,
            (bin_w - 2.0).max(1.0)
        );
    }
    let every = (h.counts.len() / 8).max(1);
    for i in (0..h.edges.len()).step_by(every) {
        // The overflow bin reaches past its upper edge, to the slowest clip.
        let text = if i + 1 == h.edges.len() && h.overflow {
            "∞".to_string()
        } else {
            format!("{}{unit}", fmt_num(h.edges[i]))
        };
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.0}" text-anchor="middle" class="axis">{text}</text>"#,
            left + i as f64 * bin_w,
            height - 10.0
        );
    }
    s.push_str("</svg>");
    s
}

/// A span of time shaded behind a [`timeline`]'s bars: an outage, a ban.
pub struct Band {
    pub from_ms: i64,
    pub until_ms: i64,
    pub what: String,
    pub color: &'static str,
}

/// Clips finished per time bucket (done stacked under failed), with throttle events as red markers and
/// `bands` (outages, bans) shaded behind the bars, on the same time axis.
pub fn timeline(
    buckets: &[(i64, u64, u64)],
    bucket_ms: i64,
    events: &[(i64, String)],
    bands: &[Band],
    label: &str,
) -> String {
    let (left, right, top, bottom, height) = (44.0, 16.0, 22.0, 30.0, 240.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let origin = buckets.first().map_or(0, |b| b.0);
    let span = (buckets.len() as i64 * bucket_ms).max(1) as f64;
    let x_of = |t: i64| left + plot_w * (t - origin) as f64 / span;
    let max = buckets.iter().map(|b| b.1 + b.2).max().unwrap_or(1).max(1) as f64;
    let mut s = open(height, label);
    let max = y_grid(&mut s, max, left, WIDTH - right, top, plot_h);
    let bar_w = plot_w / buckets.len().max(1) as f64;
    for b in bands {
        let (x0, x1) = (x_of(b.from_ms).clamp(left, left + plot_w), x_of(b.until_ms).clamp(left, left + plot_w));
        let class = if b.color == DOWN { "outage" } else { "ban" };
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{x0:.1}" y="{top}" width="{:.1}" height="{plot_h:.1}" fill="{}" fill-opacity="0.3"><title>{} to {}: {}</title></rect>"#,
            (x1 - x0).max(1.0),
            b.color,
            fmt_utc_secs(b.from_ms),
            fmt_utc_secs(b.until_ms),
            esc(&b.what)
        );
    }
    for &(start, done, failed) in buckets {
        let x = x_of(start) + bar_w * 0.1;
        let (dh, fh) = (plot_h * done as f64 / max, plot_h * failed as f64 / max);
        let when = fmt_utc(start);
        let w = (bar_w * 0.8).max(1.0);
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{dh:.1}" fill="{DONE}"><title>{when}: {done} done</title></rect>"#,
            top + plot_h - dh
        );
        if failed > 0 {
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{fh:.1}" fill="{FAILED}"><title>{when}: {failed} failed</title></rect>"#,
                top + plot_h - dh - fh
            );
        }
    }
    for (at, what) in events {
        let x = x_of(*at);
        let _ = write!(
            s,
            r#"<g class="throttle"><line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="{FAILED}" stroke-width="1.5" stroke-dasharray="4 3"/><path d="M{:.1},{:.1} l5,-9 h-10 z" fill="{FAILED}"/><title>{}: {}</title></g>"#,
            top + plot_h,
            x,
            top - 2.0,
            fmt_utc(*at),
            esc(what)
        );
    }
    // Ticks on bucket boundaries (round times, since buckets are), about six of them.
    let per_tick = buckets.len().div_ceil(6).max(1);
    let long = span >= 86_400_000.0;
    for k in (0..=buckets.len()).step_by(per_tick) {
        let t = origin + (k as i64) * bucket_ms;
        let text = match (long, bucket_ms < 60_000) {
            (true, _) => fmt_utc(t)[5..].to_string(),
            (false, true) => fmt_utc_secs(t)[11..].to_string(),
            (false, false) => fmt_utc(t)[11..].to_string(),
        };
        let anchor = if k == 0 {
            "start"
        } else if k + per_tick > buckets.len() {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.0}" text-anchor="{anchor}" class="axis">{text}</text>"#,
            x_of(t),
            height - 10.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal grid lines with counts on the left, up to a round number at or above `max`, which it returns
/// (the value the plot's top stands for).
fn y_grid(s: &mut String, max: f64, x0: f64, x1: f64, top: f64, plot_h: f64) -> f64 {
    // Counts are whole numbers: no 2.5-clip grid lines.
    let step = stats::nice_step(max / 4.0).max(1.0);
    let axis = (max / step).ceil().max(1.0) * step;
    for i in 0..=((axis / step).round() as usize) {
        let v = i as f64 * step;
        let y = top + plot_h - plot_h * v / axis;
        let _ = write!(s, r#"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="{GRID}"/>"#);
        let _ = write!(
            s,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end" class="axis">{}</text>"#,
            x0 - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    axis
}

/// Room for the longest label at 12 px, within reason.
fn label_width<'a>(labels: impl Iterator<Item = &'a str>) -> f64 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(4);
    (longest as f64 * 6.6).clamp(40.0, 280.0)
}

/// Numbers on axes: no trailing zeros, thousands as k.
pub fn fmt_num(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{}k", fmt_num(v / 1000.0))
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `YYYY-MM-DD HH:MM` in UTC, from Unix milliseconds (Howard Hinnant's civil-from-days).
pub fn fmt_utc(ms: i64) -> String {
    fmt_utc_secs(ms)[..16].to_string()
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn fmt_utc_secs(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

//! The page's sections about what the dataset holds: done vs missing, failures, per-class coverage.

use super::data::ReportData;
use super::format::{legend, pct};
use super::svg::{self, esc, fmt_num, Segment, ACCENT, DONE, FAILED, PENDING};
use crate::classify::{Category, Disposition};
use std::fmt::Write as _;

/// The worst classes drawn as bars; the full table sits below them, folded.
const CLASS_BARS: usize = 25;

pub(super) fn coverage(h: &mut String, d: &ReportData) {
    let t = &d.totals;
    h.push_str(r#"<section><h2>Done vs missing</h2><p class="sub">Every clip of the annotations, by outcome; missing = failed + pending.</p><div class="row">"#);
    if t.total == 0 {
        h.push_str(r#"<p class="empty">The journal holds no clips yet.</p></div></section>"#);
        return;
    }
    let segs = |done: u64, failed: u64, pending: u64| {
        vec![
            Segment { value: done as f64, color: DONE, name: "done" },
            Segment { value: failed as f64, color: FAILED, name: "failed" },
            Segment { value: pending as f64, color: PENDING, name: "pending" },
        ]
    };
    h.push_str(&svg::donut(&segs(t.done, t.failed, t.pending), &pct(t.done_share()), "done", "share of clips done"));
    let mut rows =
        vec![("all splits".to_string(), segs(t.done, t.failed, t.pending), format!("{} / {} done", t.done, t.total))];
    for s in &d.splits {
        let x = &s.tally;
        rows.push((
            s.split.clone(),
            segs(x.done, x.failed, x.pending),
            format!("{} / {} ({})", x.done, x.total, pct(x.done_share())),
        ));
    }
    h.push_str(r#"<div class="grow">"#);
    h.push_str(&svg::stacked_rows(&rows, 700.0, "clips done, failed and pending per split"));
    legend(h, &[(DONE, "done"), (FAILED, "failed"), (PENDING, "pending")], "");
    h.push_str("</div></div></section>");
}

fn disposition(category: &str) -> (&'static str, &'static str) {
    // The same rule the scheduler applies on a rerun (a spent http_404 is permanent too).
    if category.parse::<Category>().is_ok_and(|c| c.is_permanent(false) && c.disposition() != Disposition::NeedsCookies)
    {
        return ("permanent", "permanent");
    }
    match category.parse::<Category>().map(Category::disposition) {
        Ok(Disposition::Permanent) => ("permanent", "permanent"),
        Ok(Disposition::RetryLater) => ("retry", "retried on the next run"),
        Ok(Disposition::Throttle) => ("throttle", "throttled: retried on the next run"),
        Ok(Disposition::Environment) => ("throttle", "fix the environment, then rerun"),
        Ok(Disposition::NeedsCookies) => ("retry", "needs --cookies"),
        Err(_) => ("retry", "unknown category"),
    }
}

pub(super) fn failures(h: &mut String, d: &ReportData) {
    h.push_str(r#"<section><h2>Failures by category</h2><p class="sub">Why clips could not be made, as classified from yt-dlp's and ffmpeg's messages.</p>"#);
    if d.failures.is_empty() {
        h.push_str(r#"<p class="empty">No clip has failed.</p></section>"#);
        return;
    }
    let max = d.failures.iter().map(|f| f.count).max().unwrap_or(1) as f64;
    let rows: Vec<_> = d
        .failures
        .iter()
        .map(|f| (f.category.clone(), f.count as f64, format!("{} · {}", f.count, pct(f.share_of_failed))))
        .collect();
    h.push_str(&svg::hbars(&rows, max, FAILED, "failed clips by category"));
    h.push_str(r#"<table><tr><th>category</th><th class="n">clips</th><th class="n">of failed</th><th class="n">of all clips</th><th>what happens</th></tr>"#);
    for f in &d.failures {
        let (class, what) = disposition(&f.category);
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td><span class="pill {class}">{what}</span></td></tr>"#,
            esc(&f.category),
            f.count,
            pct(f.share_of_failed),
            pct(f.share_of_total)
        );
    }
    h.push_str("</table></section>");
}

pub(super) fn classes(h: &mut String, d: &ReportData) {
    let c = &d.classes;
    h.push_str(r#"<section><h2>Per-class coverage</h2>"#);
    if c.rows.is_empty() {
        h.push_str(r#"<p class="empty">No labelled clips (an unlabelled test split has no classes).</p></section>"#);
        return;
    }
    let mut names = c.min_done_classes.iter().take(5).map(|s| esc(s)).collect::<Vec<_>>().join(", ");
    if c.min_done_classes.len() > 5 {
        let _ = write!(names, " and {} more", c.min_done_classes.len() - 5);
    }
    let _ = write!(
        h,
        r#"<p class="sub">{} classes · minimum <b>{}</b> done clips per class ({names}) · median {}. Worst coverage first.</p>"#,
        c.count,
        c.min_done,
        fmt_num(c.median_done)
    );
    if c.multi_label_clips > 0 {
        let _ = write!(
            h,
            r#"<p class="sub">{} clips with several labels count in each of their classes, so the classes hold more clips than the dataset.</p>"#,
            c.multi_label_clips
        );
    }
    let rows: Vec<_> = c
        .rows
        .iter()
        .take(CLASS_BARS)
        .map(|r| {
            (r.label.clone(), r.coverage * 100.0, format!("{} / {} · {}", r.tally.done, r.tally.total, pct(r.coverage)))
        })
        .collect();
    h.push_str(&svg::hbars(&rows, 100.0, ACCENT, "classes with the lowest share of clips done"));
    let _ = write!(
        h,
        r#"<details><summary>All {} classes</summary><table><tr><th>class</th><th class="n">done</th><th class="n">failed</th><th class="n">pending</th><th class="n">coverage</th></tr>"#,
        c.count
    );
    for r in &c.rows {
        let t = &r.tally;
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(&r.label),
            t.done,
            t.failed,
            t.pending,
            pct(r.coverage)
        );
    }
    h.push_str("</table></details></section>");
}

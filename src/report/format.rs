//! Formatting helpers the report's sections share: percentages, bytes, durations, legends.

use super::svg::esc;
use std::fmt::Write as _;

/// A share as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

pub use crate::units::human_bytes as fmt_bytes;

/// A duration as people say it: `4.2 s`, `12 min`, `3 h 20 min`, `2 d 5 h`.
pub fn fmt_secs(s: f64) -> String {
    match s {
        s if !s.is_finite() => "—".into(),
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{:.0} min", s / 60.0),
        s if s < 86_400.0 => format!("{} h {} min", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64),
        s => format!("{} d {} h", (s / 86_400.0) as u64, (s % 86_400.0 / 3600.0) as u64),
    }
}

/// Colour swatches with names; `extra` is appended inside the row (trusted HTML).
pub fn legend(h: &mut String, items: &[(&str, &str)], extra: &str) {
    h.push_str(r#"<div class="legend">"#);
    for (color, name) in items {
        let _ = write!(h, r#"<span><i style="background:{color}"></i>{}</span>"#, esc(name));
    }
    h.push_str(extra);
    h.push_str("</div>");
}

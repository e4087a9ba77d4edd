//! The settings that change a clip's bytes, pinned by the first run of a fleet: every worker must have the
//! same, or the dataset would mix encodes.

use crate::config::Config;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Each pinned setting with the option that sets it.
const SETTINGS: &[(&str, &str)] = &[
    ("max_height", "--max-height"),
    ("trim", "--trim"),
    ("short_side", "--short-side"),
    ("fps", "--fps"),
    ("no_audio", "--no-audio"),
    ("url_template", "--url-template"),
    ("audio_format", "--audio-only/--audio-format"),
    ("sample_rate", "--sample-rate"),
    ("channels", "--channels"),
];

/// A worker whose settings differ from the fleet's: it is refused (exit 2) before claiming anything.
#[derive(Debug, thiserror::Error)]
#[error("this worker's settings differ from those fleet `{fleet}` was started with: {differences}; rerun with the fleet's settings or name another --fleet")]
pub struct PinError {
    pub fleet: String,
    pub differences: String,
}

/// The pinned settings as a JSON object (keys sorted) and its hash. The audio-only settings are there only
/// for an audio fleet (`--audio-only`), so a video fleet's settings, and their hash, are those it was
/// created with before audio fleets existed.
pub fn pinned_settings(cfg: &Config) -> (String, String) {
    let mut value = json!({
        "max_height": cfg.max_height,
        "trim": cfg.encode.trim_name(),
        "short_side": cfg.encode.short_side,
        "fps": cfg.encode.fps,
        "no_audio": cfg.encode.no_audio,
        "url_template": cfg.url_template,
    });
    if let (Some(audio), Some(map)) = (cfg.encode.audio_only, value.as_object_mut()) {
        map.insert("audio_format".into(), json!(audio.format.ext()));
        map.insert("sample_rate".into(), json!(audio.sample_rate));
        map.insert("channels".into(), json!(audio.channels));
    }
    let text = value.to_string();
    let hash = crate::units::hex(&Sha256::digest(text.as_bytes()));
    (text, hash)
}

/// Compares this worker's settings (`ours`) with the fleet's (`theirs`, as PostgreSQL returned the jsonb);
/// `Err` names every option that differs and both values.
pub fn compare(fleet: &str, ours: &str, theirs: &str) -> Result<(), PinError> {
    let parse = |s: &str| serde_json::from_str::<Map<String, Value>>(s).unwrap_or_default();
    let (ours, theirs) = (parse(ours), parse(theirs));
    let differences: Vec<String> = SETTINGS
        .iter()
        .filter_map(|(key, flag)| {
            let (a, b) = (ours.get(*key).unwrap_or(&Value::Null), theirs.get(*key).unwrap_or(&Value::Null));
            let same = match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            };
            (!same).then(|| format!("{flag} is {} here, {} in the fleet", show(a), show(b)))
        })
        .collect();
    if differences.is_empty() {
        return Ok(());
    }
    Err(PinError { fleet: fleet.to_string(), differences: differences.join("; ") })
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "unset".into(),
        Value::String(s) => format!("`{s}`"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_named_by_option() {
        let base = r#"{"fps":null,"max_height":360,"no_audio":false,"short_side":null,"trim":"exact","url_template":"http://h/{youtube_id}"}"#;
        let table = [
            (base, ""),
            // PostgreSQL's jsonb spacing and key order do not matter.
            (
                r#"{"fps": null, "trim": "exact", "no_audio": false, "max_height": 360, "short_side": null, "url_template": "http://h/{youtube_id}"}"#,
                "",
            ),
            (
                r#"{"fps":null,"max_height":240,"no_audio":false,"short_side":null,"trim":"exact","url_template":"http://h/{youtube_id}"}"#,
                "--max-height is 360 here, 240 in the fleet",
            ),
            (
                r#"{"fps":25.0,"max_height":360,"no_audio":true,"short_side":null,"trim":"copy","url_template":"http://h/{youtube_id}"}"#,
                "--trim is `exact` here, `copy` in the fleet; --fps is unset here, 25.0 in the fleet; --no-audio is false here, true in the fleet",
            ),
            // An audio fleet (`--audio-only --sample-rate 16000`) against this video worker.
            (
                r#"{"audio_format":"flac","channels":null,"fps":null,"max_height":360,"no_audio":false,"sample_rate":16000,"short_side":null,"trim":"exact","url_template":"http://h/{youtube_id}"}"#,
                "--audio-only/--audio-format is unset here, `flac` in the fleet; --sample-rate is unset here, 16000 in the fleet",
            ),
        ];
        for (theirs, want) in table {
            match compare("k", base, theirs) {
                Ok(()) => assert_eq!(want, "", "{theirs}"),
                Err(e) => assert_eq!(e.differences, want, "{theirs}"),
            }
        }
    }
}

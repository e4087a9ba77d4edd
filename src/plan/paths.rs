//! Output names: class folders, split folders and clip files, all single safe path components so that
//! a job's path can never leave OUT, whatever the labels say.
//!
//! Clip files follow the CVDF mirror: `{youtube_id}_{start:06}_{end:06}.mp4` in whole seconds, for example
//! `0wR5jVB-WPk_000417_000427.mp4`. A fractional time keeps its milliseconds after a dot:
//! `x_000017.500_000027.500.mp4` (note that tools which cut a sample key at the first dot, such as
//! WebDataset, then see `x_000017`).

use super::{ClassDirs, ClipKey};
use crate::annotations::UNSPLIT;
use std::path::PathBuf;

/// Longest file name most file systems accept, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The class folder for a label: the mode's spelling, then made safe (see [`safe_component`]).
pub fn class_dir_name(label: &str, mode: ClassDirs) -> String {
    let spelled: String = match mode {
        ClassDirs::Raw => label.to_owned(),
        ClassDirs::Underscore | ClassDirs::First => label.replace(' ', "_"),
        ClassDirs::Torchvision => {
            label.chars().filter(|c| !matches!(c, '\'' | '(' | ')')).map(|c| if c == ' ' { '_' } else { c }).collect()
        }
    };
    safe_component(&spelled, label)
}

/// The split folder: the normalised split made safe, or `unsplit` for rows without one.
pub fn split_dir_name(split: Option<&str>) -> String {
    match split {
        Some(split) => safe_component(split, split),
        None => UNSPLIT.to_owned(),
    }
}

/// `{youtube_id}_{start}_{end}.mp4`; see the module docs for the time format.
pub fn clip_file_name(key: &ClipKey) -> String {
    clip_file_name_ext(key, "mp4")
}

/// [`clip_file_name`] ending in `.{ext}` (`flac`, `wav`, `m4a` for `--audio-only`).
pub fn clip_file_name_ext(key: &ClipKey, ext: &str) -> String {
    let mut name = String::with_capacity(key.youtube_id.len() + ext.len() + 24);
    push_clip_file_name(&mut name, key, ext);
    name
}

/// Appends [`clip_file_name_ext`] to `out`: the plan builds 650,000 paths, each in one allocation.
fn push_clip_file_name(out: &mut String, key: &ClipKey, ext: &str) {
    // Ids are validated upstream; mapping stray characters anyway keeps a hand-made key from naming a path.
    let id_at = out.len();
    out.extend(key.youtube_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }));
    if out.len() == id_at {
        out.push('_');
    }
    out.push('_');
    push_clip_time(out, key.start_ms);
    out.push('_');
    push_clip_time(out, key.end_ms);
    out.push('.');
    out.push_str(ext);
}

/// Whole seconds as `000417`, otherwise `000017.500`.
fn push_clip_time(out: &mut String, ms: i64) {
    use std::fmt::Write;
    let (seconds, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    // Writing to a String cannot fail.
    let _ = if millis == 0 { write!(out, "{seconds:06}") } else { write!(out, "{seconds:06}.{millis:03}") };
}

/// `{split}/{class}/{file}`, or `{split}/{file}` for an unlabelled clip. Every part is one safe component
/// (never empty, never with a `/`: [`split_dir_name`], [`class_dir_name`]), so they are joined as text.
pub fn rel_path(split_dir: &str, class_dir: Option<&str>, key: &ClipKey, ext: &str) -> PathBuf {
    let class_len = class_dir.map_or(0, |c| c.len() + 1);
    let mut path = String::with_capacity(split_dir.len() + class_len + key.youtube_id.len() + ext.len() + 25);
    path.push_str(split_dir);
    path.push('/');
    if let Some(class_dir) = class_dir {
        path.push_str(class_dir);
        path.push('/');
    }
    push_clip_file_name(&mut path, key, ext);
    PathBuf::from(path)
}

/// Makes `name` one harmless path component: `/`, `\`, NUL and control characters become `_`; an empty
/// name or one starting with `.` (so also `.` and `..`) gets a `_` prefix; a name over 255 bytes is cut at
/// a character boundary and ends in `-` plus a 16-hex-digit FNV-1a hash of `original`, so distinct
/// labels stay distinct and the name is the same on every run.
pub fn safe_component(name: &str, original: &str) -> String {
    let mut out: String = name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    if out.len() > MAX_NAME_BYTES {
        let suffix = format!("-{:016x}", fnv1a64(original.as_bytes()));
        let mut cut = MAX_NAME_BYTES - suffix.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&suffix);
    }
    out
}

/// FNV-1a, 64 bits: tiny, and unlike std's hashers fixed across Rust versions and runs.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Component, Path};

    fn key(id: &str, start_ms: i64, end_ms: i64) -> ClipKey {
        ClipKey { youtube_id: id.to_owned(), start_ms, end_ms }
    }

    #[test]
    fn class_dirs_by_mode() {
        use ClassDirs::*;
        let cases = [
            ("air drumming", ["air drumming", "air_drumming", "air_drumming"]),
            (
                "passing American football (in game)",
                [
                    "passing American football (in game)",
                    "passing_American_football_(in_game)",
                    "passing_American_football_in_game",
                ],
            ),
            (
                "massaging person's head",
                ["massaging person's head", "massaging_person's_head", "massaging_persons_head"],
            ),
            ("../../etc", ["_.._.._etc", "_.._.._etc", "_.._.._etc"]),
            ("a/b", ["a_b", "a_b", "a_b"]),
            ("a\\b", ["a_b", "a_b", "a_b"]),
            ("..", ["_..", "_..", "_.."]),
            (".", ["_.", "_.", "_."]),
            (".hidden", ["_.hidden", "_.hidden", "_.hidden"]),
            ("", ["_", "_", "_"]),
            ("()", ["()", "()", "_"]),
            ("a\0b\nc", ["a_b_c", "a_b_c", "a_b_c"]),
            (" x", [" x", "_x", "_x"]),
        ];
        for (label, want) in cases {
            for (mode, want) in [Raw, Underscore, Torchvision].into_iter().zip(want) {
                assert_eq!(class_dir_name(label, mode), want, "{label:?} {mode:?}");
            }
        }
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let a = format!("{}a", "x".repeat(299));
        let b = format!("{}b", "x".repeat(299));
        let multibyte = "\u{e9}".repeat(150);
        for label in [&a, &b, &multibyte] {
            for mode in [ClassDirs::Raw, ClassDirs::Underscore, ClassDirs::Torchvision] {
                let name = class_dir_name(label, mode);
                assert!(name.len() <= MAX_NAME_BYTES, "{} bytes", name.len());
                assert!(name.len() > MAX_NAME_BYTES - 4, "{} bytes", name.len());
                assert!(name.ends_with(&format!("-{:016x}", fnv1a64(label.as_bytes()))));
                assert_eq!(name, class_dir_name(label, mode));
            }
        }
        assert_ne!(class_dir_name(&a, ClassDirs::Raw), class_dir_name(&b, ClassDirs::Raw));
        let exact = "y".repeat(MAX_NAME_BYTES);
        assert_eq!(class_dir_name(&exact, ClassDirs::Raw), exact);
    }

    #[test]
    fn clip_names() {
        let cases = [
            (key("0wR5jVB-WPk", 417_000, 427_000), "0wR5jVB-WPk_000417_000427.mp4"),
            (key("--07WQ2iBlw", 1_000, 11_000), "--07WQ2iBlw_000001_000011.mp4"),
            (key("x", 17_500, 27_500), "x_000017.500_000027.500.mp4"),
            (key("x", 0, 10_050), "x_000000_000010.050.mp4"),
            (key("x", 1_234_567_001, 1_234_567_002), "x_1234567.001_1234567.002.mp4"),
            (key("a/../b", 0, 1_000), "a____b_000000_000001.mp4"),
            (key("", 0, 1_000), "__000000_000001.mp4"),
        ];
        for (key, want) in cases {
            assert_eq!(clip_file_name(&key), want);
        }
    }

    #[test]
    fn paths_stay_inside_out() {
        let hostile = ["../../etc", "a/b", "..", ".", "", "/abs", "\\..\\x", "a\0b", &"z".repeat(300)];
        for label in hostile {
            for split in hostile {
                for mode in [ClassDirs::Raw, ClassDirs::Underscore, ClassDirs::Torchvision] {
                    let class = class_dir_name(label, mode);
                    let split_dir = split_dir_name(Some(split));
                    let path = rel_path(&split_dir, Some(&class), &key("-x", 0, 1000), "mp4");
                    let joined = Path::new(&split_dir).join(&class).join(clip_file_name(&key("-x", 0, 1000)));
                    assert_eq!(path, joined);
                    let parts: Vec<_> = path.components().collect();
                    assert_eq!(parts.len(), 3, "{path:?}");
                    assert!(parts.iter().all(|c| matches!(c, Component::Normal(_))), "{path:?}");
                }
            }
        }
        assert_eq!(split_dir_name(None), "unsplit");
        assert_eq!(rel_path("test", None, &key("a", 0, 1000), "mp4"), PathBuf::from("test/a_000000_000001.mp4"));
        assert_eq!(rel_path("test", None, &key("a", 0, 1500), "flac"), PathBuf::from("test/a_000000_000001.500.flac"));
    }
}

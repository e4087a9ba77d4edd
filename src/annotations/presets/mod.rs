//! The other YouTube-clip datasets' published formats, each in a file of its own: VGGSound's headerless CSV
//! (`vggsound.rs`) and the ActivityNet / HACS Segments JSON (`activitynet.rs`); any other delimited file
//! through a column map (`columns.rs`, with `youtube_url.rs` for ids given as URLs). Kinetics files and HACS
//! Clips stay with the header-driven readers (`../csv.rs`, `../json.rs`).
//!
//! A file's preset is the one given with `--preset`, or recognised from its start where that is
//! unambiguous (see [`recognise`]).

mod activitynet;
mod audioset;
mod ava;
mod columns;
pub(crate) mod line;
mod vggsound;
mod youtube_url;

pub(crate) use activitynet::read as read_activitynet;
pub(crate) use audioset::read as read_audioset;
pub(crate) use ava::read as read_ava;
pub(crate) use columns::read as read_columns;
pub use columns::{Column, ColumnMap, MapOptions};
pub(crate) use vggsound::read as read_vggsound;

/// The format of the annotation files, from `--preset` or `--columns`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Preset {
    /// Recognised from each file's start; Kinetics CSV and JSON (and HACS Clips) when nothing else fits.
    #[default]
    Auto,
    /// DeepMind's CSV and JSON, any release, and same-shape CSVs such as HACS Clips: today's readers.
    Kinetics,
    /// `youtube_id,start_seconds,label,split`, no header, 10 s clips.
    VggSound,
    /// `{"database": {id: {"subset", "annotations": [{"segment": [s, e], "label"}]}}}` (ActivityNet 1.3,
    /// HACS Segments): one clip per segment.
    ActivityNet,
    /// AudioSet's segments CSV: `#` comments, `YTID, start_seconds, end_seconds, "label,label"`; every
    /// label of a row kept.
    AudioSet,
    /// AVA-Kinetics' boxes: no header, `youtube_id,timestamp,x1,y1,x2,y2,action_id[,person_id]`; one clip
    /// per keyframe, its window around it, every action and box of the keyframe kept.
    AvaKinetics,
    /// Any delimited file, read through the user's column map (`--columns`).
    Columns(ColumnMap),
}

/// Length of a VGGSound clip: the file gives only its start.
pub const VGGSOUND_CLIP_SECONDS: f64 = 10.0;

/// The preset a file's first bytes (BOM removed) show, when no `--preset` was given. JSON whose first key
/// is `database`, `version` or `taxonomy` is ActivityNet's shape (DeepMind's keys are 11-character ids and
/// never start an ActivityNet-style file); a CSV whose first line is four fields with a number second and
/// a split last (`train`, `test`) is VGGSound (no Kinetics header holds a number); a CSV whose column
/// line (after `#` comments, or as the header) is `YTID, start_seconds, end_seconds, positive_labels` is
/// AudioSet; a first line of 7 or 8 numbers after an id, the middle four between 0 and 1, is AVA-Kinetics.
/// Anything else is `Kinetics`.
pub(crate) fn recognise(prefix: &[u8]) -> Preset {
    let text = String::from_utf8_lossy(&prefix[..prefix.len().min(4096)]);
    let body = text.trim_start();
    if let Some(rest) = body.strip_prefix('{') {
        let key = rest.trim_start().strip_prefix('"').and_then(|k| k.split('"').next());
        return match key {
            Some("database" | "version" | "taxonomy") => Preset::ActivityNet,
            _ => Preset::Kinetics,
        };
    }
    let Some(first) = body.lines().next() else { return Preset::Kinetics };
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if audioset::is_header(line) {
            return Preset::AudioSet;
        }
        if !line.starts_with('#') {
            break;
        }
    }
    if ava::looks_like(first) {
        return Preset::AvaKinetics;
    }
    match line::split(first, ',') {
        Ok(fields)
            if fields.len() == 4
                && fields[1].parse::<f64>().is_ok()
                && matches!(fields[3].as_ref(), "train" | "test" | "val" | "validation") =>
        {
            Preset::VggSound
        }
        _ => Preset::Kinetics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_published_shape() {
        let cases: [(&str, Preset); 15] = [
            ("-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1\n", Preset::AvaKinetics),
            ("-5KQ66BBWC4,902.5,0.077,0.151,0.283,0.811,12\r\n", Preset::AvaKinetics),
            (
                "# Segments csv created Sun Mar  5 10:54:25 2017\n# num_ytids=22160, num_segs=22160\n# YTID, start_seconds, end_seconds, positive_labels\n--PJHxphWEs, 30.000, 40.000, \"/m/09x0r,/t/dd00088\"\n",
                Preset::AudioSet,
            ),
            ("YTID,start_seconds,end_seconds,positive_labels\n", Preset::AudioSet),
            ("# a comment\nYTID,start_seconds,end_seconds,positive_labels\n", Preset::AudioSet),
            ("# YTID, start_seconds, end_seconds\n", Preset::Kinetics),
            ("---g-f_I2yQ,1,people marching,test\n", Preset::VggSound),
            ("-0BIyqJj9ZU,30,\"cattle, bovinae cowbell\",train\r\n", Preset::VggSound),
            ("{\"version\": \"VERSION 1.3\", \"taxonomy\": [], \"database\": {}}", Preset::ActivityNet),
            ("  {\n  \"database\": {\"abc\": {}}}", Preset::ActivityNet),
            ("{\"--07WQ2iBlw\": {\"annotations\": {}}}", Preset::Kinetics),
            ("label,youtube_id,time_start,time_end,split\n", Preset::Kinetics),
            ("classname,youtube_id,subset,start,end,label\n", Preset::Kinetics),
            ("youtube_id,time_start,time_end,split\n", Preset::Kinetics),
            ("a,b,c,d\n", Preset::Kinetics),
        ];
        for (text, want) in cases {
            assert_eq!(recognise(text.as_bytes()), want, "{text:?}");
        }
    }

    fn sample(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/presets").join(name)
    }

    /// label, id, start, end, split, line
    type Seen = (String, String, f64, f64, String, u64);

    fn read(name: &str, preset: Preset) -> Vec<Seen> {
        let rows = crate::annotations::read_all_as(&[sample(name)], &Default::default(), &preset).unwrap();
        rows.into_iter()
            .map(|r| (r.label.unwrap_or_default(), r.youtube_id, r.time_start, r.time_end, r.split.unwrap(), r.line))
            .collect()
    }

    #[test]
    fn samples_read_the_same_with_and_without_the_preset() {
        let s = |x: &str| x.to_owned();
        let vgg = [
            (s("cattle, bovinae cowbell"), s("vggsound-a1"), 4.0, 14.0, s("train"), 1),
            (s("dog barking"), s("vggsound_b2"), 12.5, 22.5, s("test"), 2),
            (s("people marching"), s("vggsound-a1"), 30.0, 40.0, s("train"), 3),
        ];
        assert_eq!(read("vggsound.csv", Preset::VggSound), vgg);
        assert_eq!(read("vggsound.csv", Preset::Auto), vgg);
        let anet = [
            (s("Cleaning windows"), s("anet-video1"), 3.2, 9.73, s("training"), 3),
            (s("Cleaning windows"), s("anet-video1"), 21.0, 27.5, s("training"), 3),
            (s("Playing bagpipes"), s("anet-video2"), 40.15, 44.9, s("validation"), 7),
        ];
        assert_eq!(read("activitynet.json", Preset::ActivityNet), anet);
        assert_eq!(read("activitynet.json", Preset::Auto), anet);
    }
}

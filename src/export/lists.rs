//! The list-file formats: classes.txt, torchvision, mmaction2, PyTorchVideo, PySlowFast and a CSV dump.

use super::{write_atomic, write_atomic_with, Dataset};
use crate::journal::read::{DoneClip, Reader, Record};
use anyhow::Context;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Where the whitespace-free symlinks for mmaction2 and slowfast go, inside OUT.
pub const LINKS_DIR: &str = "links";

/// A clip path no list format can carry (a line break in it, or a symlink that would collide).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unexportable(pub String);

/// `OUT/classes.txt`: sorted labels, index = line number.
pub fn classes_txt(ds: &Dataset) -> anyhow::Result<String> {
    let mut text = ds.classes.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    write_atomic(&ds.out.join("classes.txt"), text.as_bytes())?;
    Ok(format!("{}: {} classes, index = line number from 0", ds.out.join("classes.txt").display(), ds.classes.len()))
}

/// torchvision reads the tree itself; this names its `val` split and warns where its class numbering
/// (sorted folder names present in the split) differs from classes.txt.
pub fn torchvision(ds: &Dataset) -> anyhow::Result<Vec<String>> {
    let mut notes = vec![format!(
        "the tree is used as is: torchvision.datasets.Kinetics(root=\"{}\", split=...)",
        ds.out.display()
    )];
    // torchvision only knows the split names train, val and test; `validate` gets a `val` alias.
    let (validate, val) = (ds.out.join("validate"), ds.out.join("val"));
    if validate.is_dir() && std::fs::symlink_metadata(&val).is_err() {
        std::os::unix::fs::symlink("validate", &val).with_context(|| format!("failed to create {}", val.display()))?;
        notes.push(format!("{} -> validate, for split=\"val\"", val.display()));
    }
    for (split, clips) in &ds.splits {
        let folders: BTreeMap<&str, i64> =
            clips.iter().filter_map(|c| Some((class_folder(c)?, ds.label_index(c)))).collect();
        let multi = clips.iter().filter(|c| c.is_multi_label() && class_folder(c).is_none()).count();
        if multi > 0 {
            notes.push(format!(
                "split {split}: {multi} clips with several labels sit in the split's own folder, outside the class \
                 folders torchvision reads (--class-dirs first puts them under their first label)"
            ));
        }
        if folders.is_empty() {
            notes.push(format!("split {split} has no class folders: torchvision's Kinetics cannot load it"));
            continue;
        }
        if let Some((i, (folder, idx))) = folders.iter().enumerate().find(|(i, (_, idx))| *i as i64 != **idx) {
            notes.push(format!(
                "split {split}: torchvision numbers classes by its sorted folder names, so `{folder}` is {i} there \
                 but {idx} in classes.txt; map indices through the class names"
            ));
        }
    }
    Ok(notes)
}

/// The class folder of a labelled clip (`validate/air_drumming/x.mp4` → `air_drumming`).
fn class_folder(c: &DoneClip) -> Option<&str> {
    c.label.as_ref()?;
    let mut parts = c.rel_path.split('/');
    let (_, folder, _) = (parts.next()?, parts.next()?, parts.next()?);
    Some(folder)
}

/// `OUT/kinetics_{split}_list_videos.txt`: `class_dir/clip.mp4 label_index`, relative to the split folder
/// (mmaction2's `data_prefix`).
pub fn mmaction2(ds: &Dataset) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    for (split, clips) in &ds.splits {
        let (paths, linked) = listable_paths(&ds.out, clips)?;
        let strip = |p: &'_ str| -> String {
            let p = if linked { p.strip_prefix("links/").unwrap_or(p) } else { p };
            p.to_string()
        };
        // Lines are relative to the split folder (the paths' first component), mmaction2's data_prefix.
        let folder = paths.first().map(|p| strip(p).split('/').next().unwrap_or("").to_string()).unwrap_or_default();
        let mut text = String::new();
        for (c, p) in clips.iter().zip(&paths) {
            let p = strip(p);
            let Some(rest) = p.strip_prefix(&format!("{folder}/")) else {
                let msg = format!("split {split} has clips outside its folder `{folder}` (`{p}`); mmaction2 takes one data_prefix a split");
                return Err(Unexportable(msg).into());
            };
            text.push_str(rest);
            for i in ds.label_indices(c) {
                text.push_str(&format!(" {i}"));
            }
            text.push('\n');
        }
        let prefix = if linked { ds.out.join(LINKS_DIR) } else { ds.out.clone() }.join(&folder);
        let file = ds.out.join(format!("kinetics_{split}_list_videos.txt"));
        write_atomic(&file, text.as_bytes())?;
        let via = if linked { " (symlinks without spaces)" } else { "" };
        notes.push(format!("{}: {} clips, data_prefix {}{via}", file.display(), clips.len(), prefix.display()));
        if clips.iter().any(DoneClip::is_multi_label) {
            notes.push(format!(
                "split {split} has clips with several labels, every index on their line: set multi_class=True, \
                 num_classes={} in mmaction2's VideoDataset",
                ds.classes.len()
            ));
        }
    }
    Ok(notes)
}

/// `OUT/pytorchvideo/{split}.csv`: `path label_index` relative to OUT; PyTorchVideo splits each line
/// from the right, so spaces in paths are fine.
pub fn pytorchvideo(ds: &Dataset) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    for (split, clips) in &ds.splits {
        check_one_line(clips)?;
        if clips.iter().any(DoneClip::is_multi_label) {
            // LabeledVideoPaths reads one index a line; LabeledVideoDataset takes (path, info) pairs whose
            // info becomes the sample's fields, so every label goes there.
            let pairs: Vec<(&str, serde_json::Value)> = clips
                .iter()
                .map(|c| (c.rel_path.as_str(), serde_json::json!({ "label": ds.label_indices(c) })))
                .collect();
            let file = ds.out.join("pytorchvideo").join(format!("{split}.json"));
            write_atomic(&file, &serde_json::to_vec(&pairs)?)?;
            notes.push(format!(
                "{}: {} clips with every label, (path relative to {}, {{\"label\": [indices]}}) pairs for \
                 pytorchvideo.data.LabeledVideoDataset",
                file.display(),
                clips.len(),
                ds.out.display()
            ));
            continue;
        }
        let text: String = clips.iter().map(|c| format!("{} {}\n", c.rel_path, ds.label_index(c))).collect();
        let file = ds.out.join("pytorchvideo").join(format!("{split}.csv"));
        write_atomic(&file, text.as_bytes())?;
        notes.push(format!("{}: {} clips, video_path_prefix {}", file.display(), clips.len(), ds.out.display()));
    }
    Ok(notes)
}

/// PySlowFast's mode name for a split.
pub fn slowfast_mode(split: &str) -> &str {
    match split {
        "validate" | "val" | "valid" | "validation" => "val",
        other => other,
    }
}

/// `OUT/slowfast/{train,val,test}.csv`: `path label_index`, no header, relative to OUT (PATH_PREFIX).
pub fn slowfast(ds: &Dataset) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    let dir = ds.out.join("slowfast");
    for (split, clips) in &ds.splits {
        if let Some(c) = clips.iter().find(|c| c.is_multi_label()) {
            return Err(Unexportable(format!(
                "split {split} has clips with several labels (`{}`); PySlowFast's lists hold one label a clip: \
                 export mmaction2, pytorchvideo, webdataset or csv instead",
                c.rel_path
            ))
            .into());
        }
        let (paths, linked) = listable_paths(&ds.out, clips)?;
        let text: String = clips.iter().zip(&paths).map(|(c, p)| format!("{p} {}\n", ds.label_index(c))).collect();
        let file = dir.join(format!("{}.csv", slowfast_mode(split)));
        write_atomic(&file, text.as_bytes())?;
        let via = if linked { " (symlinks without spaces)" } else { "" };
        notes.push(format!("{}: {} clips{via}", file.display(), clips.len()));
    }
    notes.push(format!("set DATA.PATH_TO_DATA_DIR {} and DATA.PATH_PREFIX {}", dir.display(), ds.out.display()));
    Ok(notes)
}

/// `OUT/clips.csv`: every column of the journal's clips table, for the exported (done) clips.
pub fn csv(ds: &Dataset) -> anyhow::Result<Vec<String>> {
    let ids: HashSet<i64> = ds.splits.values().flatten().map(|c| c.id).collect();
    let file = ds.out.join("clips.csv");
    let (mut n, mut columns) = (0, 0);
    // Streamed from the journal into the file: one row in memory at a time.
    write_atomic_with(&file, |out| {
        let mut w = csv::Writer::from_writer(out);
        Reader::open(&ds.out)?.each_done_clip_record(|record| {
            match record {
                Record::Header(names) => {
                    columns = names.len();
                    w.write_record(names)?;
                }
                Record::Clip(id, cells) if ids.contains(&id) => {
                    w.write_record(cells)?;
                    n += 1;
                }
                Record::Clip(..) => {}
            }
            Ok(())
        })?;
        w.flush()?;
        Ok(())
    })?;
    Ok(vec![format!("{}: {n} clips, {columns} columns", file.display())])
}

fn check_one_line(clips: &[DoneClip]) -> anyhow::Result<()> {
    if let Some(c) = clips.iter().find(|c| c.rel_path.contains(['\n', '\r'])) {
        return Err(Unexportable(format!(
            "the clip path {:?} has a line break; no list format can hold it",
            c.rel_path
        ))
        .into());
    }
    Ok(())
}

/// The paths (relative to OUT) to list for one split's clips in a whitespace-separated format: the clips
/// themselves, or, when any path has whitespace, symlinks `links/<path with _ for whitespace>` for all of
/// them (so one prefix serves the whole split). Returns the paths and whether they are links.
pub fn listable_paths(out: &Path, clips: &[DoneClip]) -> anyhow::Result<(Vec<String>, bool)> {
    check_one_line(clips)?;
    if !clips.iter().any(|c| c.rel_path.contains(char::is_whitespace)) {
        return Ok((clips.iter().map(|c| c.rel_path.clone()).collect(), false));
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut paths = Vec::with_capacity(clips.len());
    for c in clips {
        let safe: String = c.rel_path.chars().map(|ch| if ch.is_whitespace() { '_' } else { ch }).collect();
        if let Some(other) = seen.insert(safe.clone(), &c.rel_path) {
            let msg =
                format!("`{other}` and `{}` both become `{safe}` without spaces; rename one class folder", c.rel_path);
            return Err(Unexportable(msg).into());
        }
        link(out, &c.rel_path, &safe)?;
        paths.push(format!("{LINKS_DIR}/{safe}"));
    }
    Ok((paths, true))
}

/// Creates (or repairs) the relative symlink OUT/links/<safe> → OUT/<rel>.
fn link(out: &Path, rel: &str, safe: &str) -> anyhow::Result<()> {
    let at = out.join(LINKS_DIR).join(safe);
    let target = format!("{}{rel}", "../".repeat(safe.split('/').count()));
    match std::fs::symlink_metadata(&at) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(&at).is_ok_and(|t| t == Path::new(&target)) {
                return Ok(());
            }
            std::fs::remove_file(&at).with_context(|| format!("failed to replace {}", at.display()))?;
        }
        Ok(_) => return Err(Unexportable(format!("{} exists and is not a symlink; move it away", at.display())).into()),
        Err(_) => {}
    }
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::os::unix::fs::symlink(&target, &at).with_context(|| format!("failed to create {}", at.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowfast_modes() {
        for (split, mode) in [
            ("train", "train"),
            ("validate", "val"),
            ("val", "val"),
            ("test", "test"),
            ("holdout_test", "holdout_test"),
        ] {
            assert_eq!(slowfast_mode(split), mode);
        }
    }

    #[test]
    fn class_folders() {
        let table = [
            ("validate/air drumming/x.mp4", Some("air drumming"), Some("air drumming")),
            ("test/x.mp4", None, None),
            ("test/x.mp4", Some("a"), None),
        ];
        for (path, label, want) in table {
            let c = DoneClip { rel_path: path.into(), label: label.map(Into::into), ..DoneClip::default() };
            assert_eq!(class_folder(&c), want, "{path}");
        }
    }

    #[test]
    fn whitespace_paths_become_links_that_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let row = |p: &str| DoneClip { rel_path: p.into(), ..DoneClip::default() };
        std::fs::create_dir_all(out.join("validate/air drumming")).unwrap();
        std::fs::write(out.join("validate/air drumming/a.mp4"), b"clip a").unwrap();
        std::fs::create_dir_all(out.join("validate/abseiling")).unwrap();
        std::fs::write(out.join("validate/abseiling/b.mp4"), b"clip b").unwrap();
        let plain = [row("validate/abseiling/b.mp4")];
        assert_eq!(listable_paths(out, &plain).unwrap(), (vec!["validate/abseiling/b.mp4".to_string()], false));
        let mixed = [row("validate/air drumming/a.mp4"), row("validate/abseiling/b.mp4")];
        for _ in 0..2 {
            // Twice: a second export finds the links in place.
            let (paths, linked) = listable_paths(out, &mixed).unwrap();
            assert!(linked);
            assert_eq!(paths, ["links/validate/air_drumming/a.mp4", "links/validate/abseiling/b.mp4"]);
            assert_eq!(std::fs::read(out.join(&paths[0])).unwrap(), b"clip a");
            assert_eq!(std::fs::read(out.join(&paths[1])).unwrap(), b"clip b");
        }
        let clash = [row("validate/air drumming/a.mp4"), row("validate/air_drumming/a.mp4")];
        let err = listable_paths(out, &clash).unwrap_err();
        assert!(err.downcast_ref::<Unexportable>().is_some(), "{err}");
        let newline = [row("validate/a\nb.mp4")];
        assert!(listable_paths(out, &newline).unwrap_err().to_string().contains("line break"));
    }
}

//! Synthetic CVDF mirrors for tests and benchmarks: tiny real mp4 clips packed in every layout the real
//! mirror uses, with path lists and annotation CSVs, written into a folder a local server serves.
//!
//! Include it with `#[path = "common/mirror_fixtures.rs"] mod mirror_fixtures;`. Each builder returns a
//! [`Fixture`] that says, for every clip it packed or annotated, what a correct fetch must end with.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The real mirror's base; path lists name tarballs under it, as the real ones do.
pub const REAL_BASE: &str = "https://s3.amazonaws.com/kinetics";

/// Length of the generated clips; use it as the expected duration.
pub const CLIP_SECS: f64 = 3.0;

/// Two distinct good clips, so a test can tell which copy of a clip was placed.
pub struct ClipBytes {
    pub a: Vec<u8>,
    pub b: Vec<u8>,
}

/// Made with ffmpeg once per machine (cached in the temp dir) and then copied byte for byte.
pub fn clip_bytes() -> &'static ClipBytes {
    static CLIPS: OnceLock<ClipBytes> = OnceLock::new();
    CLIPS.get_or_init(|| {
        let dir = std::env::temp_dir().join("kinetics-mirror-fixture-v1");
        std::fs::create_dir_all(&dir).expect("create the fixture cache");
        ClipBytes { a: make_clip(&dir, "a", "testsrc2"), b: make_clip(&dir, "b", "smptebars") }
    })
}

fn make_clip(dir: &Path, name: &str, source: &str) -> Vec<u8> {
    let path = dir.join(format!("{name}.mp4"));
    if let Ok(bytes) = std::fs::read(&path) {
        if !bytes.is_empty() {
            return bytes;
        }
    }
    // Another test process may be making the same file: write privately, then rename.
    let tmp = dir.join(format!("{name}.{}.tmp.mp4", std::process::id()));
    let video = format!("{source}=size=160x90:rate=15:duration={CLIP_SECS}");
    let audio = format!("sine=frequency=440:duration={CLIP_SECS}");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", &video])
        .args(["-f", "lavfi", "-i", &audio, "-c:v", "libx264", "-preset", "ultrafast", "-g", "15"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-shortest", "-fflags", "+bitexact"])
        .arg(&tmp)
        .status()
        .expect("run ffmpeg to make a fixture clip");
    assert!(status.success(), "ffmpeg failed to make {}", path.display());
    std::fs::rename(&tmp, &path).expect("store the fixture clip");
    std::fs::read(&path).expect("read the fixture clip")
}

/// What a packed file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    A,
    B,
    /// Zero bytes.
    Empty,
    /// The first half of A: its `moov` atom (at the end) is missing.
    Truncated,
    /// Noise, not a video at all.
    Random,
    /// A with a run of noise in the middle of its media data: probes fine, fails to decode.
    Damaged,
}

impl Content {
    pub fn bytes(self) -> Vec<u8> {
        let clips = clip_bytes();
        match self {
            Content::A => clips.a.clone(),
            Content::B => clips.b.clone(),
            Content::Empty => Vec::new(),
            Content::Truncated => clips.a[..clips.a.len() / 2].to_vec(),
            Content::Random => noise(7, 4096),
            Content::Damaged => {
                let mut bytes = clips.a.clone();
                let mid = bytes.len() / 2;
                bytes[mid..mid + 3000].copy_from_slice(&noise(11, 3000));
                bytes
            }
        }
    }
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut bytes);
    bytes
}

/// One entry of a tarball.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path exactly as stored (may hold `./`, `..` or a leading `/`); at most 100 bytes.
    pub path: String,
    /// `None` makes a directory entry.
    pub content: Option<Content>,
    /// Raw bytes instead of a `Content` (macOS AppleDouble files).
    pub raw: Option<Vec<u8>>,
}

impl Entry {
    pub fn file(path: impl Into<String>, content: Content) -> Entry {
        Entry { path: path.into(), content: Some(content), raw: None }
    }

    pub fn dir(path: impl Into<String>) -> Entry {
        Entry { path: path.into(), content: None, raw: None }
    }

    pub fn apple_double(path: impl Into<String>) -> Entry {
        let mut raw = vec![0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00];
        raw.extend(noise(3, 4088));
        Entry { path: path.into(), content: None, raw: Some(raw) }
    }
}

/// Writes a tar (gzip-compressed or plain, whatever the name says) at `root/rel`; returns its size.
/// Headers are written by hand so that `./`, `..` and absolute paths survive as given.
pub fn write_tar(root: &Path, rel: &str, gzip: bool, entries: &[Entry]) -> u64 {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let data = match (&entry.raw, entry.content) {
            (Some(raw), _) => raw.clone(),
            (None, Some(content)) => content.bytes(),
            (None, None) => Vec::new(),
        };
        let mut header = tar::Header::new_gnu();
        let is_dir = entry.raw.is_none() && entry.content.is_none();
        header.set_entry_type(if is_dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
        header.set_mode(if is_dir { 0o755 } else { 0o644 });
        header.set_size(data.len() as u64);
        header.set_mtime(1_500_000_000);
        let name = entry.path.as_bytes();
        assert!(name.len() <= 100, "fixture tar paths must fit the 100-byte name field: {}", entry.path);
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, data.as_slice()).expect("append a tar entry");
    }
    let mut bytes = builder.into_inner().expect("finish the tar");
    if gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).expect("gzip the tar");
        bytes = gz.finish().expect("finish gzip");
    }
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("rel has a folder")).expect("create tarball folder");
    std::fs::write(&path, &bytes).expect("write tarball");
    bytes.len() as u64
}

/// What a correct fetch ends with for one clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Placed at its destination with exactly these bytes.
    Placed(Content),
    /// Reported `ClipBad`, nothing placed.
    Bad,
    /// In no tarball (or only behind a refused path): neither event, nothing placed.
    Absent,
}

#[derive(Debug, Clone)]
pub struct FixtureClip {
    pub youtube_id: String,
    pub start: u32,
    pub end: u32,
    pub label: String,
    /// The annotation form: `train`, `validate` or `test`.
    pub split: String,
    /// Annotated: callers want it. Clips without a row come back as `Unmatched`.
    pub row: bool,
    pub expect: Expect,
}

impl FixtureClip {
    pub fn file_name(&self) -> String {
        format!("{}_{:06}_{:06}.mp4", self.youtube_id, self.start, self.end)
    }
}

/// A mirror written under `root`: serve `root` and use `{server}/files` (or wherever it is served) as
/// the base URL.
#[derive(Debug, Default)]
pub struct Fixture {
    pub root: PathBuf,
    pub clips: Vec<FixtureClip>,
    /// Tarball paths relative to `root`.
    pub tarballs: Vec<String>,
}

impl Fixture {
    fn new(root: &Path) -> Fixture {
        Fixture { root: root.to_path_buf(), ..Fixture::default() }
    }

    /// Adds a clip with a fresh id and returns its file name.
    fn clip(&mut self, split: &str, label: &str, row: bool, expect: Expect) -> String {
        let n = self.clips.len() as u32;
        let clip = FixtureClip {
            youtube_id: format!("fx{:02}-{:06}", split.len(), n),
            start: 10 * n,
            end: 10 * n + 10,
            label: label.to_string(),
            split: split.to_string(),
            row,
            expect,
        };
        let name = clip.file_name();
        self.clips.push(clip);
        name
    }

    fn tar(&mut self, rel: &str, gzip: bool, entries: &[Entry]) {
        write_tar(&self.root, rel, gzip, entries);
        self.tarballs.push(rel.to_string());
    }

    /// `{dir}/{split}/{prefix}_{split}_path.txt` naming `rels` under the real base URL, like the mirror.
    fn path_list(&self, dir: &str, prefix: &str, split: &str, rels: &[&str]) {
        let text: String = rels.iter().map(|r| format!("{REAL_BASE}/{r}\n")).collect();
        let path = self.root.join(format!("{dir}/{split}/{prefix}_{split}_path.txt"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `{dir}/annotations/{train,val,test}.csv` from the annotated clips; `is_cc` adds K400's column and
    /// writes `val`; a split whose clips have no label gets the unlabelled test header.
    fn annotations(&self, dir: &str, is_cc: bool) {
        for (split, file) in [("train", "train"), ("validate", "val"), ("test", "test")] {
            let rows: Vec<&FixtureClip> = self.clips.iter().filter(|c| c.row && c.split == split).collect();
            let labelled = rows.iter().all(|c| !c.label.is_empty());
            let shown = if is_cc && split == "validate" { "val" } else { split };
            let mut text = match (labelled, is_cc) {
                (true, true) => "label,youtube_id,time_start,time_end,split,is_cc\n".to_string(),
                (true, false) => "label,youtube_id,time_start,time_end,split\n".to_string(),
                (false, _) => "youtube_id,time_start,time_end,split\n".to_string(),
            };
            for c in rows {
                let label = if c.label.contains(' ') { format!("\"{}\"", c.label) } else { c.label.clone() };
                let (id, s, e) = (&c.youtube_id, c.start, c.end);
                match (labelled, is_cc) {
                    (true, true) => text.push_str(&format!("{label},{id},{s},{e},{shown},0\n")),
                    (true, false) => text.push_str(&format!("{label},{id},{s},{e},{shown}\n")),
                    (false, _) => text.push_str(&format!("{id},{s},{e},{shown}\n")),
                }
            }
            let path = self.root.join(format!("{dir}/annotations/{file}.csv"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    /// Annotated clips of the given splits (annotation form).
    pub fn rows<'a>(&'a self, splits: &'a [&str]) -> impl Iterator<Item = &'a FixtureClip> + 'a {
        self.clips.iter().filter(move |c| c.row && splits.contains(&c.split.as_str()))
    }

    /// Packed clips no row asks for, in the given splits: what a fetch reports as unmatched.
    pub fn unmatched(&self, splits: &[&str]) -> usize {
        self.clips.iter().filter(|c| !c.row && c.expect != Expect::Absent && splits.contains(&c.split.as_str())).count()
    }
}

/// K400: flat gzip parts, a plain tar named `.tar.gz` with a deep `home/...` prefix, the replacement
/// tarball (overriding a good and a corrupt train clip; bad itself for two clips), bad clips of every
/// kind in `val`, and `..` / absolute entries in `test`.
pub fn k400(root: &Path) -> Fixture {
    use Content::*;
    use Expect::*;
    let mut f = Fixture::new(root);
    let t0 = f.clip("train", "air drumming", true, Placed(B)); // good in train, replaced anyway
    let t1 = f.clip("train", "air drumming", true, Placed(A));
    let t2 = f.clip("train", "abseiling", true, Placed(B)); // corrupt in train, fixed by the replacement
    let t3 = f.clip("train", "abseiling", false, Placed(A)); // no row
    let t4 = f.clip("train", "zumba", true, Placed(A));
    let t5 = f.clip("train", "zumba", true, Placed(A)); // bad in the replacement, good in its part
    let t6 = f.clip("train", "zumba", true, Bad); // bad in the replacement, in no part
    f.clip("train", "zumba", true, Absent);
    let r0 = f.clip("train", "abseiling", false, Placed(B)); // only in the replacement, no row
                                                             // Padding without rows: the replacement is the largest train tarball, so that under a bandwidth cap
                                                             // it finishes downloading last and only the fetch's ordering can make its copies win.
    let padding: Vec<String> = (0..4).map(|_| f.clip("train", "abseiling", false, Placed(A))).collect();
    f.tar(
        "400/train/part_0.tar.gz",
        true,
        &[
            Entry::dir("./"),
            Entry::file(format!("./{t0}"), A),
            Entry::file(format!("./{t1}"), A),
            Entry::file(format!("./{t2}"), Random),
            Entry::file(format!("./{t3}"), A),
        ],
    );
    let deep = "home/kinetics/raid/k400/train_256/part_1";
    f.tar(
        "400/train/part_1.tar.gz",
        false,
        &[
            Entry::dir("home/"),
            Entry::dir(format!("{deep}/")),
            Entry::file(format!("{deep}/{t4}"), A),
            Entry::file(format!("{deep}/{t5}"), A),
        ],
    );
    let rep = "replacement_for_corrupted_k400";
    f.tar(
        "400/replacement_for_corrupted_k400.tgz",
        true,
        &[
            Entry::dir(format!("{rep}/")),
            Entry::file(format!("{rep}/{t0}"), B),
            Entry::file(format!("{rep}/{t2}"), B),
            Entry::file(format!("{rep}/{t5}"), Empty),
            Entry::file(format!("{rep}/{t6}"), Truncated),
            Entry::file(format!("{rep}/{r0}"), B),
        ]
        .into_iter()
        .chain(padding.iter().map(|p| Entry::file(format!("{rep}/{p}"), A)))
        .collect::<Vec<_>>(),
    );
    f.path_list("400", "k400", "train", &["400/train/part_0.tar.gz", "400/train/part_1.tar.gz"]);

    let v0 = f.clip("validate", "abseiling", true, Placed(A));
    let v1 = f.clip("validate", "abseiling", true, Bad); // zero bytes
    let v2 = f.clip("validate", "air drumming", true, Bad); // moov atom not found
    let v3 = f.clip("validate", "air drumming", true, Bad); // noise
    let v4 = f.clip("validate", "zumba", true, Bad); // decode errors
    let v5 = f.clip("validate", "zumba", false, Placed(A)); // no row
    f.clip("validate", "zumba", true, Absent);
    f.tar("400/val/part_0.tar.gz", true, &[Entry::file(format!("./{v0}"), A), Entry::file(format!("./{v1}"), Empty)]);
    f.tar(
        "400/val/part_1.tar.gz",
        true,
        &[
            Entry::file(format!("./{v2}"), Truncated),
            Entry::file(format!("./{v3}"), Random),
            Entry::file(format!("./{v4}"), Damaged),
            Entry::file(format!("./{v5}"), A),
        ],
    );
    f.path_list("400", "k400", "val", &["400/val/part_0.tar.gz", "400/val/part_1.tar.gz"]);

    let x0 = f.clip("test", "abseiling", true, Placed(A));
    let x1 = f.clip("test", "abseiling", true, Absent); // only behind `..`
    let x2 = f.clip("test", "abseiling", true, Absent); // only behind an absolute path
    f.tar(
        "400/test/part_0.tar.gz",
        true,
        &[Entry::file(x0.clone(), A), Entry::file(format!("../{x1}"), A), Entry::file(format!("/tmp/evil/{x2}"), A)],
    );
    f.path_list("400", "k400", "test", &["400/test/part_0.tar.gz"]);
    f.annotations("400", true);
    f
}

/// K600: one tarball per class named with spaces, parentheses and an apostrophe; one re-upload with a
/// class folder and macOS `._*` files; a path-list line for a tarball the mirror lacks.
pub fn k600(root: &Path) -> Fixture {
    use Content::*;
    use Expect::*;
    let mut f = Fixture::new(root);
    let a0 = f.clip("train", "abseiling", true, Placed(A));
    let a1 = f.clip("train", "abseiling", false, Placed(A));
    f.tar("600/train/abseiling.tar.gz", true, &[Entry::file(a0.clone(), A), Entry::file(a1, A)]);
    let football = "passing American football (in game)";
    let p0 = f.clip("train", football, true, Placed(A));
    let p1 = f.clip("train", football, true, Placed(B));
    f.tar(&format!("600/train/{football}.tar.gz"), true, &[Entry::file(p0, A), Entry::file(p1, B)]);
    let head = "massaging person's head";
    let m0 = f.clip("train", head, true, Placed(A));
    let m1 = f.clip("train", head, true, Placed(B));
    f.tar(
        &format!("600/train/{head}.tar.gz"),
        true,
        &[
            Entry::dir(format!("{head}/")),
            Entry::file(format!("{head}/{m0}"), A),
            Entry::apple_double(format!("{head}/._{m0}")),
            Entry::file(format!("{head}/{m1}"), B),
            Entry::apple_double(format!("__MACOSX/{head}/._{m1}")),
        ],
    );
    let train = [
        "600/train/abseiling.tar.gz".to_string(),
        format!("600/train/{football}.tar.gz"),
        format!("600/train/{head}.tar.gz"),
    ];
    f.path_list("600", "k600", "train", &train.iter().map(String::as_str).collect::<Vec<_>>());
    let knot = "tying knot (not on a tie)";
    let k0 = f.clip("validate", knot, true, Placed(A));
    f.tar(&format!("600/val/{knot}.tar.gz"), true, &[Entry::file(k0, A)]);
    f.clip("validate", "zumba", true, Absent); // its tarball is listed but missing
    f.path_list("600", "k600", "val", &[&format!("600/val/{knot}.tar.gz"), "600/val/zumba.tar.gz"]);
    f
}

/// The classes of the K700-2020 fixture, sorted: tarball `NNN` holds class `NNN - 1` of this list.
pub const K700_CLASSES: [&str; 3] = ["abseiling", "playing cards", "tying knot (not on a tie)"];

/// K700-2020: `k700_{split}_{NNN}.tar.gz` per class holding `<class>/<clip>.mp4`; a flat test tarball;
/// annotation CSVs including an unlabelled test split.
pub fn k700_2020(root: &Path) -> Fixture {
    use Content::*;
    use Expect::*;
    let mut f = Fixture::new(root);
    for (split, dir) in [("train", "train"), ("validate", "val")] {
        let mut rels = Vec::new();
        for (i, class) in K700_CLASSES.iter().enumerate() {
            let mut entries = vec![Entry::dir(format!("{class}/"))];
            let clips = if i == 2 { 2 } else { 1 };
            for _ in 0..clips {
                let name = f.clip(split, class, true, Placed(A));
                entries.push(Entry::file(format!("{class}/{name}"), A));
            }
            let rel = format!("700_2020/{dir}/k700_{dir}_{:03}.tar.gz", i + 1);
            f.tar(&rel, true, &entries);
            rels.push(rel);
        }
        f.path_list("700_2020", "k700_2020", dir, &rels.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let x0 = f.clip("test", "", true, Placed(A));
    let x1 = f.clip("test", "", false, Placed(B));
    f.clip("test", "", true, Absent);
    f.tar("700_2020/test/k700_test_001.tar.gz", true, &[Entry::file(x0, A), Entry::file(x1, B)]);
    f.path_list("700_2020", "k700_2020", "test", &["700_2020/test/k700_test_001.tar.gz"]);
    f.annotations("700_2020", false);
    f
}

/// A larger K400-shaped mirror of good clips only, for resume tests and benchmarks: `parts` flat gzip
/// parts per split, `clips_per_part` annotated clips each (alternating A and B); an empty replacement
/// tarball when `train` is among the splits, since the fetch asks for one.
pub fn k400_scaled(root: &Path, splits: &[&str], parts: usize, clips_per_part: usize) -> Fixture {
    let mut f = Fixture::new(root);
    if splits.contains(&"train") {
        f.tar("400/replacement_for_corrupted_k400.tgz", true, &[Entry::dir("replacement_for_corrupted_k400/")]);
    }
    for &split in splits {
        let dir = if split == "validate" { "val" } else { split };
        let mut rels = Vec::new();
        for p in 0..parts {
            let entries: Vec<Entry> = (0..clips_per_part)
                .map(|i| {
                    let content = if i % 2 == 0 { Content::A } else { Content::B };
                    let name = f.clip(split, "abseiling", true, Expect::Placed(content));
                    Entry::file(format!("./{name}"), content)
                })
                .collect();
            let rel = format!("400/{dir}/part_{p}.tar.gz");
            f.tar(&rel, true, &entries);
            rels.push(rel);
        }
        f.path_list("400", "k400", dir, &rels.iter().map(String::as_str).collect::<Vec<_>>());
    }
    f.annotations("400", true);
    f
}

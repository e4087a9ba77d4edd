//! What the mirror hosts and where: datasets, split folder names, path-list and annotation URLs, the config.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The mirror's own base URL; path lists name tarballs under it.
pub const DEFAULT_BASE_URL: &str = "https://s3.amazonaws.com/kinetics";

/// A dataset the mirror hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirrorDataset {
    K400,
    K600,
    K700_2020,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the mirror has no dataset {0:?}; use k400, k600 or k700-2020")]
pub struct UnknownDataset(pub String);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown split {0:?}; use train, validate or test")]
pub struct UnknownSplit(pub String);

impl FromStr for MirrorDataset {
    type Err = UnknownDataset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "k400" | "400" | "kinetics400" => Ok(MirrorDataset::K400),
            "k600" | "600" | "kinetics600" => Ok(MirrorDataset::K600),
            "k700-2020" | "k700_2020" | "700_2020" | "kinetics700_2020" => Ok(MirrorDataset::K700_2020),
            _ => Err(UnknownDataset(s.to_string())),
        }
    }
}

impl fmt::Display for MirrorDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MirrorDataset::K400 => "k400",
            MirrorDataset::K600 => "k600",
            MirrorDataset::K700_2020 => "k700-2020",
        })
    }
}

impl MirrorDataset {
    /// The dataset's folder under the base URL.
    pub fn dir(self) -> &'static str {
        match self {
            MirrorDataset::K400 => "400",
            MirrorDataset::K600 => "600",
            MirrorDataset::K700_2020 => "700_2020",
        }
    }

    /// The prefix of its path-list file names (`k400_train_path.txt`).
    pub(crate) fn list_prefix(self) -> &'static str {
        match self {
            MirrorDataset::K400 => "k400",
            MirrorDataset::K600 => "k600",
            MirrorDataset::K700_2020 => "k700_2020",
        }
    }
}

/// The mirror's name for a split: annotations say `validate`, mirror paths say `val`.
pub fn mirror_split(split: &str) -> Result<&'static str, UnknownSplit> {
    match split.trim().to_ascii_lowercase().as_str() {
        "train" => Ok("train"),
        "validate" | "val" | "validation" => Ok("val"),
        "test" => Ok("test"),
        _ => Err(UnknownSplit(split.to_string())),
    }
}

/// What `fetch` downloads and where it keeps its work.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub base_url: String,
    pub dataset: MirrorDataset,
    /// `train`, `validate`, `test` (`val` is accepted too).
    pub splits: Vec<String>,
    /// Tarballs downloaded and extracted at once; each holds about one tarball of disk.
    pub concurrency: usize,
    pub keep_tarballs: bool,
    /// Inside OUT: `.part` downloads, finished tarballs and the per-tarball clip lists that let a rerun
    /// skip tarballs with nothing left to take.
    pub work_dir: PathBuf,
    /// Inside OUT, on the same filesystem as the clips: extracted clips wait here while verified.
    pub tmp_dir: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// Clips verified at once (ffprobe + a full decode each).
    pub verify_concurrency: usize,
}

impl MirrorConfig {
    /// Every split from the default base URL, two tarballs at a time, one verification per core.
    pub fn new(dataset: MirrorDataset, work_dir: PathBuf, tmp_dir: PathBuf) -> Self {
        MirrorConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            dataset,
            splits: vec!["train".into(), "validate".into(), "test".into()],
            concurrency: 2,
            keep_tarballs: false,
            work_dir,
            tmp_dir,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            verify_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    pub(crate) fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// `{base}/{dir}/{split}/k{dataset}_{split}_path.txt`: one tarball URL a line.
pub fn path_list_url(base: &str, dataset: MirrorDataset, split: &str) -> Result<String, UnknownSplit> {
    let split = mirror_split(split)?;
    let base = base.trim_end_matches('/');
    Ok(format!("{base}/{}/{split}/{}_{split}_path.txt", dataset.dir(), dataset.list_prefix()))
}

/// The mirror's own annotation CSV for a split; the mirror publishes none for K600.
pub fn annotations_url(base: &str, dataset: MirrorDataset, split: &str) -> Result<Option<String>, UnknownSplit> {
    let split = mirror_split(split)?;
    let base = base.trim_end_matches('/');
    Ok(match dataset {
        MirrorDataset::K600 => None,
        _ => Some(format!("{base}/{}/annotations/{split}.csv", dataset.dir())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let table = [
            ("k400", Ok(MirrorDataset::K400)),
            ("K600", Ok(MirrorDataset::K600)),
            ("k700-2020", Ok(MirrorDataset::K700_2020)),
            ("700_2020", Ok(MirrorDataset::K700_2020)),
            ("k700", Err(UnknownDataset("k700".into()))),
        ];
        for (text, want) in table {
            assert_eq!(text.parse::<MirrorDataset>(), want, "{text}");
        }
        assert_eq!(MirrorDataset::K700_2020.to_string().parse(), Ok(MirrorDataset::K700_2020));
        assert_eq!(mirror_split("validate"), Ok("val"));
        assert_eq!(mirror_split("val"), Ok("val"));
        assert_eq!(mirror_split("holdout"), Err(UnknownSplit("holdout".into())));
    }

    #[test]
    fn list_and_annotation_urls() {
        let b = "https://s3.amazonaws.com/kinetics/";
        let table = [
            (MirrorDataset::K400, "train", "https://s3.amazonaws.com/kinetics/400/train/k400_train_path.txt"),
            (MirrorDataset::K600, "validate", "https://s3.amazonaws.com/kinetics/600/val/k600_val_path.txt"),
            (
                MirrorDataset::K700_2020,
                "test",
                "https://s3.amazonaws.com/kinetics/700_2020/test/k700_2020_test_path.txt",
            ),
        ];
        for (dataset, split, want) in table {
            assert_eq!(path_list_url(b, dataset, split).unwrap(), want);
        }
        assert_eq!(
            annotations_url("http://h/files", MirrorDataset::K400, "validate").unwrap().as_deref(),
            Some("http://h/files/400/annotations/val.csv")
        );
        assert_eq!(
            annotations_url(b, MirrorDataset::K700_2020, "train").unwrap().as_deref(),
            Some("https://s3.amazonaws.com/kinetics/700_2020/annotations/train.csv")
        );
        assert_eq!(annotations_url(b, MirrorDataset::K600, "train").unwrap(), None);
    }
}

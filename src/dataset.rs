//! DeepMind's Kinetics annotation archives: dataset names, a resumable download, safe extraction, a cache.
//!
//! `kinetics-dl download k700-2020` needs `train.csv validate.csv test.csv` before it can plan anything.
//! The archives are about 25 MB, so a dropped connection resumes with a Range request from the `.part`
//! file, and once extracted a marker file lets later runs start without touching the network.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// Where DeepMind publishes the archives; `--annotations-base-url` / `KINETICS_DL_ANNOTATIONS_URL`
/// override it (mirrors, offline tests).
pub const DEFAULT_BASE_URL: &str = "https://storage.googleapis.com/deepmind-media/Datasets";

/// Written into the extracted folder last: its presence means the folder is complete.
const MARKER: &str = ".complete";

/// A stalled connection must not hang the run; a healthy one delivers a chunk far more often than this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Archive stem (also the cache folder name) and the names users may type for it.
const DATASETS: &[(&str, &[&str])] = &[
    ("kinetics400", &["k400"]),
    ("kinetics600", &["k600"]),
    ("kinetics700", &["k700"]),
    ("kinetics700_2020", &["k700-2020", "k700_2020", "kinetics700-2020"]),
    ("kinetics700_2020_delta", &["k700-2020-delta", "k700_2020_delta", "kinetics700-2020-delta"]),
];

/// A dataset name that maps to no known archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dataset `{name}`: expected one of k400, k600, k700, k700-2020, k700-2020-delta (or kinetics400 ... kinetics700_2020_delta)")]
pub struct UnknownDataset {
    pub name: String,
}

/// The archive stem for a dataset name: `k700-2020` -> `kinetics700_2020` (file `kinetics700_2020.tar.gz`).
pub fn archive_stem(name: &str) -> Result<&'static str, UnknownDataset> {
    let wanted = name.trim().to_ascii_lowercase();
    DATASETS
        .iter()
        .find(|(stem, aliases)| *stem == wanted || aliases.contains(&wanted.as_str()))
        .map(|(stem, _)| *stem)
        .ok_or_else(|| UnknownDataset { name: name.to_owned() })
}

/// Fetches (or reuses) a dataset's annotation CSVs and returns the paths for `splits`, in order.
///
/// `val` means `validate`; an empty `splits` means whichever of train, validate and test exist. The
/// archive lands in `cache_dir/<stem>.tar.gz` (a file placed there by hand is used as is) and is
/// extracted flat into `cache_dir/<stem>/`.
pub async fn fetch_annotations(
    name: &str,
    base_url: &str,
    cache_dir: &Path,
    splits: &[String],
    client: &reqwest::Client,
) -> anyhow::Result<Vec<PathBuf>> {
    let stem = archive_stem(name)?;
    let dir = cache_dir.join(stem);
    if !dir.join(MARKER).is_file() {
        let archive = cache_dir.join(format!("{stem}.tar.gz"));
        if !archive.is_file() {
            let url = format!("{}/{stem}.tar.gz", base_url.trim_end_matches('/'));
            download(client, &url, &archive).await?;
        }
        let (from, to) = (archive.clone(), dir.clone());
        let extracted =
            tokio::task::spawn_blocking(move || extract(&from, &to)).await.context("extraction task panicked")?;
        if let Err(err) = extracted {
            // A broken archive would fail the same way forever: make the next run fetch a fresh one.
            let _ = fs::remove_file(&archive);
            return Err(err.context(format!(
                "cannot extract {} (deleted it; the next run downloads it again)",
                archive.display()
            )));
        }
    }
    select_splits(&dir, splits)
}

/// GET `url` into `dest` through the shared resumable downloader; the errors say how to get the file by
/// other means.
async fn download(client: &reqwest::Client, url: &str, dest: &Path) -> anyhow::Result<()> {
    use crate::resumable::{self, DownloadError, Downloaded, Limits, Quiet};
    let file_name = dest.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let cache_dir = dest.parent().unwrap_or(Path::new("."));
    let hint = format!(
        "check the network, point --annotations-base-url (or KINETICS_DL_ANNOTATIONS_URL) at a mirror, \
         or download {file_name} by hand into {}",
        cache_dir.display()
    );
    tracing::info!(url, "downloading annotations");
    // A few quick tries: a user waiting to start a run is better told soon what is wrong.
    let limits = Limits { max_fruitless: 2, idle_timeout: IDLE_TIMEOUT, ..Limits::default() };
    // The run has not started: a Ctrl-C here ends the process, so nothing needs to stop the download.
    let (_keep, mut never) = tokio::sync::watch::channel(false);
    match resumable::download(client, url, dest, limits, &Quiet, &mut never).await {
        Ok(Downloaded::Complete { .. }) => Ok(()),
        Ok(Downloaded::Stopped) => bail!("download of {url} was stopped; run again to resume"),
        Err(DownloadError::Refused(why)) => bail!("cannot download {url}: {why}; {hint}"),
        Err(DownloadError::GaveUp(why)) => {
            bail!("download of {url} did not finish: {why}; run again to resume, or {hint}")
        }
        Err(DownloadError::Local(e)) => Err(e),
    }
}

/// Extracts the CSVs of `archive` flat into `dir` (through a temporary sibling, renamed at the end).
///
/// Any folder prefix is accepted (DeepMind's archives hold one folder named like the archive, mirrors
/// differ), `._*` macOS companions and non-CSV files are skipped, and entries that could escape the
/// folder (`..`, absolute paths) fail the whole archive.
fn extract(archive: &Path, dir: &Path) -> anyhow::Result<()> {
    let stem = dir.file_name().and_then(|n| n.to_str()).unwrap_or("annotations");
    let tmp = dir.with_file_name(format!(".{stem}.extracting"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    file.rewind()?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut tar = tar::Archive::new(reader);
    let mut names = BTreeSet::new();
    for entry in tar.entries().context("not a tar archive")? {
        let mut entry = entry.context("corrupt tar archive")?;
        let path = entry.path().context("corrupt tar entry name")?.into_owned();
        let unsafe_path =
            path.components().any(|c| matches!(c, Component::ParentDir | Component::RootDir | Component::Prefix(_)));
        if unsafe_path {
            bail!("refusing unsafe archive entry `{}`", path.display());
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_csv = name.len() > 4 && name[name.len() - 4..].eq_ignore_ascii_case(".csv");
        if !entry.header().entry_type().is_file() || name.starts_with("._") || !is_csv {
            continue;
        }
        if !names.insert(name.to_owned()) {
            bail!("the archive holds two files named {name}");
        }
        let target = tmp.join(name);
        let mut out = File::create(&target).with_context(|| format!("cannot create {}", target.display()))?;
        io::copy(&mut entry, &mut out).with_context(|| format!("cannot extract {}", path.display()))?;
    }
    if names.is_empty() {
        bail!("the archive holds no CSV files");
    }
    let listing: Vec<&str> = names.iter().map(String::as_str).collect();
    fs::write(tmp.join(MARKER), listing.join("\n") + "\n")?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove stale {}", dir.display()))?;
    }
    fs::rename(&tmp, dir).with_context(|| format!("cannot rename {} to {}", tmp.display(), dir.display()))
}

/// The CSV paths for the requested splits, in order, without duplicates.
fn select_splits(dir: &Path, splits: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let csv = |split: &str| dir.join(format!("{split}.csv"));
    if splits.is_empty() {
        let found: Vec<PathBuf> = ["train", "validate", "test"].map(csv).into_iter().filter(|p| p.is_file()).collect();
        if found.is_empty() {
            bail!("{} holds no train, validate or test CSV; delete it to fetch the archive again", dir.display());
        }
        return Ok(found);
    }
    let mut paths = Vec::new();
    for split in splits {
        let split = split.trim();
        // DeepMind says `validate`, the 2017 release and the CVDF mirror say `val`.
        let candidates: &[&str] = match split {
            "val" | "validate" | "validation" => &["validate", "val"],
            other => &[other],
        };
        let Some(path) = candidates.iter().map(|s| csv(s)).find(|p| p.is_file()) else {
            bail!("split `{split}` is not in {}: it has {}", dir.display(), available(dir).join(", "));
        };
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    Ok(paths)
}

fn available(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".csv").map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests;

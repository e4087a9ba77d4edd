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
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// How the test server answers.
    #[derive(Clone, Copy)]
    enum Mode {
        /// Honours `Range: bytes=N-` with 206 (416 past the end).
        Ranges,
        /// Always 200 with the whole body, like servers without range support.
        IgnoreRange,
        /// Answers a Range request with 206 but from byte 0 (a broken proxy).
        WrongRange,
        /// Announces the full length, sends this many bytes, hangs up.
        Truncate(usize),
        Status(u16),
    }

    /// Serves `body` at any path; returns the base URL and the log of `Range` headers ("" = none).
    async fn serve(body: Vec<u8>, mode: Mode) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/Datasets", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (body, seen) = (Arc::new(body), log.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (body, seen) = (body.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let from: Option<usize> = head
                        .lines()
                        .find_map(|l| l.strip_prefix("range: bytes="))
                        .and_then(|r| r.trim().trim_end_matches('-').parse().ok());
                    seen.lock().unwrap().push(from.map(|f| format!("bytes={f}-")).unwrap_or_default());
                    let len = body.len();
                    let (status, extra, payload): (u16, String, &[u8]) = match (mode, from) {
                        (Mode::Status(code), _) => (code, String::new(), b"nope"),
                        (Mode::Ranges, Some(f)) if f >= len => (416, format!("content-range: bytes */{len}\r\n"), b""),
                        (Mode::Ranges, Some(f)) => {
                            (206, format!("content-range: bytes {f}-{}/{len}\r\n", len - 1), &body[f..])
                        }
                        (Mode::WrongRange, Some(_)) => {
                            (206, format!("content-range: bytes 0-{}/{len}\r\n", len - 1), &body[..])
                        }
                        (Mode::Truncate(n), _) => (200, String::new(), &body[..n]),
                        _ => (200, String::new(), &body[..]),
                    };
                    let announced = if let Mode::Truncate(_) = mode { len } else { payload.len() };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {announced}\r\naccept-ranges: bytes\r\n{extra}connection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.write_all(payload).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (base, log)
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            // Written raw, so that the test can build the hostile `..` names tar::Builder refuses.
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap()
    }

    /// A K400-like archive: CSVs in a top folder plus the junk real archives carry.
    fn kinetics_archive(top: &str) -> (Vec<u8>, String) {
        let train: String =
            (0..400).map(|i| format!("abseiling,vid{i:07x},{},{},train\n", i * 3, i * 3 + 10)).collect();
        let train = format!("label,youtube_id,time_start,time_end,split\n{train}");
        let entries = [
            (format!("{top}/train.csv"), train.as_bytes().to_vec()),
            (format!("{top}/validate.csv"), b"label,youtube_id,time_start,time_end,split\n".to_vec()),
            (format!("{top}/test.csv"), b"youtube_id,time_start,time_end,split\n".to_vec()),
            (format!("{top}/._train.csv"), b"\0\x05\x16\x07mac junk".to_vec()),
            (format!("{top}/train.json"), b"{}".to_vec()),
        ];
        let refs: Vec<(&str, &[u8])> = entries.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
        (gzip(&tar_of(&refs)), train)
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    fn splits(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dataset_names_map_to_archives() {
        let cases = [
            ("k400", "kinetics400"),
            ("kinetics400", "kinetics400"),
            ("K600", "kinetics600"),
            ("k700", "kinetics700"),
            ("k700-2020", "kinetics700_2020"),
            ("kinetics700_2020", "kinetics700_2020"),
            ("k700-2020-delta", "kinetics700_2020_delta"),
        ];
        for (name, stem) in cases {
            assert_eq!(archive_stem(name), Ok(stem), "{name}");
        }
        let err = archive_stem("k800").unwrap_err().to_string();
        assert!(err.contains("k800") && err.contains("k700-2020"), "{err}");
    }

    #[tokio::test]
    async fn downloads_extracts_then_serves_from_the_cache_without_network() {
        let (archive, train) = kinetics_archive("kinetics400");
        let (base, log) = serve(archive, Mode::Ranges).await;
        let cache = tempfile::tempdir().unwrap();
        let client = reqwest::Client::new();

        let paths = fetch_annotations("k400", &base, cache.path(), &[], &client).await.unwrap();
        assert_eq!(names(&paths), ["train.csv", "validate.csv", "test.csv"]);
        assert_eq!(fs::read_to_string(&paths[0]).unwrap(), train);
        let dir = cache.path().join("kinetics400");
        assert!(!dir.join("._train.csv").exists() && !dir.join("train.json").exists());
        assert_eq!(log.lock().unwrap().as_slice(), [""]);

        // The alias shares the cache, and the base URL is not even reachable any more.
        let dead = "http://127.0.0.1:1/Datasets";
        let again =
            fetch_annotations("kinetics400", dead, cache.path(), &splits(&["val", "train"]), &client).await.unwrap();
        assert_eq!(names(&again), ["validate.csv", "train.csv"]);
        assert_eq!(log.lock().unwrap().len(), 1);

        let err = fetch_annotations("k400", dead, cache.path(), &splits(&["holdout"]), &client).await;
        let err = format!("{:#}", err.unwrap_err());
        assert!(err.contains("holdout") && err.contains("test, train, validate"), "{err}");
    }

    #[tokio::test]
    async fn resumes_a_partial_download_with_a_range_request() {
        let (archive, train) = kinetics_archive("kinetics700_2020");
        assert!(archive.len() > 1000, "the archive must be big enough to split");
        let cache = tempfile::tempdir().unwrap();
        fs::write(cache.path().join("kinetics700_2020.tar.gz.part"), &archive[..700]).unwrap();
        let (base, log) = serve(archive, Mode::Ranges).await;

        let paths = fetch_annotations("k700-2020", &base, cache.path(), &splits(&["train"]), &reqwest::Client::new())
            .await
            .unwrap();
        assert_eq!(fs::read_to_string(&paths[0]).unwrap(), train);
        assert_eq!(log.lock().unwrap().as_slice(), ["bytes=700-"]);
        assert!(!cache.path().join("kinetics700_2020.tar.gz.part").exists());
    }

    #[tokio::test]
    async fn an_interrupted_download_fails_clearly_and_the_next_run_resumes() {
        let (archive, _) = kinetics_archive("kinetics600");
        let cache = tempfile::tempdir().unwrap();
        let client = reqwest::Client::new();
        let (cut, _) = serve(archive.clone(), Mode::Truncate(500)).await;
        let err = fetch_annotations("k600", &cut, cache.path(), &[], &client).await.unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("kinetics600.tar.gz") && err.contains("run again to resume"), "{err}");
        let part = cache.path().join("kinetics600.tar.gz.part");
        assert_eq!(fs::metadata(&part).unwrap().len(), 500);

        let (base, log) = serve(archive, Mode::Ranges).await;
        let paths = fetch_annotations("k600", &base, cache.path(), &[], &client).await.unwrap();
        assert_eq!(paths.len(), 3);
        assert_eq!(log.lock().unwrap().as_slice(), ["bytes=500-"]);
    }

    #[tokio::test]
    async fn a_server_without_ranges_or_a_complete_part_still_works() {
        let (archive, train) = kinetics_archive("kinetics700");
        let client = reqwest::Client::new();

        // Garbage in `.part` must be replaced, not appended to, when the server answers 200.
        let cache = tempfile::tempdir().unwrap();
        fs::write(cache.path().join("kinetics700.tar.gz.part"), b"garbage").unwrap();
        let (base, log) = serve(archive.clone(), Mode::IgnoreRange).await;
        let paths = fetch_annotations("k700", &base, cache.path(), &splits(&["train"]), &client).await.unwrap();
        assert_eq!(fs::read_to_string(&paths[0]).unwrap(), train);
        assert_eq!(log.lock().unwrap().as_slice(), ["bytes=7-"]);

        // A 206 for the wrong range must not be appended either: the download starts over.
        let cache = tempfile::tempdir().unwrap();
        fs::write(cache.path().join("kinetics700.tar.gz.part"), &archive[..300]).unwrap();
        let (base, log) = serve(archive.clone(), Mode::WrongRange).await;
        let paths = fetch_annotations("k700", &base, cache.path(), &[], &client).await.unwrap();
        assert_eq!(fs::read_to_string(&paths[0]).unwrap(), train);
        assert_eq!(log.lock().unwrap().as_slice(), ["bytes=300-", ""]);

        // A run that died between the last byte and the rename: the server says 416, nothing to fetch.
        let cache = tempfile::tempdir().unwrap();
        fs::write(cache.path().join("kinetics700.tar.gz.part"), &archive).unwrap();
        let (base, log) = serve(archive.clone(), Mode::Ranges).await;
        let paths = fetch_annotations("k700", &base, cache.path(), &[], &client).await.unwrap();
        assert_eq!(paths.len(), 3);
        assert_eq!(log.lock().unwrap().as_slice(), [format!("bytes={}-", archive.len())]);
    }

    #[tokio::test]
    async fn http_errors_name_the_url_and_the_way_out() {
        let (base, _) = serve(Vec::new(), Mode::Status(404)).await;
        let cache = tempfile::tempdir().unwrap();
        let err = fetch_annotations("k400", &base, cache.path(), &[], &reqwest::Client::new()).await;
        let err = format!("{:#}", err.unwrap_err());
        assert!(err.contains(&format!("{base}/kinetics400.tar.gz")), "{err}");
        assert!(err.contains("HTTP 404") && err.contains("--annotations-base-url"), "{err}");
        assert!(!cache.path().join("kinetics400").exists());
    }

    #[tokio::test]
    async fn unsafe_entries_are_refused_and_the_archive_discarded() {
        let hostile = gzip(&tar_of(&[("kinetics400/train.csv", b"a,b\n"), ("../evil.csv", b"x\n")]));
        let (base, _) = serve(hostile, Mode::Ranges).await;
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        let err = fetch_annotations("k400", &base, &cache, &[], &reqwest::Client::new()).await;
        let err = format!("{:#}", err.unwrap_err());
        assert!(err.contains("unsafe archive entry `../evil.csv`"), "{err}");
        assert!(!root.path().join("evil.csv").exists());
        assert!(!cache.join("kinetics400").join(MARKER).exists());
        assert!(!cache.join("kinetics400.tar.gz").exists());
    }

    #[tokio::test]
    async fn an_uncompressed_tar_with_an_odd_prefix_placed_by_hand_is_used_offline() {
        let cache = tempfile::tempdir().unwrap();
        let plain = tar_of(&[("home/someone/k/train.csv", b"label\n"), ("home/someone/k/val.csv", b"v\n")]);
        fs::write(cache.path().join("kinetics400.tar.gz"), plain).unwrap();
        let dead = "http://127.0.0.1:1/Datasets";
        let paths =
            fetch_annotations("k400", dead, cache.path(), &splits(&["val"]), &reqwest::Client::new()).await.unwrap();
        assert_eq!(names(&paths), ["val.csv"]);
        assert_eq!(fs::read_to_string(&paths[0]).unwrap(), "v\n");
    }
}

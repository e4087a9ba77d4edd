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
    let train: String = (0..400).map(|i| format!("abseiling,vid{i:07x},{},{},train\n", i * 3, i * 3 + 10)).collect();
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

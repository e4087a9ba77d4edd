//! The path lists and the tarballs they name: URLs moved onto the configured base and made safe, local
//! names, and K400's replacement tarball put first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::source::{mirror_split, path_list_url, MirrorConfig, MirrorDataset};

/// K400's extra tarball that replaces about 1,392 broken train clips.
const K400_REPLACEMENT: &str = "replacement_for_corrupted_k400.tgz";

/// One tarball to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Tarball {
    /// `{dir}/{split}/{file name}`, unique within a dataset; used in events and for local paths.
    pub name: String,
    pub url: String,
    /// The mirror split (`train`, `val`, `test`).
    pub split: &'static str,
    /// K400's replacement tarball: its clips win over the train parts'.
    pub replacement: bool,
}

impl Tarball {
    fn from_list_line(line: &str, base: &str, dataset: MirrorDataset, split: &'static str) -> Tarball {
        let url = rebase_url(line, base);
        let last = url.rsplit('/').next().unwrap_or_default();
        let file = safe_file_name(&percent_decode(last));
        Tarball { name: format!("{}/{split}/{file}", dataset.dir()), url, split, replacement: false }
    }

    /// Where the finished download lives under the work dir.
    pub fn local_path(&self, work_dir: &Path) -> PathBuf {
        work_dir.join(&self.name)
    }
}

/// Moves a path-list URL from the real mirror onto `base` (so a local copy can stand in for it) and
/// percent-encodes what K600's per-class names need (spaces, parentheses, apostrophes).
pub fn rebase_url(line: &str, base: &str) -> String {
    let line = line.trim();
    let base = base.trim_end_matches('/');
    let rest = ["https://s3.amazonaws.com/kinetics", "http://s3.amazonaws.com/kinetics"]
        .iter()
        .find_map(|default| line.strip_prefix(default).filter(|r| r.starts_with('/')));
    let url = match rest {
        Some(rest) => format!("{base}{rest}"),
        None if !line.contains("://") => format!("{base}/{}", line.trim_start_matches('/')),
        None => line.to_string(),
    };
    match url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j)) {
        Some(path_start) => format!("{}{}", &url[..path_start], encode_path(&url[path_start..])),
        None => url,
    }
}

/// Encodes every byte of a URL path except unreserved characters, `/` and existing `%XX` escapes.
fn encode_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    for (i, &b) in bytes.iter().enumerate() {
        let escape = b == b'%' && bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') || escape {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A tarball's file name as a single plain path component, whatever the URL held.
fn safe_file_name(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if matches!(c, '/' | '\\' | '\0') { '_' } else { c }).collect();
    match cleaned.as_str() {
        "" | "." | ".." => "tarball".to_string(),
        _ => cleaned,
    }
}

/// Reads the path lists of every configured split; K400's replacement tarball comes first when `train`
/// is wanted, so that its clips are the ones placed.
pub async fn list_tarballs(cfg: &MirrorConfig, client: &reqwest::Client) -> anyhow::Result<Vec<Tarball>> {
    let mut tarballs: Vec<Tarball> = Vec::new();
    let mut splits = Vec::new();
    for split in &cfg.splits {
        let split = mirror_split(split)?;
        if !splits.contains(&split) {
            splits.push(split);
        }
    }
    if cfg.dataset == MirrorDataset::K400 && splits.contains(&"train") {
        tarballs.push(Tarball {
            name: format!("400/{K400_REPLACEMENT}"),
            url: format!("{}/400/{K400_REPLACEMENT}", cfg.base()),
            split: "train",
            replacement: true,
        });
    }
    for split in splits {
        let url = path_list_url(cfg.base(), cfg.dataset, split)?;
        let text = get_text(client, &url).await.with_context(|| format!("failed to read the path list {url}"))?;
        let before = tarballs.len();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let tarball = Tarball::from_list_line(line, cfg.base(), cfg.dataset, split);
            if !tarballs.iter().any(|t| t.url == tarball.url || t.name == tarball.name) {
                tarballs.push(tarball);
            }
        }
        tracing::debug!(%url, tarballs = tarballs.len() - before, "read mirror path list");
    }
    Ok(tarballs)
}

/// A small text document, with a few tries against transient failures.
async fn get_text(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    const TRIES: u32 = 3;
    let mut last = None;
    for attempt in 1..=TRIES {
        match client.get(url).send().await.and_then(|r| r.error_for_status()) {
            Ok(resp) => match resp.text().await {
                Ok(text) => return Ok(text),
                Err(e) => last = Some(e),
            },
            Err(e) if e.status().is_some_and(|s| s.is_client_error()) => return Err(e.into()),
            Err(e) => last = Some(e),
        }
        if attempt < TRIES {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    Err(last.map(anyhow::Error::from).unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::DEFAULT_BASE_URL;

    #[test]
    fn list_lines_are_rebased_and_encoded() {
        let local = "http://127.0.0.1:9/files";
        let table = [
            (
                "https://s3.amazonaws.com/kinetics/400/train/part_0.tar.gz",
                DEFAULT_BASE_URL,
                "https://s3.amazonaws.com/kinetics/400/train/part_0.tar.gz",
            ),
            (
                "https://s3.amazonaws.com/kinetics/400/train/part_0.tar.gz",
                local,
                "http://127.0.0.1:9/files/400/train/part_0.tar.gz",
            ),
            (
                "https://s3.amazonaws.com/kinetics/600/train/passing American football (in game).tar.gz\r",
                local,
                "http://127.0.0.1:9/files/600/train/passing%20American%20football%20%28in%20game%29.tar.gz",
            ),
            (
                "https://s3.amazonaws.com/kinetics/600/train/massaging%20person's%20head.tar.gz",
                local,
                "http://127.0.0.1:9/files/600/train/massaging%20person%27s%20head.tar.gz",
            ),
            ("https://elsewhere.example/k/a b.tgz", local, "https://elsewhere.example/k/a%20b.tgz"),
            ("https://s3.amazonaws.com/kineticsX/a.tgz", local, "https://s3.amazonaws.com/kineticsX/a.tgz"),
            ("400/val/part_1.tar.gz", local, "http://127.0.0.1:9/files/400/val/part_1.tar.gz"),
        ];
        for (line, base, want) in table {
            assert_eq!(rebase_url(line, base), want, "{line}");
        }
    }

    #[test]
    fn tarball_names_are_decoded_single_components() {
        let t = Tarball::from_list_line(
            "https://s3.amazonaws.com/kinetics/600/train/tying%20knot%20(not%20on%20a%20tie).tar.gz",
            "http://x/files",
            MirrorDataset::K600,
            "train",
        );
        assert_eq!(t.name, "600/train/tying knot (not on a tie).tar.gz");
        assert_eq!(t.url, "http://x/files/600/train/tying%20knot%20%28not%20on%20a%20tie%29.tar.gz");
        let odd = Tarball::from_list_line("https://x/a/..", "http://x", MirrorDataset::K400, "val");
        assert_eq!(odd.name, "400/val/tarball");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(safe_file_name(&percent_decode("a%2Fb")), "a_b");
    }
}

//! Two downloads of the same rows from the same source with the same settings give byte-identical clips,
//! and `kinetics-dl diff` says so; a different setting gives different bytes, and `diff` says that too.

use kinetics_testsrc::{spawn, Config};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kinetics-dl");

fn download(out: &Path, annotations: &Path, template: &str, jobs: &str, extra: &[&str]) {
    let status = Command::new(BIN)
        .args(["download", "--quiet", "-j", jobs, "--retry-delay", "0s", "--url-template", template])
        .arg("--annotations")
        .arg(annotations)
        .arg("--out")
        .arg(out)
        .args(extra)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "download into {}", out.display());
}

fn sha_of_clips(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut clips = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() == ".kinetics-dl" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "mp4") {
                clips.push((p.strip_prefix(out).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    clips.sort();
    clips
}

#[test]
fn same_source_and_settings_give_byte_identical_clips() {
    let server = spawn(Config::for_tests().with_duration(40.0), "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ann = dir.path().join("rows.csv");
    std::fs::write(
        &ann,
        "label,youtube_id,time_start,time_end,split\n\
         \"air drumming\",--nQbRBEz2s,3,13,validate\n\
         testifying,---QUuC4vJs,17,27,validate\n\
         abseiling,0wR5jVB-WPk,25,35,validate\n",
    )
    .unwrap();
    let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(|n| dir.path().join(n));
    // The default path: the watch page and the default format choice (the DASH pair), and the default trim
    // (smart); then the exact cut, which encodes every frame.
    let template = server.watch_url_template();
    // Different parallelism must not matter; a different setting must.
    download(&a, &ann, &template, "3", &[]);
    download(&b, &ann, &template, "1", &[]);
    download(&c, &ann, &template, "2", &["--short-side", "90"]);
    download(&d, &ann, &template, "3", &["--trim", "exact"]);
    download(&e, &ann, &template, "1", &["--trim", "exact"]);

    let [ca, cb, cc, cd, ce] = [&a, &b, &c, &d, &e].map(|o| sha_of_clips(o));
    assert_eq!([ca.len(), cb.len(), cc.len(), cd.len(), ce.len()], [3; 5], "every run made every clip");
    for (what, x, y) in [("the default trim", &ca, &cb), ("--trim exact", &cd, &ce)] {
        for ((px, bx), (py, by)) in x.iter().zip(y) {
            assert_eq!(px, py);
            assert!(bx == by, "{what}: {px} differs between two identical runs ({} vs {} bytes)", bx.len(), by.len());
        }
    }
    for (what, other) in [("--short-side 90", &cc), ("--trim exact", &cd)] {
        for ((pa, ba), (po, bo)) in ca.iter().zip(other) {
            assert_eq!(pa, po);
            assert!(ba != bo, "{pa}: {what} produced the same bytes as the default");
        }
    }

    let diff = |x: &Path, y: &Path| Command::new(BIN).arg("diff").arg(x).arg(y).arg("--json").output().unwrap();
    let same = diff(&a, &b);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    let differ = diff(&a, &c);
    assert_eq!(differ.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&differ.stdout).unwrap();
    let text = json.to_string();
    assert!(text.contains("---QUuC4vJs"), "the diff names the clips whose bytes differ: {text}");
}

//! `report`, `export`, `manifest` and `verify` on the output of a real download (the watch page, the
//! default format choice), not on a journal written by hand; then `verify` finds a damaged clip and the
//! next `download` repairs it, fetching nothing for the clips that were fine.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use kinetics_testsrc::Behaviour;

/// sha256 by coreutils, independent of the code under test.
fn sha256sum(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().expect("sha256sum runs");
    String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

fn out_args(command: &str, out: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args = os([command, "--out"]);
    args.push(out.into());
    args.extend(extra.iter().map(std::ffi::OsString::from));
    args
}

#[test]
fn report_export_manifest_and_verify_work_on_a_real_download_and_a_rerun_repairs_what_verify_found() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = real_rows(90, 3);
    rows.push(Row::new("gone", "after404aaa", 5.0, 15.0));
    let server = server(config().with_behaviour("after404aaa", Behaviour::Status(404)));
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let out = tmp.path().join("out");
    let download = download_args(&server, &out, &[&csv]);
    run(&download).expect_code(0);
    let done = &rows[..3];
    for row in done {
        assert_clip(&out, row);
    }

    // report: the numbers of this run, and the page.
    let report = run(&out_args("report", &out, &["--json"]));
    report.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&report.stdout).expect("report --json is JSON");
    let totals = &json["totals"];
    assert_eq!(
        (totals["total"].as_u64(), totals["done"].as_u64(), totals["failed"].as_u64(), totals["pending"].as_u64()),
        (Some(4), Some(3), Some(1), Some(0)),
        "{totals}"
    );
    assert!(json["failures"].to_string().contains("http_404"), "{}", json["failures"]);
    assert_eq!(json["download"]["summary"]["n"].as_u64(), Some(3), "{}", json["download"]);
    let page = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(page.contains("http_404"), "the page names the failure");

    // export: a list of exactly the done clips, and WebDataset shards holding each clip's bytes.
    run(&out_args("export", &out, &["--format", "csv"])).expect_code(0);
    let clips = read_csv(&out.join("clips.csv"));
    let mut exported: Vec<&str> =
        clips.rows.iter().filter(|r| r["state"] == "done").map(|r| r["rel_path"].as_str()).collect();
    exported.sort();
    let mut want: Vec<String> = done.iter().map(Row::rel_path).collect();
    want.sort();
    assert_eq!(exported, want);
    for line in clips.rows.iter().filter(|r| r["state"] == "done") {
        assert_eq!(line["format_id"], "133+140", "{line:?}");
        let size = std::fs::metadata(out.join(&line["rel_path"])).unwrap().len();
        assert_eq!(line["size_bytes"], size.to_string(), "{line:?}");
    }
    run(&out_args("export", &out, &["--format", "webdataset"])).expect_code(0);
    let shards: Vec<_> =
        all_files(&out.join("webdataset")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "tar")).collect();
    let mut members = Vec::new();
    for shard in &shards {
        let o = Command::new("tar").arg("-tf").arg(shard).output().expect("tar runs");
        members.extend(String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned));
    }
    assert_eq!(members.iter().filter(|m| m.ends_with(".mp4")).count(), 3, "{members:?}");
    assert_eq!(members.iter().filter(|m| m.ends_with(".json")).count(), 3, "{members:?}");

    // manifest: every row's outcome, and the sha256 of each clip as coreutils computes it.
    run(&out_args("manifest", &out, &[])).expect_code(0);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let entries = manifest["clips"].as_array().expect("manifest clips");
    assert_eq!(entries.len(), 4);
    for row in done {
        let entry = entries.iter().find(|e| e["path"] == row.rel_path()).expect("the clip is in the manifest");
        assert_eq!(entry["outcome"], "done");
        assert_eq!(entry["sha256"], sha256sum(&out.join(row.rel_path())), "{}", row.id);
    }
    let gone = entries.iter().find(|e| e["youtube_id"] == "after404aaa").unwrap();
    assert_eq!(gone["outcome"], "failed", "{gone}");

    // verify finds the clip damaged on disk and sends it back to pending; the others stay done.
    let damaged = out.join(done[1].rel_path());
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let verified = run(&out_args("verify", &out, &[]));
    assert!(verified.stdout.contains("1 broken") || verified.stderr.contains("1 broken"), "{verified:?}");
    let states: Vec<(String, String)> = journal_clips(&out).into_iter().map(|c| (c.youtube_id, c.state)).collect();
    assert!(states.contains(&(done[1].id.clone(), "pending".to_owned())), "{states:?}");
    assert!(states.contains(&(done[0].id.clone(), "done".to_owned())), "{states:?}");

    // The next download repairs it, and fetches nothing for the good clips (nor the permanent failure).
    let before = requests_by_id(&server);
    run(&download).expect_code(0);
    server.wait_idle(Duration::from_secs(30)).expect("the server goes idle");
    let after = requests_by_id(&server);
    for row in done {
        assert_clip(&out, row);
    }
    assert!(after[&done[1].id] > before[&done[1].id], "the damaged clip was fetched again");
    for id in [&done[0].id, &done[2].id, &rows[3].id] {
        assert_eq!(after.get(id), before.get(id), "{id} was fetched again");
    }
}

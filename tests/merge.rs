//! `kinetics-dl merge` through the real binary: three shard folders made by real runs (real yt-dlp and
//! ffmpeg, the local test source) join into one folder equal to a single-machine run of the same rows.

mod common;

use std::path::Path;

use common::*;

/// Six real rows and a second clip of the first video.
fn rows() -> Vec<Row> {
    real_rows_with_a_second_clip(6)
}

#[test]
fn three_shards_merge_into_the_single_machine_folder_and_a_corrupt_clip_is_caught() {
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = rows();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let single = tmp.path().join("single");
    run(&direct_download_args(&server, &single, &[&csv])).expect_code(0);
    let shards: Vec<_> = (0..3).map(|i| tmp.path().join(format!("shard{i}"))).collect();
    for (i, out) in shards.iter().enumerate() {
        let mut args = direct_download_args(&server, out, &[&csv]);
        args.extend(os(["--shard", &format!("{i}/3")]));
        run(&args).expect_code(0);
    }
    let sources: Vec<&Path> = shards.iter().map(|p| p.as_path()).collect();

    // A merge killed midway left its temp folder: the next one clears it.
    let merged = tmp.path().join("merged");
    let stale = tmp.path().join(".merged.merging");
    std::fs::create_dir_all(stale.join("validate")).unwrap();
    std::fs::write(stale.join("validate/half.mp4"), b"half").unwrap();
    merge(&merged, &sources, &[]).expect_code(0);
    assert!(!stale.exists() && !merged.join("validate/half.mp4").exists(), "the stale temp folder was cleared");
    let d = diff(&merged, &single);
    assert_eq!(d.code, Some(0), "merged vs single: {}\n{}", d.stdout, d.stderr);
    assert_eq!(clip_files(&merged).len(), rows.len());
    for row in &rows {
        assert_clip(&merged, row);
    }
    let status = status_json(&merged);
    assert_eq!(status["done"], rows.len() as u64, "{status}");
    assert_eq!(status["shard"], serde_json::Value::Null, "three shards make the whole");
    assert_eq!(read_csv(&merged.join("stats.csv")).rows.len(), rows.len());
    let mut export = os(["export", "--format", "csv", "--out"]);
    export.push(merged.as_path().into());
    run(&export).expect_code(0);
    let mut report = os(["report", "--out"]);
    report.push(merged.as_path().into());
    run(&report).expect_code(0);
    let mut manifest = os(["manifest", "--out"]);
    manifest.push(merged.as_path().into());
    run(&manifest).expect_code(0);
    // A later download on the merged folder fetches nothing.
    let before = requests_by_id(&server);
    run(&direct_download_args(&server, &merged, &[&csv])).expect_code(0);
    assert_eq!(requests_by_id(&server), before, "the download on the merged folder fetched something");
    assert_eq!(done_count(&merged), rows.len());
    // An existing folder is never merged into.
    let o = merge(&merged, &sources, &[]);
    o.expect_code(2);
    assert!(o.stderr.contains("is not empty"), "{}", o.stderr);

    // Record the sources' hashes, then flip one byte of a clip in shard 1 (a new file: the merged folder's
    // hard link keeps the good bytes): same size, other sha256.
    let bad = shards.iter().find(|s| !clip_files(s).is_empty()).unwrap();
    let mut verify = os(["verify", "--out"]);
    verify.push(bad.as_path().into());
    run(&verify).expect_code(0);
    let victim = clip_files(bad)[0].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    let spare = victim.with_extension("tmp");
    std::fs::write(&spare, &bytes).unwrap();
    std::fs::rename(&spare, &victim).unwrap();
    let second = tmp.path().join("second");
    let o = merge(&second, &sources, &["--mode", "copy"]);
    o.expect_code(0);
    assert!(o.stderr.contains("sha256") && o.stderr.contains("1 broken"), "{}", o.stderr);
    let name = victim.file_name().unwrap();
    assert!(!clip_files(&second).iter().any(|p| p.file_name() == Some(name)), "the corrupt clip was not placed");
    let pending: Vec<_> = journal_clips(&second).into_iter().filter(|c| c.state == "pending").collect();
    assert_eq!(pending.len(), 1, "the corrupt clip is pending again: {pending:?}");
    assert_eq!(diff(&second, &single).code, Some(1), "the merged folder lacks one clip");
    assert!(!tmp.path().join(".second.merging").exists(), "no temp folder is left");

    // The same clips done in two sources: the copy whose file verifies wins even from the later source.
    let both = tmp.path().join("both");
    let o = merge(&both, &[bad.as_path(), single.as_path()], &[]);
    o.expect_code(0);
    assert!(o.stderr.contains("sha256") && o.stderr.contains("0 broken"), "{}", o.stderr);
    let d = diff(&both, &single);
    assert_eq!(d.code, Some(0), "the verifying copy was kept: {}", d.stdout);

    // --mode move: the verified clips leave the sources once the merged folder is in place; the corrupt one
    // stays where it was.
    let third = tmp.path().join("third");
    merge(&third, &sources, &["--mode", "move"]).expect_code(0);
    assert_eq!(clip_files(&third).len(), rows.len() - 1);
    let left: Vec<_> = shards.iter().flat_map(|s| clip_files(s)).collect();
    assert_eq!(left, vec![victim.clone()], "only the corrupt clip is left in the sources");
}

#[test]
fn sources_with_other_byte_settings_are_refused_naming_the_setting() {
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(0, 2);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut args = direct_download_args(&server, &a, &[&csv]);
    args.extend(os(["--limit", "1"]));
    run(&args).expect_code(0);
    let mut args = direct_download_args(&server, &b, &[&csv]);
    args.extend(os(["--limit", "1", "--no-audio"]));
    run(&args).expect_code(0);
    let out = tmp.path().join("merged");
    let o = merge(&out, &[&a, &b], &[]);
    o.expect_code(2);
    assert!(o.stderr.contains("different no_audio"), "{}", o.stderr);
    assert!(!out.exists() && !tmp.path().join(".merged.merging").exists(), "nothing was built");
}

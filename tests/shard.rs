//! Static shards through the real binary: `--shard i/N` and `--shard auto` (Slurm job arrays, Kubernetes
//! Indexed Jobs) with the real yt-dlp and ffmpeg against the local test source.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use common::*;
use sha2::{Digest, Sha256};

/// The shard the design gives a video (big-endian head of sha256(id) mod n), computed here independently.
fn shard_of(id: &str, n: u64) -> u64 {
    let d = Sha256::digest(id.as_bytes());
    u64::from_be_bytes(d[..8].try_into().unwrap()) % n
}

/// Six real rows, one video with a second clip (the two must land in the same shard).
fn rows() -> Vec<Row> {
    real_rows_with_a_second_clip(6)
}

fn clip_keys(out: &Path) -> BTreeSet<(String, i64, i64)> {
    journal_clips(out).into_iter().map(|c| (c.youtube_id, c.start_ms, c.end_ms)).collect()
}

fn run_env(args: &[OsString], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    for var in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"] {
        cmd.env_remove(var);
    }
    cmd.env_remove("JOB_COMPLETION_INDEX");
    cmd.envs(env.iter().copied());
    cmd.args(args);
    Running::start(cmd).wait(RUN_LIMIT)
}

/// Shards 0/3, 1/3 and 2/3 of the same rows take disjoint shares that cover every clip, each the clips of
/// its videos by the stable hash, all done; the folder pins its shard.
#[test]
fn three_shards_are_disjoint_and_cover_every_clip_and_the_folder_pins_its_shard() {
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = rows();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for i in 0..3u64 {
        let out = tmp.path().join(format!("shard{i}"));
        let mut args = direct_download_args(&server, &out, &[&csv]);
        args.extend(os(["--shard", &format!("{i}/3")]));
        run(&args).expect_code(0);
        let clips = journal_clips(&out);
        assert!(clips.iter().all(|c| c.state == "done"), "shard {i}: {clips:?}");
        for c in &clips {
            assert_eq!(shard_of(&c.youtube_id, 3), i, "clip {} in shard {i}", c.youtube_id);
            assert!(out.join(&c.rel_path).is_file(), "{} on disk", c.rel_path);
        }
        let want: BTreeSet<_> = rows.iter().filter(|r| shard_of(&r.id, 3) == i).map(|r| r.name()).collect();
        let have: BTreeSet<_> =
            clip_files(&out).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(have, want, "shard {i}'s clips on disk");
        let keys = clip_keys(&out);
        total += keys.len();
        assert!(seen.is_disjoint(&keys), "shard {i} overlaps an earlier one");
        seen.extend(keys);
        assert_eq!(status_json(&out)["shard"], format!("{i}/3"));
    }
    assert_eq!(total, rows.len(), "the shards cover every clip exactly once");

    // Reopening shard 0's folder with another shard, or with none, is refused before anything is done.
    let out = tmp.path().join("shard0");
    let before = clip_keys(&out);
    for other in [Some("1/3"), Some("0/4"), None] {
        let mut args = direct_download_args(&server, &out, &[&csv]);
        if let Some(s) = other {
            args.extend(os(["--shard", s]));
        }
        let o = run(&args);
        o.expect_code(2);
        assert!(o.stderr.contains("this folder holds shard 0/3"), "{other:?}: {}", o.stderr);
        assert_eq!(clip_keys(&out), before, "{other:?} added nothing");
    }
    // The same shard again: nothing new to do.
    let mut args = direct_download_args(&server, &out, &[&csv]);
    args.extend(os(["--shard", "0/3"]));
    run(&args).expect_code(0);
    assert_eq!(clip_keys(&out), before);

    // A folder made without --shard refuses a shard.
    let all = tmp.path().join("all");
    let mut args = direct_download_args(&server, &all, &[&csv]);
    args.extend(os(["--limit", "1"]));
    run(&args).expect_code(0);
    let mut args = direct_download_args(&server, &all, &[&csv]);
    args.extend(os(["--shard", "2/3"]));
    let o = run(&args);
    o.expect_code(2);
    assert!(
        o.stderr.contains("this folder holds all clips (no --shard) but this run asks for shard 2/3"),
        "{}",
        o.stderr
    );
    assert_eq!(status_json(&all)["shard"], serde_json::Value::Null);
}

/// `--shard auto` in a Slurm job array (`--array=1-5:2`, task 3 is shard 1 of 3) and in a Kubernetes
/// Indexed Job (index 2 with `--shards 3`) takes the same share as the fixed `--shard`.
#[test]
fn shard_auto_reads_slurm_and_kubernetes_variables() {
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = rows();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let expect = |i: u64| -> BTreeSet<String> {
        rows.iter().filter(|r| shard_of(&r.id, 3) == i).map(|r| r.id.clone()).collect()
    };
    let ids = |out: &Path| -> BTreeSet<String> { journal_clips(out).into_iter().map(|c| c.youtube_id).collect() };

    let slurm = tmp.path().join("slurm");
    let mut args = direct_download_args(&server, &slurm, &[&csv]);
    args.extend(os(["--shard", "auto"]));
    let env = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
    ];
    run_env(&args, &env).expect_code(0);
    assert_eq!(ids(&slurm), expect(1));
    assert_eq!(status_json(&slurm)["shard"], "1/3");
    assert_eq!(done_count(&slurm), journal_clips(&slurm).len());

    let k8s = tmp.path().join("k8s");
    let mut args = direct_download_args(&server, &k8s, &[&csv]);
    args.extend(os(["--shard", "auto", "--shards", "3"]));
    run_env(&args, &[("JOB_COMPLETION_INDEX", "2")]).expect_code(0);
    assert_eq!(ids(&k8s), expect(2));
    assert_eq!(status_json(&k8s)["shard"], "2/3");

    // Kubernetes without --shards, and no scheduler at all: exit 2 saying what is missing, nothing made.
    let none = tmp.path().join("none");
    let mut args = direct_download_args(&server, &none, &[&csv]);
    args.extend(os(["--shard", "auto"]));
    let o = run_env(&args, &[("JOB_COMPLETION_INDEX", "0")]);
    o.expect_code(2);
    assert!(o.stderr.contains("pass --shards N"), "{}", o.stderr);
    let o = run_env(&args, &[]);
    o.expect_code(2);
    assert!(
        o.stderr.contains("neither SLURM_ARRAY_TASK_ID") && o.stderr.contains("JOB_COMPLETION_INDEX"),
        "{}",
        o.stderr
    );
    assert!(!none.exists(), "nothing was created");
}

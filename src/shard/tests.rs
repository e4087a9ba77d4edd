use super::*;
use std::collections::HashMap;

#[test]
fn shard_of_is_the_big_endian_head_of_sha256() {
    // sha256("") = e3b0c44298fc1c14..., sha256("abc") = ba7816bf8f01cfea... (FIPS 180-2 test vectors).
    for n in [1u64, 2, 3, 4, 7, 1000] {
        assert_eq!(shard_of("", n), 0xe3b0_c442_98fc_1c14 % n, "n={n}");
        assert_eq!(shard_of("abc", n), 0xba78_16bf_8f01_cfea % n, "n={n}");
    }
}

#[test]
fn every_video_has_exactly_one_shard_and_shards_are_not_empty() {
    let ids: Vec<String> = (0..400).map(|k| format!("vid{k:08}")).collect();
    for n in [1u64, 2, 4, 7] {
        let mut sizes = vec![0usize; n as usize];
        for id in &ids {
            let owners: Vec<u64> = (0..n).filter(|&i| Shard::new(i, n).unwrap().owns(id)).collect();
            assert_eq!(owners.len(), 1, "{id} among {n}: {owners:?}");
            sizes[owners[0] as usize] += 1;
        }
        assert!(sizes.iter().all(|&s| s > 400 / n as usize / 2), "n={n}: unbalanced {sizes:?}");
    }
}

#[test]
fn parse_arg_table() {
    let ok = |i, n| Ok(ShardArg::Fixed(Shard { index: i, count: n }));
    let cases: &[(&str, Result<ShardArg, &str>)] = &[
        ("0/4", ok(0, 4)),
        ("3/4", ok(3, 4)),
        ("0/1", ok(0, 1)),
        ("auto", Ok(ShardArg::Auto)),
        ("4/4", Err("out of range")),
        ("0/0", Err("at least 1")),
        ("-1/4", Err("expected i/N")),
        ("1", Err("expected i/N")),
        ("a/4", Err("expected i/N")),
        ("1/4/5", Err("expected i/N")),
        ("AUTO", Err("expected i/N")),
        ("", Err("expected i/N")),
    ];
    for (input, want) in cases {
        match (parse_arg(input), want) {
            (Ok(got), Ok(w)) => assert_eq!(&got, w, "{input:?}"),
            (Err(got), Err(w)) => assert!(got.contains(w), "{input:?}: {got}"),
            (got, w) => panic!("{input:?}: got {got:?}, want {w:?}"),
        }
    }
}

#[test]
fn from_env_table() {
    let s = |i, n| Ok(Shard { index: i, count: n });
    #[allow(clippy::type_complexity)]
    let cases: &[(&[(&str, &str)], Option<u64>, Result<Shard, &str>)] = &[
        // --array=0-3
        (
            &[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "0")],
            None,
            s(2, 4),
        ),
        // --array=1-7:2 runs 1,3,5,7
        (
            &[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
            ],
            None,
            s(0, 4),
        ),
        (
            &[
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
            ],
            None,
            s(3, 4),
        ),
        (
            &[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
            ],
            None,
            Err("not on the array"),
        ),
        // --array=10-13
        (
            &[("SLURM_ARRAY_TASK_ID", "13"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10")],
            Some(4),
            s(3, 4),
        ),
        (
            &[("SLURM_ARRAY_TASK_ID", "13"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10")],
            Some(5),
            Err("disagrees"),
        ),
        (
            &[("SLURM_ARRAY_TASK_ID", "9"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10")],
            None,
            Err("not on the array"),
        ),
        // --array=0-7 with a list that Slurm counts as 4 (0-3,7): task 7 is past the count
        (
            &[("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "0")],
            None,
            Err("out of range"),
        ),
        (&[("SLURM_ARRAY_TASK_ID", "1")], None, Err("SLURM_ARRAY_TASK_COUNT is not")),
        (&[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")], None, Err("SLURM_ARRAY_TASK_MIN is not")),
        (
            &[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4")],
            None,
            Err("SLURM_ARRAY_TASK_ID=\"x\" is not a whole number"),
        ),
        (
            &[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_STEP", "0"),
            ],
            None,
            Err("STEP=0"),
        ),
        // Kubernetes Indexed Job
        (&[("JOB_COMPLETION_INDEX", "0")], Some(3), s(0, 3)),
        (&[("JOB_COMPLETION_INDEX", "2")], Some(3), s(2, 3)),
        (&[("JOB_COMPLETION_INDEX", "3")], Some(3), Err("out of range")),
        (&[("JOB_COMPLETION_INDEX", "0")], None, Err("pass --shards N")),
        (&[("JOB_COMPLETION_INDEX", "")], Some(3), Err("not a whole number")),
        // both, neither
        (&[("JOB_COMPLETION_INDEX", "0"), ("SLURM_ARRAY_TASK_ID", "0")], Some(3), Err("both")),
        (&[], Some(4), Err("neither")),
        (&[("SLURM_JOB_ID", "77")], None, Err("neither")),
    ];
    for (vars, shards, want) in cases {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let get = |k: &str| map.get(k).map(|v| v.to_string());
        match (from_env(&get, *shards), want) {
            (Ok(got), Ok(w)) => assert_eq!(&got, w, "{vars:?} {shards:?}"),
            (Err(got), Err(w)) => assert!(got.contains(w), "{vars:?} {shards:?}: {got}"),
            (got, w) => panic!("{vars:?} {shards:?}: got {got:?}, want {w:?}"),
        }
    }
}

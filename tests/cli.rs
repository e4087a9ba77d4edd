//! The command line as a user meets it: help, usage errors and their exit code, `doctor`, `status`, and a
//! JSON annotation file downloaded end to end.

mod common;

use common::*;

#[test]
fn help_of_every_command_works() {
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--help"], &["download", "status", "doctor", "Exit codes"]),
        (&["download", "--help"], &["--annotations", "--out", "--url-template", "--retry-failed", "--trim"]),
        (&["status", "--help"], &["--out", "--json"]),
        (&["doctor", "--help"], &["--out", "--ytdlp", "--ffmpeg"]),
    ];
    for (args, mentions) in cases {
        let o = run_strs(args);
        o.expect_code(0);
        assert!(o.stdout.contains("Usage: kinetics-dl"), "{args:?}: {}", o.stdout);
        for m in mentions {
            assert!(o.stdout.contains(m), "{args:?} mentions {m}: {}", o.stdout);
        }
    }
    let o = run_strs(&["--version"]);
    o.expect_code(0);
    assert!(o.stdout.starts_with("kinetics-dl "), "{}", o.stdout);
}

#[test]
fn usage_errors_exit_two_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &[Row::new("x", "abcdefghijk", 0.0, 10.0)]);
    let out = tmp.path().join("out");
    let (csv, out) = (csv.to_str().unwrap(), out.to_str().unwrap());
    let local = "http://127.0.0.1:9/v/{youtube_id}.mp4";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--frobnicate"], "unexpected argument '--frobnicate'"),
        (vec!["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (vec!["download", "--out", out, "--annotations", csv, "--bogus"], "unexpected argument '--bogus'"),
        (vec!["status", "--out", out, "--bogus"], "unexpected argument '--bogus'"),
        (vec!["download", "--annotations", csv], "--out <DIR>"),
        (vec!["download", "--out", out], "nothing to download"),
        (vec!["download", "--out", out, "--annotations", csv, "--url-template", "http://x/"], "{youtube_id}"),
        (vec!["download", "--out", out, "--annotations", csv, "--url-template", local, "-j", "0"], "-j"),
        (
            vec!["download", "--out", out, "--annotations", csv, "--url-template", local, "--retry-delay", "soon"],
            "--retry-delay",
        ),
        (
            vec!["download", "--out", out, "--annotations", csv, "--url-template", local, "--trim", "sideways"],
            "sideways",
        ),
        (
            vec!["download", "--out", out, "--annotations", "/nonexistent/a.csv", "--url-template", local],
            "/nonexistent/a.csv",
        ),
    ];
    for (args, says) in cases {
        let o = run_strs(&args);
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{args:?}: stderr says {says:?}: {}", o.stderr);
    }
    assert!(!std::path::Path::new(out).exists(), "a usage error creates no output folder");
}

#[test]
fn doctor_checks_the_tools() {
    let o = run_strs(&["doctor"]);
    assert!(o.code == Some(0) || o.code == Some(2), "{o:?}");
    for tool in ["yt-dlp", "ffmpeg", "ffprobe", "disk"] {
        assert!(o.stdout.contains(tool), "doctor mentions {tool}: {}", o.stdout);
    }
    // The tools the tests use are installed, so doctor must not call them missing.
    assert!(!o.stdout.contains("not found"), "{}", o.stdout);

    let o = run_strs(&["doctor", "--ytdlp", "/nonexistent/yt-dlp"]);
    o.expect_code(2);
    assert!(o.stdout.contains("/nonexistent/yt-dlp") && o.stdout.contains("pip install"), "{}", o.stdout);
}

#[test]
fn exit_codes_say_whose_fault_an_error_is() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    // No journal: the user ran the command in the wrong folder (2), whatever the command.
    let commands: [&[&str]; 5] =
        [&["report"], &["export", "--format", "torchvision"], &["manifest"], &["verify"], &["status"]];
    for command in commands {
        let o = run_strs(&[command, &["--out", out_s]].concat());
        assert_eq!(o.code, Some(2), "{command:?}: {}", o.stderr);
        assert_eq!(o.stderr.matches("no journal in").count(), 1, "{command:?} says it once: {}", o.stderr);
    }
    // A journal that exists, but the page cannot be written: the command failed at run time (1).
    std::fs::create_dir_all(out.join(".kinetics-dl")).unwrap();
    drop(kinetics_dl::journal::Journal::open(&kinetics_dl::journal::Journal::path_in(&out)).unwrap());
    std::fs::create_dir_all(out.join("report.html").join("in-the-way")).unwrap();
    let o = run_strs(&["report", "--out", out_s]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.starts_with("error: ") && o.stderr.contains("report.html"), "{}", o.stderr);
    // A journal from a newer kinetics-dl: the user must upgrade (2).
    let conn = rusqlite::Connection::open(kinetics_dl::journal::Journal::path_in(&out)).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let o = run_strs(&["status", "--out", out_s]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("upgrade kinetics-dl"), "{}", o.stderr);
}

/// `--db`, `--fleet` and `--db-schema` are one set of options, the same on every command that works on a
/// fleet: the same help, `--fleet` refused without a database, and a database in the environment alone (as the
/// workers' machines have it) names no fleet, so the local commands still read the folder.
#[test]
fn the_fleet_options_are_the_same_on_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("missing");
    let out = out.to_str().unwrap();
    let mut helps = Vec::new();
    for command in ["download", "status", "report", "merge"] {
        let o = run_strs(&[command, "--help"]);
        o.expect_code(0);
        let fleet = o.stdout.split("Fleet (PostgreSQL):").nth(1).unwrap_or_else(|| panic!("{command}: {}", o.stdout));
        let three: Vec<&str> = fleet
            .lines()
            .filter(|l| ["--db <URL>", "--fleet <NAME>", "--db-schema <NAME>"].iter().any(|f| l.contains(f)))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(three, ["--db", "--fleet", "--db-schema"], "{command}: {fleet}");
        let words = o.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        helps.push(words.contains("`merge` lets its record pick between copies of a clip"));
        let mut args = vec![command, "--fleet", "f"];
        match command {
            "status" => {} // --out is the other way to say what to show
            "merge" => args.extend(["--out", out, out]),
            _ => args.extend(["--out", out]),
        }
        let o = run_strs(&args);
        o.expect_code(2);
        assert!(o.stderr.contains("--db <URL>"), "{command}: {}", o.stderr);
    }
    assert_eq!(helps, [true; 4], "one help text for --db on every command");
    let o = run_strs(&["status", "--out", out, "--db", "postgres://127.0.0.1:1/x", "--fleet", "f"]);
    o.expect_code(2);
    assert!(o.stderr.contains("cannot be used with"), "{}", o.stderr);
    for sub in ["status", "report"] {
        let mut cmd = command();
        cmd.env("KINETICS_DL_DB", "postgres://127.0.0.1:1/x").args([sub, "--out", out]);
        let o = Running::start(cmd).wait(std::time::Duration::from_secs(60));
        o.expect_code(2);
        assert!(o.stderr.contains("no journal in"), "{sub} reads the folder: {}", o.stderr);
    }
}

#[test]
fn status_without_a_journal_exits_two() {
    let tmp = tempfile::tempdir().unwrap();
    for out in [tmp.path().to_path_buf(), tmp.path().join("missing")] {
        for json in [false, true] {
            let mut args = vec!["status".to_string(), "--out".into(), out.to_string_lossy().into_owned()];
            if json {
                args.push("--json".into());
            }
            let o = run_strs(&args);
            o.expect_code(2);
            assert!(o.stderr.contains("no journal in"), "{}", o.stderr);
            assert!(o.stderr.contains("kinetics-dl download --out"), "says what to run: {}", o.stderr);
            assert!(o.stdout.is_empty(), "{}", o.stdout);
        }
    }
}

#[test]
fn json_annotations_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let real = real_rows(130, 2);
    let rows = vec![
        Row::new(&real[0].label, &real[0].id, real[0].start, real[0].end),
        Row::new("tying bow tie", &real[1].id, 21.4, 31.4).split("train"),
    ];
    let json = tmp.path().join("kinetics_val.json");
    write_json(&json, &rows);
    let out = tmp.path().join("out");
    run(&download_args(&server, &out, &[&json])).expect_code(0);

    for row in &rows {
        assert_clip(&out, row);
    }
    assert!(out.join("train/tying_bow_tie").join(clip_name(&real[1].id, 21.4, 31.4)).is_file());
    let stats = read_csv(&out.join("stats.csv"));
    assert_eq!(stats.for_id(&real[1].id)[0]["split"], "train");
    assert_eq!(stats.for_id(&real[1].id)[0]["time_start"], "21.4");

    let status = status_json(&out);
    assert_eq!((status["total"].as_u64(), status["done"].as_u64()), (Some(2), Some(2)), "{status}");
    let o = run_strs(&["status", "--out", out.to_str().unwrap()]);
    o.expect_code(0);
    let done_line = o.stdout.lines().find(|l| l.trim_start().starts_with("done")).expect("a done line");
    assert_eq!(done_line.split_whitespace().nth(1), Some("2"), "{}", o.stdout);
}

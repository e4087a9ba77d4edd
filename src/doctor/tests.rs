use super::*;
use std::os::unix::fs::PermissionsExt;

const TODAY: Option<(i32, u32, u32)> = Some((2026, 11, 27));

/// A shell script `name` in `dir` that prints `output` and exits with `code`.
fn fake_tool(dir: &Path, name: &str, output: &str, code: i32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nprintf '%s\\n' '{output}'\nexit {code}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn find<'a>(report: &'a DoctorReport, name: &str) -> &'a Check {
    report.checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn the_real_machine_has_ytdlp_and_ffmpeg() {
    let out = tempfile::tempdir().unwrap();
    let opts = DoctorOptions { today: TODAY, ..DoctorOptions::default() };
    let report = run_with(Some(&out.path().join("not/yet/created")), &opts);
    for name in ["yt-dlp", "ffmpeg", "ffprobe", "yt-dlp-ejs", "formats"] {
        let c = find(&report, name);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.fix.is_none());
    }
    assert!(find(&report, "yt-dlp").message.contains("days old"));
    let disk = find(&report, "disk");
    assert!(
        disk.message.contains("GiB free at ") && disk.message.contains(&out.path().display().to_string()),
        "{disk:?}"
    );
    assert!(!report.has_failures(), "{report}");
}

#[test]
fn token_needs_table() {
    // (the script's output, status, message fragment); the first row is what yt-dlp 2026.11.23 printed.
    let cases = [
        (
            "version 2026.11.23\nclient tv_samsung -\nclient visionos -\n",
            Some(Status::Ok),
            "2026.11.23's default clients offer without a PO token (by yt-dlp's own table) tv_samsung: itag 18, \
             DASH; visionos: itag 18, DASH;",
        ),
        (
            "version 2026.08.20\nclient tv_simply https,dash\nclient android_vr https,dash\n",
            Some(Status::Warn),
            "tv_simply: none; android_vr: none;",
        ),
        ("version 2026.09.01\nclient tv https\nclient web https,dash\n", Some(Status::Warn), "tv: DASH; web: none;"),
        ("version 2026.09.01\nclient tv dash\n", Some(Status::Ok), "tv: itag 18;"),
        ("version 2026.09.01\n", None, ""),
        ("client tv -\n", None, ""),
        ("", None, ""),
    ];
    for (text, status, fragment) in cases {
        let got = token_needs(text);
        assert_eq!(got.as_ref().map(|g| g.0), status, "{text:?}");
        if let Some((_, message)) = got {
            assert!(message.contains(fragment), "{text:?}: {message}");
        }
    }
}

#[test]
fn missing_tools_fail_with_a_fix() {
    let opts = DoctorOptions {
        yt_dlp: Some("/nonexistent/yt-dlp".into()),
        ffmpeg: Some("/nonexistent/ffmpeg".into()),
        today: TODAY,
        ..DoctorOptions::default()
    };
    let report = run_with(None, &opts);
    let yt = find(&report, "yt-dlp");
    assert_eq!(yt.status, Status::Fail);
    assert!(yt.message.contains("/nonexistent/yt-dlp"), "{yt:?}");
    assert_eq!(yt.fix.as_deref(), Some("pip install -U \"yt-dlp[default]\""));
    assert_eq!(find(&report, "ffmpeg").status, Status::Fail);
    assert!(find(&report, "ffmpeg").fix.as_deref().unwrap().contains("apt-get install ffmpeg"));
    assert!(report.has_failures());
    let text = report.to_string();
    assert!(text.contains("✗ yt-dlp") && text.contains("fix: pip install -U"), "{text}");
    assert!(text.contains("2 failures"), "{text}");
}

#[test]
fn ytdlp_age_is_measured_against_today() {
    let dir = tempfile::tempdir().unwrap();
    // (printed version, today, status, message fragment)
    #[rustfmt::skip]
    let cases = [
        ("2026.10.26", (2026, 11, 27), Status::Ok, "2026.10.26, 32 days old ("),
        ("2026.10.26", (2026, 10, 26), Status::Ok, ", 0 days old"),
        ("2026.10.26", (2027, 1, 24), Status::Ok, ", 90 days old"),
        ("2026.10.26", (2027, 1, 25), Status::Warn, "is 91 days old"),
        ("2026.10.26.233404", (2027, 3, 1), Status::Warn, "is 126 days old"),
        ("2026.12.01", (2026, 11, 27), Status::Ok, ", 0 days old"),
        ("nightly", (2026, 11, 27), Status::Warn, "cannot tell its release date"),
    ];
    for (i, (version, today, status, fragment)) in cases.into_iter().enumerate() {
        let tool = fake_tool(dir.path(), &format!("yt-dlp-{i}"), version, 0);
        let today = days_from_civil(today.0, today.1, today.2);
        let c = check_ytdlp(Some(&tool), Path::new("python3"), None, today);
        assert_eq!(c.status, status, "{version} on day {today}: {c:?}");
        assert!(c.message.contains(fragment), "{version}: {c:?}");
    }
    let broken = fake_tool(dir.path(), "yt-dlp-broken", "boom", 3);
    let c = check_ytdlp(Some(&broken), Path::new("python3"), None, 0);
    assert_eq!(c.status, Status::Fail);
}

#[test]
fn ytdlp_is_looked_up_on_the_given_path_then_as_a_python_module() {
    let today = days_from_civil(2026, 11, 27);
    let empty = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let python = fake_tool(bin.path(), "python-with-module", "2026.10.26", 0);
    let no_python = bin.path().join("no-python");

    let c = check_ytdlp(None, &python, Some(empty.path().as_os_str()), today);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.message.contains("-m yt_dlp") && c.fix.unwrap().contains("KINETICS_DL_YTDLP"));

    let c = check_ytdlp(None, &no_python, Some(empty.path().as_os_str()), today);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.message.contains("tried yt-dlp on PATH, "), "{c:?}");

    let on_path = fake_tool(bin.path(), "yt-dlp", "2026.10.26", 0);
    let c = check_ytdlp(None, &no_python, Some(bin.path().as_os_str()), today);
    assert_eq!(c.status, Status::Ok, "{c:?}");
    assert!(c.message.contains(&on_path.display().to_string()), "{c:?}");
}

#[test]
fn js_runtimes_are_found_and_judged_by_version() {
    // (files in PATH as (binary, --version output), status, message fragment)
    type Case = (&'static [(&'static str, &'static str)], Status, &'static str);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (&[], Status::Warn, "none of deno, node, bun, quickjs found"),
        (&[("node", "v20.20.2")], Status::Warn, "node 20.20.2 too old"),
        (&[("node", "v22.12.0")], Status::Warn, "node 22.12.0 found, but yt-dlp enables only deno"),
        (&[("deno", "deno 2.5.6 (stable, release, x86_64-unknown-linux-gnu)")], Status::Ok, "deno 2.5.6"),
        (&[("deno", "deno 2.1.0 (stable)"), ("bun", "1.3.0")], Status::Warn, "bun 1.3.0 found"),
        (&[("node", "v20.1.0"), ("qjs", "QuickJS version 2025-04-26")], Status::Warn, "quickjs 2025-04-26 found"),
        (&[("qjs", "QuickJS-ng version 0.10.1")], Status::Warn, "quickjs 0.10.1 found"),
        (&[("qjs", "QuickJS version 2021-03-27")], Status::Warn, "quickjs 2021-03-27 too old"),
    ];
    for (files, status, fragment) in cases {
        let dir = tempfile::tempdir().unwrap();
        for (binary, output) in *files {
            fake_tool(dir.path(), binary, output, 0);
        }
        let c = check_js_runtime(Some(dir.path().as_os_str()));
        assert_eq!(c.status, *status, "{files:?}: {c:?}");
        assert!(c.message.contains(fragment), "{files:?}: {c:?}");
        assert_eq!(c.fix.is_some(), *status != Status::Ok, "{files:?}: {c:?}");
    }
}

#[test]
fn dates_and_sizes() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(2026, 11, 27) - days_from_civil(2026, 10, 26), 32);
    assert_eq!(days_from_civil(2028, 3, 1) - days_from_civil(2028, 2, 28), 2);
    assert_eq!(version_date("2026.10.26"), Some(days_from_civil(2026, 10, 26)));
    assert_eq!(version_date("2026.13.01"), None);
    assert_eq!(gib(10 << 30), "10.0 GiB");
    assert_eq!(gib(3 << 29), "1.5 GiB");
    assert!(today_days() > days_from_civil(2025, 1, 1));
}

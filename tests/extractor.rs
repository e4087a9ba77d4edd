//! yt-dlp's two paths (issue 10): `--ytdlp-mode cli` runs the command for each clip, `api` (the default)
//! runs yt-dlp's Python API in long-lived workers. YouTube's refusals come from a real yt-dlp extractor
//! plugin (`tests/data/ytdlp-plugins`, loaded by both paths from PYTHONPATH) that raises them with yt-dlp's
//! own code; throttling from the test source itself. Both paths must bring each failure to the same
//! category and choose the same formats; API workers must be replaced when they hang or crash (the clip
//! not charged), recycled, kept to one egress each, and die with kinetics-dl.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use kinetics_testsrc::{Behaviour, TestServer};
use serde_json::json;

const PLUGINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ytdlp-plugins");

/// A run against the plugin: OUT, the annotations and the plugin's state folder (script and log).
struct Scripted {
    _tmp: tempfile::TempDir,
    out: PathBuf,
    csv: PathBuf,
    state: PathBuf,
}

fn scripted(rows: &[Row], script: &serde_json::Value) -> Scripted {
    let tmp = tempfile::tempdir().unwrap();
    let (out, csv, state) = (tmp.path().join("out"), tmp.path().join("rows.csv"), tmp.path().join("state"));
    write_csv(&csv, rows);
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("script.json"), script.to_string()).unwrap();
    Scripted { _tmp: tmp, out, csv, state }
}

impl Scripted {
    /// `download` of the plugin's URLs, with the plugin on PYTHONPATH for yt-dlp in either mode.
    fn command(&self, server: &TestServer, extra: &[&str]) -> Command {
        let mut cmd = command();
        cmd.args(["download", "--out"]).arg(&self.out).arg("--annotations").arg(&self.csv);
        cmd.args(["--url-template", &format!("{}/scripted/{{youtube_id}}", server.base_url())]);
        cmd.args(["--retry-delay", "0s", "--cooldown", "1s"]);
        if !extra.contains(&"-j") {
            cmd.args(["-j", "3"]);
        }
        cmd.args(extra);
        cmd.env("PYTHONPATH", PLUGINS).env("KDL_SCRIPTED_DIR", &self.state);
        cmd
    }

    fn run(&self, server: &TestServer, extra: &[&str]) -> Output {
        Running::start(self.command(server, extra)).wait(RUN_LIMIT)
    }

    /// The plugin's log: (pid, id, source address) for every extraction, in order.
    fn log(&self) -> Vec<(i32, String, String)> {
        let text = std::fs::read_to_string(self.state.join("log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0].parse().unwrap(), f[1].to_owned(), f[2].to_owned())
            })
            .collect()
    }
}

/// Playability statuses as YouTube answers them, and the category each must reach.
fn refusals() -> Vec<(&'static str, serde_json::Value)> {
    let removed = |sub: &str| json!({"reason": "Video unavailable", "subreason": sub});
    vec![
        (
            "private",
            json!({"reason": "Private video", "subreason": "Sign in if you&#39;ve been granted access to this video"}),
        ),
        ("removed_by_user", removed("This video has been removed by the uploader")),
        (
            "account_terminated",
            removed(
                "This video is no longer available because the YouTube account associated with this video has been \
                 terminated.",
            ),
        ),
        ("copyright", removed("This video is no longer available due to a copyright claim by Sony Music")),
        ("terms_violation", removed("This video has been removed for violating YouTube's Terms of Service")),
        (
            "geo_blocked",
            json!({"reason": "Video unavailable", "countries": ["DE", "AT"],
                   "subreason": "The uploader has not made this video available in your country"}),
        ),
        (
            "age_restricted",
            json!({"reason": "Sign in to confirm your age", "subreason": "This video may be inappropriate for some users."}),
        ),
        (
            "members_only",
            json!({"reason": "Join this channel to get access to members-only content like this video, and other exclusive perks."}),
        ),
        ("live_not_started", json!({"reason": "This live event will begin in 3 hours."})),
        ("drm", json!({"reason": "", "drm": true})),
        ("unavailable", json!({"reason": "Video unavailable"})),
        // Throttle signals: once, so the breaker's probe then gets the clip.
        (
            "bot_check",
            json!({"reason": "Sign in to confirm you’re not a bot", "once": true,
                   "subreason": "This helps protect our community. Learn more"}),
        ),
        ("rate_limited", json!({"reason": "This content isn't available, try again later.", "once": true})),
    ]
}

/// Each id's category on its first attempt, and the format of each clip that was done.
fn outcome(out: &Path) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut first = BTreeMap::new();
    for a in attempts(out) {
        first.entry(a.youtube_id.clone()).or_insert_with(|| a.category.unwrap_or_else(|| a.outcome.clone()));
    }
    let conn = open_journal(out).unwrap();
    let mut stmt = conn.prepare("SELECT youtube_id, format_id FROM clips WHERE state = 'done'").unwrap();
    let formats = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default()))).unwrap();
    (first, formats.map(Result::unwrap).collect())
}

#[test]
fn failures_reach_the_same_categories_and_clips_the_same_formats_through_the_command_line_and_the_api() {
    let cases = refusals();
    // The refusals, then a 429 and a 404 from the test source's page, then two plain clips.
    let rows = real_rows(0, cases.len() + 4);
    let script: serde_json::Map<String, serde_json::Value> =
        cases.iter().zip(&rows).map(|((_, action), row)| (row.id.clone(), action.clone())).collect();
    let (r429, r404) = (&rows[cases.len()], &rows[cases.len() + 1]);
    let mut want: BTreeMap<String, String> =
        cases.iter().zip(&rows).map(|((category, _), row)| (row.id.clone(), category.to_string())).collect();
    want.insert(r429.id.clone(), "rate_limited".into());
    want.insert(r404.id.clone(), "http_404".into());
    for row in &rows[cases.len() + 2..] {
        want.insert(row.id.clone(), "done".into());
    }
    let mut seen = Vec::new();
    for mode in ["cli", "api"] {
        // A source of its own for each mode: the 429 is answered once per source.
        let server = server(
            config()
                .with_behaviour(&r429.id, Behaviour::FailThenOk { status: 429, count: 1 })
                .with_behaviour(&r404.id, Behaviour::Status(404)),
        );
        let s = scripted(&rows, &serde_json::Value::Object(script.clone()));
        let o = s.run(&server, &["--ytdlp-mode", mode, "-v"]);
        // 3: live_not_started may come back later, so a rerun is worth it.
        assert!(matches!(o.code, Some(1 | 3)), "{mode}: exit {:?}\n{}", o.code, o.stderr);
        // The command line is one process per extraction (a geo block is tried twice in it, the second time
        // with a forged X-Forwarded-For); the API has a few workers (-j 3) serve many ids each.
        let mut ids_by_pid: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
        for (pid, id, _) in s.log() {
            ids_by_pid.entry(pid).or_default().insert(id);
        }
        let most = ids_by_pid.values().map(BTreeSet::len).max().unwrap_or(0);
        match mode {
            "cli" => assert_eq!(most, 1, "{mode}: {ids_by_pid:?}"),
            _ => assert!(ids_by_pid.len() <= 4 && most > 1, "{mode}: {ids_by_pid:?}\n{}", o.stderr),
        }
        let (first, formats) = outcome(&s.out);
        assert_eq!(first, want, "{mode}: the first attempt's category of each id\n{}", o.stderr);
        // The throttled clips and the plain ones were all done, each from the same formats.
        assert_eq!(formats.len(), 5, "{mode}: {formats:?}");
        let chosen: BTreeSet<&String> = formats.values().collect();
        assert_eq!(chosen.len(), 1, "{mode}: one video, one choice: {formats:?}");
        let events = status_json(&s.out)["egresses"][0]["throttle_events"].as_u64();
        assert_eq!(events, Some(3), "{mode}: bot check, rate limit and 429 each open the breaker once");
        seen.push((first, formats));
    }
    assert_eq!(seen[0], seen[1], "the command line and the API agree");
}

#[test]
fn a_hung_or_crashed_worker_is_replaced_and_its_clip_is_not_charged() {
    let rows = real_rows(20, 4);
    let script = json!({&rows[0].id: "hang_once", &rows[1].id: "crash_once"});
    let s = scripted(&rows, &script);
    let server = server(config());
    // Long enough for an extraction on a loaded machine (a new worker's start has a limit of its own).
    let o = s.run(&server, &["--extract-timeout", "60s", "-v"]);
    o.expect_code(0);
    for row in &rows {
        assert_clip(&s.out, row);
    }
    let log = s.log();
    for row in &rows[..2] {
        let pids: Vec<i32> = log.iter().filter(|(_, id, _)| *id == row.id).map(|(pid, _, _)| *pid).collect();
        assert_eq!(pids.len(), 2, "{}: extracted twice, by two workers: {log:?}", row.id);
        assert_ne!(pids[0], pids[1], "{log:?}");
        assert!(still_running(pids[0]).is_none(), "the lost worker {} is gone", pids[0]);
    }
    assert!(o.stderr.contains("did not answer within 60s"), "{}", o.stderr);
    assert!(o.stderr.contains("died"), "{}", o.stderr);
    // Neither loss was charged to its clip: one attempt each, done.
    for clip in journal_clips(&s.out) {
        assert_eq!((clip.state.as_str(), clip.attempts), ("done", 1), "{clip:?}");
    }
}

/// The `ytdlp_mode` every run of OUT recorded in its settings, oldest first.
fn recorded_modes(out: &Path) -> Vec<String> {
    let conn = open_journal(out).unwrap();
    let mut stmt = conn.prepare("SELECT settings FROM runs ORDER BY id").unwrap();
    let settings = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    settings
        .map(|s| {
            let v: serde_json::Value = serde_json::from_str(&s.unwrap()).unwrap();
            v["ytdlp_mode"].as_str().unwrap_or("(none)").to_owned()
        })
        .collect()
}

#[test]
fn the_whole_video_fallback_runs_in_the_workers_with_the_same_outcomes_and_each_run_records_its_mode() {
    let rows = real_rows(60, 3);
    // The media server ignores Range for the first two: their windows cannot be fetched, so yt-dlp
    // downloads the whole video. The second is then refused on that download (its extraction passed):
    // the refusal must reach the same category through both paths.
    let private = json!({"reason": "Private video", "subreason": "Sign in if you&#39;ve been granted access to this video",
                         "after": 1});
    let script = json!({&rows[1].id: private});
    let mut seen = Vec::new();
    for mode in ["cli", "api"] {
        let server = server(
            config().with_behaviour(&rows[0].id, Behaviour::NoRange).with_behaviour(&rows[1].id, Behaviour::NoRange),
        );
        let s = scripted(&rows, &script);
        let o = s.run(&server, &["--ytdlp-mode", mode, "-j", "1", "-v"]);
        // A private video is a permanent failure: the run has nothing left to do.
        assert_eq!(o.code, Some(0), "{mode}\n{}", o.stderr);
        let conn = open_journal(&s.out).unwrap();
        let mut stmt =
            conn.prepare("SELECT youtube_id, state, COALESCE(category, ''), whole_video, attempts FROM clips").unwrap();
        let clips: BTreeMap<String, (String, String, bool, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0, r.get(4)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want = |state: &str, category: &str, whole: bool| (state.to_owned(), category.to_owned(), whole, 1);
        assert_eq!(clips[&rows[0].id], want("done", "", true), "{mode}: {clips:?}\n{}", o.stderr);
        assert_eq!(clips[&rows[1].id], want("failed", "private", false), "{mode}: {clips:?}\n{}", o.stderr);
        assert_eq!(clips[&rows[2].id], want("done", "", false), "{mode}: {clips:?}");
        assert_clip(&s.out, &rows[0]);
        // Each refused or whole-video id was read twice: its extraction, then the whole-video download.
        let log = s.log();
        for row in &rows[..2] {
            let pids: Vec<i32> = log.iter().filter(|(_, id, _)| *id == row.id).map(|(pid, _, _)| *pid).collect();
            assert_eq!(pids.len(), 2, "{mode}: {}: {log:?}", row.id);
        }
        let pids: BTreeSet<i32> = log.iter().map(|(pid, _, _)| *pid).collect();
        match mode {
            // One process a call.
            "cli" => assert_eq!(pids.len(), log.len(), "{mode}: {log:?}"),
            // One clip at a time: one worker made every call, the downloads too.
            _ => assert_eq!(pids.len(), 1, "{mode}: {log:?}\n{}", o.stderr),
        }
        assert_eq!(recorded_modes(&s.out), [mode], "{mode}");
        assert_eq!(status_json(&s.out)["last_run"]["ytdlp_mode"], mode, "{mode}");
        let message: String =
            conn.query_row("SELECT message FROM clips WHERE youtube_id = ?1", [&rows[1].id], |r| r.get(0)).unwrap();
        seen.push((clips, message));
    }
    assert_eq!(seen[0], seen[1], "the command line and the API agree");
}

/// The process `pid` if it is alive and not a zombie.
fn still_running(pid: i32) -> Option<Proc> {
    processes().into_iter().find(|p| p.pid == pid)
}

#[test]
fn workers_serve_many_clips_keep_to_one_egress_and_are_recycled() {
    let rows = real_rows(30, 6);
    let server = server(config());

    // One clip at a time: one worker serves them all, the one that answered the run's first check, and it
    // is the only one the run started (before, the check's worker was ended and another started).
    let s = scripted(&rows[..4], &json!({}));
    let o = s.run(&server, &["-j", "1", "-vv"]);
    o.expect_code(0);
    let pids: BTreeSet<i32> = s.log().iter().map(|(pid, _, _)| *pid).collect();
    assert_eq!((s.log().len(), pids.len()), (4, 1), "{:?}", s.log());
    let starts = o.stderr.lines().filter(|l| l.contains("yt-dlp worker started")).count();
    assert_eq!(starts, 1, "the first check's worker served the clips\n{}", o.stderr);

    // Two egresses, two clips a worker: every worker keeps to its egress and serves at most two.
    let s = scripted(&rows, &json!({}));
    let egresses = ["--source-address", "127.0.0.2", "--source-address", "127.0.0.3", "--worker-clips", "2"];
    s.run(&server, &egresses).expect_code(0);
    let log = s.log();
    assert_eq!(log.len(), rows.len(), "{log:?}");
    let mut by_pid: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for (pid, _, address) in &log {
        by_pid.entry(*pid).or_default().push(address);
    }
    for (pid, addresses) in &by_pid {
        assert!(addresses.len() <= 2, "worker {pid} served {addresses:?}");
        assert!(addresses.iter().all(|a| *a == addresses[0]), "worker {pid} served two egresses: {addresses:?}");
    }
    assert!(by_pid.len() >= 3, "recycled after two clips: {log:?}");
    let addresses: BTreeSet<&str> = log.iter().map(|(_, _, a)| a.as_str()).collect();
    assert_eq!(addresses, BTreeSet::from(["127.0.0.2", "127.0.0.3"]), "{log:?}");
    // One clip at a time over two egresses: one idle worker is kept in all (-j 1), so a worker whose egress
    // was left for the other is ended, never used again after another worker ran.
    let s = scripted(&rows, &json!({}));
    s.run(&server, &["-j", "1", "--source-address", "127.0.0.2", "--source-address", "127.0.0.3"]).expect_code(0);
    let order: Vec<i32> = s.log().iter().map(|(pid, _, _)| *pid).collect();
    let mut runs = order.clone();
    runs.dedup();
    let distinct: BTreeSet<i32> = order.iter().copied().collect();
    assert_eq!(runs.len(), distinct.len(), "each worker's extractions come in one run: {:?}", s.log());
    // The test source saw each clip's page from the egress its worker keeps.
    let stats = server.stats();
    assert!(stats.ips.contains_key("127.0.0.2") && stats.ips.contains_key("127.0.0.3"), "{:?}", stats.ips.keys());
}

/// The distinct workers (pids) that served a run's extractions.
fn workers(s: &Scripted) -> BTreeSet<i32> {
    s.log().iter().map(|(pid, _, _)| *pid).collect()
}

#[test]
fn a_pool_grows_with_its_extractions_not_with_the_slots() {
    let source = server(config());
    // Quick extractions: a worker that finishes one serves the next request sooner than a new worker could
    // start, so four slots share one or two workers (the first is the one that answered the run's ping).
    let rows = real_rows(70, 8);
    let s = scripted(&rows, &json!({}));
    let o = s.run(&source, &["-j", "4", "-v"]);
    o.expect_code(0);
    assert_eq!(s.log().len(), rows.len(), "{:?}", s.log());
    let quick = workers(&s);
    assert!(quick.len() <= 2, "4 slots, quick extractions: {quick:?}\n{}", o.stderr);
    // "yt-dlp API workers ended started=N lost=0", its colors taken out.
    let ended = o.stderr.lines().find(|l| l.contains("yt-dlp API workers ended")).unwrap_or_default();
    let mut plain = String::new();
    let mut chars = ended.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => _ = chars.by_ref().find(char::is_ascii_alphabetic),
            c => plain.push(c),
        }
    }
    let want = format!("started={} lost=0", quick.len());
    assert!(plain.ends_with(&want), "every worker started served, the ping's too: {plain:?}");
    // Slow extractions (6 s each): a request that has waited as long as a worker takes to start starts one.
    let rows = real_rows(80, 3);
    let slow: serde_json::Map<String, serde_json::Value> =
        rows.iter().map(|r| (r.id.clone(), json!({"slow": 6}))).collect();
    let s = scripted(&rows, &serde_json::Value::Object(slow));
    s.run(&source, &["-j", "3"]).expect_code(0);
    for row in &rows {
        assert_clip(&s.out, row);
    }
    assert!(workers(&s).len() >= 2, "3 slots, slow extractions: {:?}", s.log());
}

#[test]
fn an_extraction_s_429_holds_its_egress_at_once_not_when_yt_dlp_gives_up() {
    // More than 30 requests in a minute bans an address for 4 s, answered 429 with Retry-After.
    a_ban_met_in_a_worker(config().with_ip_throttle(30, 60.0, 4.0), true);
}

/// As YouTube's watch page mostly does, the 429 says no Retry-After: the egress is held all the same until the
/// breaker hears of the ban (`UNSAID_HOLD`), in its workers too. The ban is shorter than the time the
/// extraction takes to fail, so that nothing but what the hold keeps back could meet it.
#[test]
fn a_429_without_retry_after_holds_its_egress_until_the_breaker_hears_of_it() {
    a_ban_met_in_a_worker(config().with_ip_throttle(30, 60.0, 0.8).without_retry_after(), false);
}

/// One clip's extraction brings a ban while another's is in its worker's hands: nothing but the first
/// request meets it.
#[track_caller]
fn a_ban_met_in_a_worker(config: kinetics_testsrc::Config, retry_after: bool) {
    let source = server(config);
    let rows = real_rows(90, 4);
    // The run's first extraction brings a ban once another has begun, asks its host twice more (as yt-dlp's
    // YouTube extractor goes on to its player requests), and takes 3 s more to fail: the other clips'
    // extractions and media requests would go into the ban meanwhile. Those send nothing before the ban.
    let script: serde_json::Map<String, serde_json::Value> =
        rows.iter().map(|r| (r.id.clone(), json!({"ban_first": 3, "again": 2, "with": 1}))).collect();
    let s = scripted(&rows, &serde_json::Value::Object(script));
    let o = s.run(&source, &["-j", "2", "--no-learned-rate", "-vv"]);
    o.expect_code(0);
    for row in &rows {
        assert_clip(&s.out, row);
    }
    assert!(o.stderr.contains("the extraction met a 429"), "the worker told of the 429:\n{}", o.stderr);
    // The worker told of the 429 the moment yt-dlp met it, and the egress held every other request until the
    // ban's Retry-After was over: none met the ban once its first 429 could be back (another clip's media
    // request already on its way may, as in tests/throttle.rs). The extraction's own later requests to the
    // host were not sent at all: it met the ban once.
    let stats = source.stats();
    let mut met: Vec<_> = stats.log.iter().filter(|e| e.status == 429).collect();
    met.sort_by_key(|e| e.time_ms);
    let shown: Vec<_> = met.iter().map(|e| (e.time_ms, e.id.as_deref(), &e.path, e.range.as_deref())).collect();
    let first = met.first().expect("the plugin brought a ban");
    let banner = std::fs::read_to_string(s.state.join("banned")).expect("the plugin says whose extraction brought it");
    let own = met.iter().filter(|e| e.id.as_deref() == Some(banner.as_str())).count();
    assert_eq!(own, 1, "the extraction that brought the ban sent into it again: {shown:#?}\n{}", o.stderr);
    let late: Vec<_> = met.iter().filter(|e| e.time_ms > first.time_ms + IN_FLIGHT_MS).collect();
    assert!(late.is_empty(), "requests went into the ban after its 429 was told: {shown:#?}\n{}", o.stderr);
    // The other clips' extractions were in their workers' hands when the ban began (they waited for it in
    // the plugin): their workers read the egress's hold and sent nothing into the ban, however soon after
    // it they asked; those clips waited for the probe, uncharged.
    let others: Vec<_> = met.iter().filter(|e| e.range.is_none() && e.id.as_deref() != Some(banner.as_str())).collect();
    assert!(others.is_empty(), "another clip's extraction went into the ban: {shown:#?}\n{}", o.stderr);
    assert!(o.stderr.contains("the extraction waits out its egress's hold"), "{}", o.stderr);
    assert!(journal_clips(&s.out).iter().all(|c| c.attempts == 1), "a clip held by its worker was charged");
    // The breaker cooled the egress off for the ban's Retry-After (4 s), which the worker told, not for the
    // `--cooldown` (1 s) alone: its probe did not go into the ban.
    let cooloffs: Vec<f64> = throttle_events(&s.out).iter().filter_map(|e| e.cooloff_s).collect();
    let least = if retry_after { 4.0 } else { 1.0 };
    assert!(!cooloffs.is_empty() && cooloffs.iter().all(|c| *c >= least), "cool-offs {cooloffs:?}\n{}", o.stderr);
    // The hold's file goes with the run.
    let left: Vec<_> =
        std::fs::read_dir(s.out.join(".kinetics-dl").join("tmp")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "temp space after the run: {left:?}");
}

/// The rate an egress learns at a ban is cut from what the host saw it send. Each extraction asks for its
/// watch page and then, 0.4 s later, for the page again (as YouTube's asks for its player); six clips start
/// at once, and those the egress's yt-dlp worker has not taken yet wait for it, or for a second worker to
/// start and set up, having had their turn. Counted from their turn (or from the moment they had a worker),
/// such clips made the rate the budget benchmark's egresses learned at their first ban up to a third higher
/// than what went, and two of three were banned again.
#[test]
fn the_rate_learned_at_a_ban_counts_only_requests_that_went() {
    // More than 10 requests in 10 s bans an address for 3 s, answered 429 with Retry-After.
    let source = server(config().with_ip_throttle(10, 10.0, 3.0));
    let rows = real_rows(100, 6);
    let script: serde_json::Map<String, serde_json::Value> =
        rows.iter().map(|r| (r.id.clone(), json!({"page_first": 0.4}))).collect();
    let s = scripted(&rows, &serde_json::Value::Object(script));
    let o = s.run(&source, &["-j", "6"]);
    o.expect_code(0);
    for row in &rows {
        assert_clip(&s.out, row);
    }
    // The note the ban's breaker gave: "...; its requests now R/min (it sent N in S s)".
    let note = o.stderr.lines().find(|l| l.contains("its requests now")).unwrap_or_else(|| {
        panic!("the host banned after 11 requests, which teaches a rate:\n{}", o.stderr);
    });
    let counted: usize = note
        .split("(it sent ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {note:?}"));
    // What the host saw until the breaker opened (after that, only the probe goes).
    let opened = throttle_events(&s.out).into_iter().find(|e| e.cooloff_s.is_some()).expect("a breaker opened");
    let stats = source.stats();
    let seen: Vec<_> = video_log(&stats)
        .into_iter()
        .filter(|e| e.time_ms as i64 <= opened.at_ms)
        .map(|e| (e.time_ms, e.status, e.id.unwrap_or_default(), e.path, e.range))
        .collect();
    assert!(
        counted >= 4 && counted <= seen.len(),
        "{note:?}: the host saw {} by {}: {seen:#?}",
        seen.len(),
        opened.at_ms
    );
}

#[test]
fn workers_die_with_kinetics_dl() {
    let rows = real_rows(40, 1);
    let s = scripted(&rows, &json!({&rows[0].id: "hang_once"}));
    let server = server(config());
    let mut running = Running::start(s.command(&server, &[]));
    running.wait_for(Duration::from_secs(120), "the worker to hang", || !s.log().is_empty());
    let worker = s.log()[0].0;
    let proc = still_running(worker).expect("the hung worker runs");
    assert!(proc.cmdline.contains("kinetics-dl-extractor"), "{proc:?}");
    assert_eq!(proc.ppid, running.pid(), "a child of kinetics-dl");
    running.signal(libc::SIGKILL);
    assert_all_end(&[proc], Duration::from_secs(30), "the worker of a killed kinetics-dl");
    let _ = running.wait(Duration::from_secs(30));
}

#[test]
fn a_program_that_is_not_python_runs_as_a_command_line_and_doctor_checks_the_api() {
    let rows = real_rows(50, 2);
    let s = scripted(&rows, &json!({}));
    let server = server(config());
    let wrapper = write_script(s.state.parent().unwrap(), "wrapped-yt-dlp", "exec yt-dlp \"$@\"");
    let o = s.run(&server, &["--ytdlp", wrapper.to_str().unwrap(), "-v"]);
    o.expect_code(0);
    assert!(o.stderr.contains("is not a Python script"), "{}", o.stderr);
    // The run records the mode it used, and why the API could not serve.
    let modes = recorded_modes(&s.out);
    assert!(
        modes.len() == 1 && modes[0].starts_with("cli (api: ") && modes[0].contains("is not a Python script"),
        "{modes:?}"
    );
    let pids: BTreeSet<i32> = s.log().iter().map(|(pid, _, _)| *pid).collect();
    assert_eq!(pids.len(), 2, "one process an extraction: {:?}", s.log());

    let o = run_strs(&["doctor"]);
    assert!(o.stdout.contains("yt-dlp API") && o.stdout.contains("answers"), "{}", o.stdout);
    let bad: Vec<OsString> = vec!["doctor".into(), "--ytdlp-python".into(), "/nonexistent/python3".into()];
    let o = run(&bad);
    assert!(o.stdout.contains("yt-dlp API") && o.stdout.contains("/nonexistent/python3"), "{}", o.stdout);
}

/// An extraction in an API worker says how many HTTP requests yt-dlp made for it (the egress's pacing books
/// that many, `Gate::extracted`), and, asked to, tells each as it goes (`Gate::went`): as many as the test
/// source saw. The command line does not say.
#[tokio::test]
async fn an_extraction_in_a_worker_counts_the_requests_it_made() {
    use kinetics_dl::tools::extractor::{find_python, Limits, Note, Pools};
    use kinetics_dl::tools::ytdlp::{EgressArgs, YtDlp};
    let server = server(config());
    let id = &real_rows(40, 1)[0].id;
    let python = find_python(Path::new("yt-dlp"), std::env::var_os("PATH").as_deref()).expect("yt-dlp's Python");
    let limits = Limits { timeout: Duration::from_secs(60), recycle_after: 10, max_idle: 1 };
    let pools = std::sync::Arc::new(Pools::new(python, limits));
    let (_stop_tx, mut stop) = tokio::sync::watch::channel(false);
    for api in [Some(pools.clone()), None] {
        let ytdlp = YtDlp { api: api.clone(), ..YtDlp::new("yt-dlp") };
        let before = server.stats().log.len();
        let info = ytdlp.extract(&server.watch_url(id), &EgressArgs::default(), false, &mut stop).await.unwrap();
        let seen = (server.stats().log.len() - before) as u32;
        assert!(seen >= 1 && !info.streams.is_empty(), "{seen} requests, {info:?}");
        let want = api.is_some().then_some(seen);
        assert_eq!(info.extract_requests, want, "api: {}", api.is_some());
    }
    // Asked to, the worker tells each request as it goes (its egress counts it as sent then): as many as the
    // source saw.
    let ytdlp = YtDlp { api: Some(pools.clone()), ..YtDlp::new("yt-dlp") };
    let (url, egress) = (server.watch_url(id), EgressArgs::default());
    let told = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut claim = ytdlp.reserve(&url, &egress, &mut stop).await.unwrap().expect("the API path claims a worker");
    let tell = told.clone();
    claim.on_note(move |note| {
        if note == Note::Sending {
            tell.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let before = server.stats().log.len();
    let info = ytdlp.extract_in(&url, &egress, false, Some(&mut claim), &mut stop).await.unwrap();
    let seen = (server.stats().log.len() - before) as u32;
    let told = told.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!((told, info.extract_requests), (seen, Some(seen)));
    drop(claim);
    pools.shutdown().await;
}

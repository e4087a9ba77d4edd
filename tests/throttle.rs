//! End-to-end tests of throttle handling (issue 3): per-egress breakers against 429 bans and bot checks,
//! one probe after each cool-off, breakers kept across runs, `--max-wait`, and `--no-breaker` to compare.
//!
//! The test source bans a client IP for a while after too many `/v/` requests; 127.0.0.2, .3, ... are
//! distinct client IPs on loopback. The assertions hold the server's request log (what reached the stand-in
//! for YouTube, and when) against the journal's throttle events, breakers and attempts; they never measure
//! how long anything took.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kinetics_testsrc::{Behaviour, Config, LogEntry, Stats, TestServer};

/// Length of the served video: short to encode, long enough for real 10 s windows.
const VIDEO: f64 = 40.0;
const EGRESS: &str = "127.0.0.2";
/// The window of the test source's per-IP count: longer than any run, so only bans reset it. 60 s was not:
/// on a loaded 2-core machine a run of nine clips took four minutes, its counts decayed and no ban came.
const WINDOW_SECS: f64 = 900.0;
/// Video requests an IP may make before a ban. On the default path a clip takes 5 (yt-dlp's watch page, then
/// for each DASH track the relay's header read and the window planned from the index; 8-10 before the first
/// read was sized and the page listed every format): 9 lets a probe and about one more clip through after
/// each ban, and every run of six clips or more meets several bans, most of them mid-transfer.
const LIMIT: u32 = 9;
/// yt-dlp's answer when YouTube wants proof of a human (note the typographic apostrophe).
const BOT_CHECK: &str = "ERROR: [youtube] abcdefghijk: Sign in to confirm you\u{2019}re not a bot. Use --cookies-from-browser or --cookies for the authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies  for tips on effectively exporting YouTube cookies";
/// Slack for the journal's and the scripts' millisecond clocks around an instant the scheduler computed.
const CLOCK_SLACK_MS: i64 = 50;

/// The host of [`throttled`] counts requests over [`WINDOW_SECS`], longer than any run: a quota, which no
/// request rate avoids, so a learned rate would only halve with every ban and slow the run (it has its own
/// tests, against a host that limits the rate). The breaker's tests against it pace by `--rate` alone.
const QUOTA: &str = "--no-learned-rate";

/// A 40 s video whose server bans an IP for `ban_secs` after more than `max_requests` video requests.
fn throttled(max_requests: u32, ban_secs: f64) -> Config {
    Config::for_tests().with_duration(VIDEO).with_ip_throttle(max_requests, WINDOW_SECS, ban_secs)
}

/// `n` real K400 rows (one per id, after skipping `skip`) whose window lies inside the 40 s video.
fn short_rows(skip: usize, n: usize) -> Vec<Row> {
    let rows: Vec<Row> = real_rows(0, 400).into_iter().filter(|r| r.end <= VIDEO).skip(skip).take(n).collect();
    assert_eq!(rows.len(), n, "the real file has enough rows inside {VIDEO} s");
    rows
}

/// A temp dir, OUT inside it, and an annotation file with `rows`.
struct Setup {
    tmp: tempfile::TempDir,
    out: PathBuf,
    csv: PathBuf,
}

fn setup(rows: &[Row]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, rows);
    Setup { tmp, out, csv }
}

/// `download` through `egresses` with `-j jobs`, immediate retries and second-scale cool-offs by default;
/// `extra` comes last (later settings of the same option are not allowed, so `extra` adds, never repeats).
fn download(server: &TestServer, s: &Setup, jobs: usize, egresses: &[&str], extra: &[&str]) -> Vec<OsString> {
    let mut args = os(["download", "--out"]);
    args.push(s.out.clone().into());
    args.push("--annotations".into());
    args.push(s.csv.clone().into());
    args.extend(os(["--url-template", &server.watch_url_template(), "--retry-delay", "0s", "-j", &jobs.to_string()]));
    for e in egresses {
        args.extend(os(["--source-address", e]));
    }
    args.extend(extra.iter().map(OsString::from));
    args
}

// ---- the journal, read-only -------------------------------------------------------------------------

/// `(egress, open_until_ms, cooloff_ms)` of every saved breaker.
fn egress_states(out: &Path) -> Vec<(String, Option<i64>, i64)> {
    let conn = open_journal(out).expect("the journal opens");
    let mut stmt = conn.prepare("SELECT egress, open_until_ms, cooloff_ms FROM egress_state ORDER BY egress").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    rows.collect::<Result<_, _>>().expect("egress_state rows")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---- common verdicts --------------------------------------------------------------------------------

/// Every row is a done clip on disk with the right frames, nothing failed, and `failed.csv` is empty.
#[track_caller]
fn assert_all_done(out: &Path, rows: &[Row]) {
    let clips = journal_clips(out);
    assert_eq!(clips.len(), rows.len());
    let not_done: Vec<_> = clips.iter().filter(|c| c.state != "done").collect();
    assert!(not_done.is_empty(), "clips not done: {not_done:#?}");
    for row in rows {
        let path = out.join(row.rel_path());
        assert!(path.is_file(), "{} is missing", path.display());
        assert_eq!(frames(&path), expected_frames(row.start, row.end), "{}: first and last frame", row.id);
    }
    let failed = read_csv(&out.join("failed.csv"));
    assert!(failed.rows.is_empty(), "failed.csv lists clips: {:?}", failed.rows);
}

/// Throttles never count as attempts: every clip was fetched by its first counted attempt, and every
/// attempt that did not end done was a throttle signal, not a retried or failed one.
#[track_caller]
fn assert_throttles_left_attempts_alone(out: &Path, category: &str) {
    for c in journal_clips(out) {
        if c.attempts != 1 {
            let conn = open_journal(out).expect("the journal opens");
            let mut stmt = conn
                .prepare("SELECT outcome || ' ' || COALESCE(category, '') || ': ' || COALESCE(message, '') FROM attempts WHERE clip_id = ?1")
                .unwrap();
            let tried: Vec<String> = stmt.query_map([c.id], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
            panic!("{}: throttles must not use up attempts ({} used): {tried:#?}", c.youtube_id, c.attempts);
        }
    }
    // A clip whose requests were held while its egress was banned, past their bound, went back with nothing
    // sent: `held`, uncharged.
    let held = |a: &AttemptRow| a.outcome == "held" && a.category.as_deref() == Some("rate_limited");
    let other: Vec<_> = attempts(out)
        .into_iter()
        .filter(|a| {
            a.outcome != "done" && !held(a) && (a.outcome != "throttled" || a.category.as_deref() != Some(category))
        })
        .collect();
    assert!(other.is_empty(), "attempts that were neither done, held nor `{category}` throttles: {other:#?}");
}

/// The id a video request (page, manifest or media) is for.
fn id_of(e: &LogEntry) -> &str {
    e.id.as_deref().unwrap_or_default()
}

/// yt-dlp's GET of the watch page, which starts every attempt at a clip.
fn is_clip_start(e: &LogEntry) -> bool {
    e.path == "/watch"
}

/// One ban of one IP, as the log shows it.
#[derive(Debug)]
struct Ban {
    ip: String,
    /// The request that went over the limit: the first 429.
    trigger: LogEntry,
    /// Later requests answered 429 inside the ban.
    into: Vec<LogEntry>,
}

/// The bans the server handed out, from the log (the ban clock runs from the trigger).
fn bans(stats: &Stats, ban_secs: f64) -> Vec<Ban> {
    let ban_ms = (ban_secs * 1000.0) as u64;
    let mut bans: Vec<Ban> = Vec::new();
    for e in video_log(stats).into_iter().filter(|e| e.status == 429) {
        match bans.iter_mut().rev().find(|b| b.ip == e.ip) {
            Some(b) if e.time_ms < b.trigger.time_ms + ban_ms => b.into.push(e),
            _ => bans.push(Ban { ip: e.ip.clone(), trigger: e, into: Vec::new() }),
        }
    }
    bans
}

/// What led to `ban` and what came of it, for a failure's message: the IP's video requests from 3 s before
/// it to its end, the journal's attempts and throttle events of that time through that IP.
fn around_ban(out: &Path, stats: &Stats, ban: &Ban, ban_secs: f64) -> String {
    let (from, to) = (ban.trigger.time_ms.saturating_sub(3000), ban.trigger.time_ms + (ban_secs * 1000.0) as u64);
    let requests: Vec<String> = video_log(stats)
        .iter()
        .filter(|e| e.ip == ban.ip && (from..=to).contains(&e.time_ms))
        .map(|e| format!("{} {} {} {} {}", e.time_ms, e.status, id_of(e), e.path, e.range.as_deref().unwrap_or("-")))
        .collect();
    let tried: Vec<String> = attempts(out)
        .iter()
        .filter(|a| a.egress == ban.ip && a.finished_ms >= from as i64 && a.started_ms <= to as i64)
        .map(|a| format!("{}..{} {} {} {:?}", a.started_ms, a.finished_ms, a.youtube_id, a.outcome, a.category))
        .collect();
    let events: Vec<String> = throttle_events(out)
        .iter()
        .filter(|e| e.egress == ban.ip && (from as i64..=to as i64).contains(&e.at_ms))
        .map(|e| format!("{} {} cool-off {:?} wasted {}", e.at_ms, e.category, e.cooloff_s, e.wasted))
        .collect();
    format!(
        "requests from 3 s before the ban to its end (ms, status, id, path, range):\n{}\n\
         attempts then (started..finished, id, outcome, category):\n{}\n\
         throttle events then (ms, category, cool-off, wasted):\n{}",
        requests.join("\n"),
        tried.join("\n"),
        events.join("\n"),
    )
}

/// Clip starts (yt-dlp GETs) sent into each ban: at most the jobs that started before the signal reached
/// the scheduler (`jobs - 1` slots can free up meanwhile) plus one probe. The cool-offs these tests use
/// (base ≥ 1.5 s with jitter, then ≥ 3 s) leave room for a single probe inside a ban of at most 4 s.
/// On failure it prints what led to the ban: the IP's video requests around it, the journal's attempts and
/// throttle events of that time.
#[track_caller]
fn assert_no_stampede(out: &Path, stats: &Stats, ban_secs: f64, jobs: usize) {
    for ban in bans(stats, ban_secs) {
        let starts: Vec<String> =
            ban.into.iter().filter(|e| is_clip_start(e)).map(|e| format!("{} {}", e.time_ms, id_of(e))).collect();
        if starts.len() <= jobs {
            continue;
        }
        panic!(
            "{}: {} new clips were started into the ban that began at {} ({}); at most {jobs} may \
             (clips started before the signal was seen, plus one probe):\n{}\n\
             {}",
            ban.ip,
            starts.len(),
            ban.trigger.time_ms,
            id_of(&ban.trigger),
            starts.join("\n"),
            around_ban(out, stats, &ban, ban_secs),
        );
    }
}

/// A 429 is the server saying "stop": nothing asks it again for the same bytes during the ban (the relay
/// must hand the signal back to the breaker instead of retrying it).
#[track_caller]
fn assert_no_repeats_into_bans(stats: &Stats, ban_secs: f64) {
    for ban in bans(stats, ban_secs) {
        let mut seen = std::collections::BTreeMap::<(String, String), u32>::new();
        for e in std::iter::once(&ban.trigger).chain(&ban.into) {
            if let Some(range) = &e.range {
                *seen.entry((e.path.clone(), range.clone())).or_default() += 1;
            }
        }
        let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "{}: the same range was requested again into the ban that began at {} (path, range, times): \
             {repeated:?}\nthe ban's requests: {:#?}",
            ban.ip,
            ban.trigger.time_ms,
            std::iter::once(&ban.trigger).chain(&ban.into).map(|e| (e.time_ms, &e.path, &e.range)).collect::<Vec<_>>()
        );
    }
}

/// A 429 from the media server carries `Retry-After` (the ban's remaining seconds, rounded up): when the
/// job that opened a breaker met such a 429 through the relay, the probe waits until the ban is over
/// instead of going at `--cooldown` into the ban and doubling the next cool-off.
#[track_caller]
fn assert_cooloffs_honour_retry_after(out: &Path, stats: &Stats, ban_secs: f64) -> usize {
    let log = video_log(stats);
    let bans = bans(stats, ban_secs);
    let attempts = attempts(out);
    let mut checked = 0;
    for event in throttle_events(out) {
        let Some(reopens) = event.reopens_ms() else { continue };
        let job = attempts.iter().find(|a| {
            a.outcome == "throttled" && a.egress == event.egress && (a.finished_ms - event.at_ms).abs() <= 1000
        });
        let Some(job) = job else { continue };
        let relay_429 = log.iter().find(|e| {
            e.status == 429
                && e.range.is_some()
                && id_of(e) == job.youtube_id
                && (job.started_ms..=job.finished_ms).contains(&(e.time_ms as i64))
        });
        let Some(answer) = relay_429 else { continue };
        let ban = bans.iter().rev().find(|b| b.ip == answer.ip && b.trigger.time_ms <= answer.time_ms).expect("a ban");
        let ban_end = ban.trigger.time_ms as i64 + (ban_secs * 1000.0) as i64;
        assert!(
            reopens >= ban_end - CLOCK_SLACK_MS,
            "{event:?} reopens at {reopens}, before the ban that began at {} ends at {ban_end}",
            ban.trigger.time_ms
        );
        checked += 1;
    }
    checked
}

/// After each breaker opened: nothing new starts through the egress until the cool-off is over (beyond
/// `race_ms`, for a job the scheduler spawned just before it saw the signal), then exactly one probe, and
/// nothing else through that egress until the probe has come back. A cool-off without a probe must be the
/// last of its egress in its run (the work was done before it ended). Returns the probes checked.
#[track_caller]
fn assert_one_probe_per_cooloff(out: &Path, race_ms: i64) -> usize {
    let attempts = attempts(out);
    let events = throttle_events(out);
    let mut probes = 0;
    for event in &events {
        let Some(reopens) = event.reopens_ms() else { continue };
        let lane: Vec<&AttemptRow> =
            attempts.iter().filter(|a| a.egress == event.egress && a.run_id == event.run_id).collect();
        let early: Vec<_> = lane
            .iter()
            .filter(|a| a.started_ms > event.at_ms + race_ms && a.started_ms < reopens - CLOCK_SLACK_MS)
            .collect();
        assert!(early.is_empty(), "started while {} was cooling ({event:?}): {early:#?}", event.egress);
        let Some(probe) = lane.iter().find(|a| a.started_ms >= reopens - CLOCK_SLACK_MS) else {
            let later: Vec<_> = events
                .iter()
                .filter(|e| e.egress == event.egress && e.run_id == event.run_id && e.at_ms > event.at_ms)
                .collect();
            assert!(later.is_empty(), "{event:?} had no probe, yet the egress met more signals: {later:#?}");
            continue;
        };
        probes += 1;
        let beside: Vec<_> = lane
            .iter()
            .filter(|a| a.started_ms >= probe.started_ms && a.started_ms < probe.finished_ms)
            .filter(|a| !std::ptr::eq(**a, *probe))
            .collect();
        assert!(
            beside.is_empty(),
            "{}: while the probe {probe:?} (after {event:?}) was out, more clips started: {beside:#?}",
            event.egress
        );
    }
    probes
}

/// Lines `MS EVENT ID` that a stand-in tool appended to `path`.
fn tool_log(path: &Path) -> Vec<(i64, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let ms = parts.next().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("bad log line `{l}`"));
            (ms, parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned())
        })
        .collect()
}

// ---- the tests ---------------------------------------------------------------------------------------

#[test]
fn one_throttled_egress_finishes_every_clip() {
    let rows = short_rows(0, 8);
    let s = setup(&rows);
    // Eight clips make ~50 requests: the IP is banned for 4 s several times over the run.
    let ban_secs = 4.0;
    let server = server(throttled(LIMIT, ban_secs));
    let o = run(&download(&server, &s, 2, &[EGRESS], &["--cooldown", "2s", QUOTA]));
    o.expect_code(0);

    assert_all_done(&s.out, &rows);
    assert_throttles_left_attempts_alone(&s.out, "rate_limited");
    let events = throttle_events(&s.out);
    assert!(!events.is_empty(), "the server banned {EGRESS}, so the journal has throttle events");
    assert!(events.iter().all(|e| e.egress == EGRESS && e.category == "rate_limited"), "{events:#?}");
    let stats = server.stats();
    assert!(stats.ip(EGRESS).count_429 > 0, "the test must actually throttle: {:?}", stats.ip(EGRESS));
    assert_eq!(stats.ips.keys().collect::<Vec<_>>(), vec![EGRESS], "every request left through the egress");
    assert_no_stampede(&s.out, &stats, ban_secs, 2);
    assert!(bans(&stats, ban_secs).iter().any(|b| b.trigger.range.is_some()), "no ban began mid-transfer");

    let status = status_json(&s.out);
    let egresses = status["egresses"].as_array().expect("status lists egresses");
    assert_eq!(egresses.len(), 1, "{status:#}");
    assert_eq!(egresses[0]["egress"], EGRESS);
    assert_eq!(egresses[0]["throttle_events"].as_u64(), Some(events.len() as u64), "{status:#}");
    // Requests into bans, counted by kinetics-dl, are exactly the requests the source answered 429.
    let wasted: u64 = events.iter().map(|e| e.wasted).sum();
    assert_eq!(egresses[0]["wasted"].as_u64(), Some(wasted), "{status:#}");
    assert_eq!(wasted, stats.ip(EGRESS).count_429, "{events:#?}");
    assert!(events.iter().all(|e| e.wasted >= 1), "{events:#?}");
    assert!(egresses[0]["open_until"].is_null(), "the last probe closed the breaker: {status:#}");
    assert_no_repeats_into_bans(&stats, ban_secs);
    // The cool-off (2 s) is shorter than the ban (4 s): bans the relay met are waited out in full.
    let from_relay = assert_cooloffs_honour_retry_after(&s.out, &stats, ban_secs);
    assert!(from_relay > 0, "no breaker was opened by a 429 the relay met: {events:#?}");
}

#[test]
fn a_banned_egress_gets_one_probe_per_cooloff() {
    let rows = short_rows(8, 7);
    let s = setup(&rows);
    let ban_secs = 3.0;
    let jobs = 3;
    let server = server(throttled(LIMIT, ban_secs));
    let o = run(&download(&server, &s, jobs, &[EGRESS], &["--cooldown", "2s", QUOTA]));
    o.expect_code(0);
    assert_all_done(&s.out, &rows);

    let stats = server.stats();
    let bans = bans(&stats, ban_secs);
    assert!(!bans.is_empty(), "the server never banned {EGRESS}");
    assert_no_stampede(&s.out, &stats, ban_secs, jobs);
    let opened = throttle_events(&s.out).iter().filter(|e| e.cooloff_s.is_some()).count();
    assert!(opened >= 1, "the breaker opened at least once");
    let probes = assert_one_probe_per_cooloff(&s.out, 500);
    assert!(probes >= 1, "no cool-off was followed by a probe: nothing was checked");
}

#[test]
fn three_egresses_share_the_work_under_bans() {
    let rows = short_rows(15, 9);
    let s = setup(&rows);
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let ban_secs = 4.0;
    let server = server(throttled(LIMIT, ban_secs));
    let o = run(&download(&server, &s, 3, &ips, &["--cooldown", "2s", QUOTA]));
    o.expect_code(0);
    assert_all_done(&s.out, &rows);
    assert_throttles_left_attempts_alone(&s.out, "rate_limited");

    let stats = server.stats();
    let log = video_log(&stats);
    let seen: Vec<&String> = stats.ips.keys().collect();
    assert_eq!(seen, ips.iter().collect::<Vec<_>>(), "requests came from exactly the three egresses");
    let done: Vec<AttemptRow> = attempts(&s.out).into_iter().filter(|a| a.outcome == "done").collect();
    for ip in ips {
        let mine: Vec<&AttemptRow> = done.iter().filter(|a| a.egress == ip).collect();
        assert!(!mine.is_empty(), "{ip} carried no done clip: {done:#?}");
    }
    // A media URL belongs to the IP that extracted it: yt-dlp and the relay leave through the same egress.
    for a in &done {
        let during: Vec<&LogEntry> = log
            .iter()
            .filter(|e| id_of(e) == a.youtube_id)
            .filter(|e| (a.started_ms..=a.finished_ms).contains(&(e.time_ms as i64)))
            .collect();
        assert!(during.iter().any(|e| is_clip_start(e)), "no yt-dlp request for {a:?}");
        assert!(during.iter().any(|e| !is_clip_start(e)), "no media request for {a:?}");
        let strays: Vec<_> = during.iter().filter(|e| e.ip != a.egress).collect();
        assert!(strays.is_empty(), "requests of {a:?} from another address: {strays:#?}");
        assert!(during.iter().all(|e| e.status < 400), "a done attempt got errors: {during:#?}");
    }
    assert!(stats.ips.values().any(|i| i.count_429 > 0), "the test must actually throttle: {:?}", stats.ips);
    assert_no_stampede(&s.out, &stats, ban_secs, 3);
}

#[test]
fn a_rerun_keeps_the_cooling_egress_closed_until_its_saved_time() {
    let rows = short_rows(24, 6);
    let s = setup(&rows);
    let server = server(throttled(LIMIT, 5.0));
    let args = download(&server, &s, 2, &[EGRESS], &["--cooldown", "10s", QUOTA]);

    let first = Running::download(&args);
    wait_until(RUN_LIMIT, "a breaker to open", || {
        try_throttle_events(&s.out).is_ok_and(|e| e.iter().any(|e| e.cooloff_s.is_some()))
    });
    first.signal(libc::SIGINT);
    first.wait(Duration::from_secs(120)).expect_code(130);

    let states = egress_states(&s.out);
    assert_eq!(states.len(), 1, "{states:?}");
    let (egress, open_until, cooloff_ms) = states[0].clone();
    assert_eq!(egress, EGRESS);
    let open_until = open_until.expect("the interrupted run saved the open breaker");
    assert!(cooloff_ms >= 10_000, "the saved cool-off is the one in force: {cooloff_ms} ms");
    let status = status_json(&s.out);
    assert!(status["egresses"][0]["open_until"].is_string(), "status shows the cool-off: {status:#}");
    assert!(journal_clips(&s.out).iter().any(|c| c.state == "pending"), "the interrupted run left work");

    let rerun_ms = now_ms();
    let before = video_log(&server.stats()).len();
    assert!(
        rerun_ms < open_until,
        "the test needs the rerun to begin while the saved cool-off runs (it ends at {open_until}, now {rerun_ms})"
    );
    let second = run(&args);
    second.expect_code(0);
    assert_all_done(&s.out, &rows);

    let log = video_log(&server.stats());
    assert!(log.len() > before, "the rerun fetched something");
    let early: Vec<&LogEntry> = log
        .iter()
        .filter(|e| e.ip == EGRESS && (e.time_ms as i64) >= rerun_ms && (e.time_ms as i64) < open_until)
        .collect();
    assert!(early.is_empty(), "the rerun used {EGRESS} before its saved cool-off ended at {open_until}: {early:#?}");
}

#[test]
fn cooloffs_longer_than_max_wait_end_the_run_with_a_rerun_time() {
    let rows = short_rows(30, 4);
    let s = setup(&rows);
    // The fourth request (during the first clips) starts a ban longer than the whole test.
    let server = server(throttled(3, 60.0));
    let args = download(&server, &s, 2, &[EGRESS], &["--cooldown", "30s", "--max-wait", "1s"]);
    let o = run(&args);
    o.expect_code(3);

    let (_, after) = o.stderr.split_once("rerun after ").unwrap_or_else(|| panic!("no rerun time:\n{}", o.stderr));
    let at = after.split_whitespace().next().unwrap_or_default();
    let at_ms = humantime::parse_rfc3339(at)
        .unwrap_or_else(|e| panic!("`{at}` is not an RFC 3339 time ({e})"))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let states = egress_states(&s.out);
    let open_until = states[0].1.expect("the breaker is saved open");
    // The time is printed in whole seconds: it may only round down.
    assert!(
        (-50..1_100).contains(&(open_until - at_ms)),
        "`rerun after {at}` is when the breaker reopens ({open_until}): {states:?}"
    );

    let clips = journal_clips(&s.out);
    assert!(clips.iter().all(|c| c.state != "failed"), "nothing failed for a ban: {clips:#?}");
    assert!(clips.iter().any(|c| c.state == "pending"), "clips wait for the rerun: {clips:#?}");
    assert!(read_csv(&s.out.join("failed.csv")).rows.is_empty());
    let status = status_json(&s.out);
    assert_eq!(status["failed"].as_object().map(|f| f.len()), Some(0), "{status:#}");
    assert!(status["egresses"][0]["open_until"].is_string(), "{status:#}");

    // A rerun inside the cool-off sends nothing and says the same.
    let requests = server.stats().total_requests;
    let again = run(&args);
    again.expect_code(3);
    assert!(again.stderr.contains("rerun after"), "{}", again.stderr);
    assert_eq!(server.stats().total_requests, requests, "the rerun stays away from the banned egress");
}

#[test]
fn the_breaker_sends_fewer_requests_into_bans_than_no_breaker() {
    // As many requests as six clips made at 8-10 each, against the limit they met then: 11 clips of 5.
    let rows = short_rows(34, 11);
    let ban_secs = 4.0;
    let with = setup(&rows);
    let with_server = server(throttled(16, ban_secs));
    run(&download(&with_server, &with, 2, &[EGRESS], &["--cooldown", "2s", QUOTA])).expect_code(0);
    assert_all_done(&with.out, &rows);

    let without = setup(&rows);
    let without_server = server(throttled(16, ban_secs));
    let o = run(&download(&without_server, &without, 2, &[EGRESS], &["--cooldown", "2s", "--no-breaker"]));
    assert!(matches!(o.code, Some(0 | 3)), "{o:?}");
    // Without breakers a throttle is an ordinary passing failure: retried, then failed as `rate_limited`.
    let failed: Vec<_> = journal_clips(&without.out).into_iter().filter(|c| c.state == "failed").collect();
    assert!(failed.iter().all(|c| c.category.as_deref() == Some("rate_limited")), "{failed:#?}");

    let (a, b) = (with_server.stats(), without_server.stats());
    let into = |stats: &Stats| bans(stats, ban_secs).iter().map(|b| b.into.len()).sum::<usize>();
    let (a429, b429) = (a.ip(EGRESS).count_429, b.ip(EGRESS).count_429);
    assert!(a429 > 0, "the breaker run was throttled too");
    assert!(
        a429 < b429,
        "the breaker must get fewer 429s than --no-breaker ({a429} vs {b429}; {} failed without)",
        failed.len()
    );
    assert!(into(&a) < into(&b), "requests into bans: {} with the breaker, {} without", into(&a), into(&b));
    assert_no_stampede(&with.out, &a, ban_secs, 2);
    // Both runs account for their requests into bans exactly as the source saw them, --no-breaker too.
    for (name, out, stats) in [("breaker", &with.out, &a), ("no breaker", &without.out, &b)] {
        let wasted: u64 = throttle_events(out).iter().map(|e| e.wasted).sum();
        assert_eq!(wasted, stats.ip(EGRESS).count_429, "{name}");
        assert_eq!(status_json(out)["egresses"][0]["wasted"].as_u64(), Some(wasted), "{name}");
    }
}

#[test]
fn bot_checks_open_the_breaker_and_probes_double_the_cooloff() {
    let rows = short_rows(40, 4);
    let s = setup(&rows);
    let server = server(Config::for_tests().with_duration(VIDEO));
    let state = s.tmp.path().join("fake");
    std::fs::create_dir(&state).unwrap();
    let calls = state.join("calls");
    // The first three extractions answer with a bot check; later ones are the real yt-dlp.
    let body = format!(
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac\n\
         echo \"$(date +%s%3N) call\" >> '{calls}'\n\
         for i in 1 2 3; do\n\
           if mkdir '{state}/fail-'$i 2>/dev/null; then printf '%s\\n' '{BOT_CHECK}' >&2; exit 1; fi\n\
         done\n\
         exec yt-dlp \"$@\"",
        calls = calls.display(),
        state = state.display(),
    );
    let ytdlp = write_script(s.tmp.path(), "bot-yt-dlp", &body);
    let mut args = download(&server, &s, 2, &[EGRESS], &["--cooldown", "2s", "--ytdlp"]);
    args.push(ytdlp.into());
    run(&args).expect_code(0);
    assert_all_done(&s.out, &rows);
    assert_throttles_left_attempts_alone(&s.out, "bot_check");

    let events = throttle_events(&s.out);
    assert_eq!(events.len(), 3, "one event per bot check: {events:#?}");
    assert!(events.iter().all(|e| e.category == "bot_check" && e.egress == EGRESS), "{events:#?}");
    // Both first clips met the check: the first opened the breaker, the second found it open already.
    // The probe met the third: the cool-off doubled.
    let opened: Vec<&ThrottleEvent> = events.iter().filter(|e| e.cooloff_s.is_some()).collect();
    assert_eq!(opened.len(), 2, "{events:#?}");
    // Every bot check is one answer that carried it.
    assert!(events.iter().all(|e| e.wasted == 1), "{events:#?}");
    let (first, doubled) = (opened[0].cooloff_s.unwrap(), opened[1].cooloff_s.unwrap());
    // Jitter only lengthens a cool-off (up to +25%): never shorter than configured.
    assert!((2.0 - 0.001..=2.5 + 0.001).contains(&first), "2 s + up to 25%: {first}");
    assert!((4.0 - 0.001..=5.0 + 0.001).contains(&doubled), "doubled to 4 s + up to 25%: {doubled}");

    let calls: Vec<i64> = tool_log(&calls).into_iter().map(|(ms, _, _)| ms).collect();
    assert_eq!(calls.len(), 3 + rows.len(), "three checks, then one extraction a clip: {calls:?}");
    let before = |ms: i64| calls.iter().filter(|&&c| c < ms).count();
    let (reopen1, reopen2) = (opened[0].reopens_ms().unwrap(), opened[1].reopens_ms().unwrap());
    assert_eq!(before(reopen1 - CLOCK_SLACK_MS), 2, "nothing started while cooling: {calls:?} {events:#?}");
    assert_eq!(before(opened[1].at_ms), 3, "exactly one probe after the first cool-off: {calls:?}");
    assert_eq!(before(reopen2 - CLOCK_SLACK_MS), 3, "nothing started during the doubled cool-off: {calls:?}");
    let probe_done = attempts(&s.out)
        .into_iter()
        .filter(|a| a.outcome == "done")
        .map(|a| a.finished_ms)
        .min()
        .expect("done attempts");
    assert_eq!(before(probe_done), 4, "exactly one probe after the doubled cool-off: {calls:?}");

    let status = status_json(&s.out);
    assert_eq!(status["egresses"][0]["throttle_events"].as_u64(), Some(3), "{status:#}");
    assert_eq!(status["egresses"][0]["wasted"].as_u64(), Some(3), "one answer per bot check: {status:#}");
    assert_eq!(server.stats().ip(EGRESS).count_429, 0);
}

/// A clip that was served from before a ban proves nothing about the ban: when it ends during the cool-off
/// (or while the probe is out), the egress stays shut but for the one probe, until the probe comes back.
#[test]
fn a_clip_served_from_before_the_ban_does_not_reopen_the_egress() {
    let rows = short_rows(44, 4);
    let (early, blocked) = (&rows[0].id, &rows[1].id);
    let s = setup(&rows);
    let server = server(Config::for_tests().with_duration(VIDEO));
    let state = s.tmp.path().join("fake");
    std::fs::create_dir(&state).unwrap();
    let log = state.join("calls");
    // `early` extracts for real; `blocked` meets a bot check at once; the next extraction (the probe)
    // takes 10 s to meet one too; every later one is real.
    let body = format!(
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac\n\
         id=unknown\n\
         for a in \"$@\"; do case \"$a\" in *watch?v=*) id=${{a##*watch?v=}} ;; esac; done\n\
         log() {{ echo \"$(date +%s%3N) $1 $id\" >> '{log}'; }}\n\
         check() {{ printf '%s\\n' '{BOT_CHECK}' >&2; log end; exit 1; }}\n\
         log start\n\
         if [ \"$id\" = '{blocked}' ] && mkdir '{state}/blocked' 2>/dev/null; then check; fi\n\
         if [ \"$id\" != '{early}' ] && mkdir '{state}/probe' 2>/dev/null; then log slow; sleep 10; check; fi\n\
         yt-dlp \"$@\"\n\
         rc=$?\n\
         log end\n\
         exit $rc",
        log = log.display(),
        state = state.display(),
    );
    let ytdlp = write_script(s.tmp.path(), "bot-yt-dlp", &body);
    // Slow cuts keep `early` busy well past the 1 s cool-off.
    let ffmpeg =
        write_script(s.tmp.path(), "slow-ffmpeg", "case \"$*\" in *+faststart*) sleep 3 ;; esac\nexec ffmpeg \"$@\"");
    let mut args = download(&server, &s, 2, &[EGRESS], &["--cooldown", "1s", "--ytdlp"]);
    args.push(ytdlp.into());
    args.push("--ffmpeg".into());
    args.push(ffmpeg.into());
    run(&args).expect_code(0);
    assert_all_done(&s.out, &rows);

    let calls = tool_log(&log);
    let starts: Vec<&(i64, String, String)> = calls.iter().filter(|c| c.1 == "start").collect();
    assert!(
        starts.iter().take(2).any(|c| &c.2 == early) && starts.iter().take(2).any(|c| &c.2 == blocked),
        "the scenario needs `{early}` and `{blocked}` to start first: {calls:?}"
    );
    let events = throttle_events(&s.out);
    let opened = events.iter().find(|e| e.cooloff_s.is_some()).expect("the bot check opened the breaker");
    let slow = calls.iter().find(|c| c.1 == "slow").expect("a probe met the slow check");
    let probe_end =
        calls.iter().find(|c| c.1 == "end" && c.2 == slow.2 && c.0 >= slow.0).map(|c| c.0).expect("the probe ended");
    let early_done = attempts(&s.out)
        .into_iter()
        .find(|a| &a.youtube_id == early && a.outcome == "done")
        .expect("`early` is done")
        .finished_ms;
    assert!(
        early_done > opened.at_ms,
        "the scenario needs `{early}` to be served after the breaker opened at {}: it finished at {early_done}",
        opened.at_ms
    );
    // `early`'s own first extraction was started by the scheduler before the ban (its attempt says when),
    // however late a loaded machine got its yt-dlp going.
    let early_began = attempts(&s.out).iter().filter(|a| &a.youtube_id == early).map(|a| a.started_ms).min();
    let first_early = starts.iter().find(|c| &c.2 == early).map(|c| c.0);
    let from_before = |c: &&&(i64, String, String)| {
        &c.2 == early && Some(c.0) == first_early && early_began.is_some_and(|b| b <= opened.at_ms)
    };
    let shut: Vec<_> =
        starts.iter().filter(|c| c.0 > opened.at_ms && c.0 < probe_end).filter(|c| !from_before(c)).collect();
    assert!(
        shut.len() == 1 && shut[0].2 == slow.2,
        "between the bot check ({}) and the probe's answer ({probe_end}) exactly one clip, the probe, may start; \
         `{early}` was served at {early_done}: {shut:?}\nall calls: {calls:?}",
        opened.at_ms
    );
}

#[test]
fn geo_blocked_clips_go_through_the_other_egresses() {
    let rows = short_rows(48, 3);
    let s = setup(&rows);
    let server = server(Config::for_tests().with_duration(VIDEO));
    let ips = ["127.0.0.2", "127.0.0.3"];
    // The stand-in yt-dlp answers as YouTube does for a video blocked in one egress's country: the first two
    // videos are blocked only for 127.0.0.2, the third for both egresses.
    let geo = "ERROR: [youtube] abcdefghijk: The uploader has not made this video available in your country";
    let body = format!(
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac\n\
         case \"$*\" in\n\
           *'--source-address 127.0.0.2'*{a}*|*'--source-address 127.0.0.2'*{b}*|*{c}*)\n\
             printf '%s\\n' '{geo}' >&2; exit 1 ;;\n\
         esac\n\
         exec yt-dlp \"$@\"",
        a = rows[0].id,
        b = rows[1].id,
        c = rows[2].id,
    );
    let ytdlp = write_script(s.tmp.path(), "geo-yt-dlp", &body);
    let mut args = download(&server, &s, 2, &ips, &["--cooldown", "2s", "--ytdlp"]);
    args.push(ytdlp.into());
    run(&args).expect_code(0);

    let clips = journal_clips(&s.out);
    let attempts = attempts(&s.out);
    let mut rerouted = 0;
    for row in &rows[..2] {
        let clip = clips.iter().find(|c| c.youtube_id == row.id).unwrap();
        assert_eq!(clip.state, "done", "{row:?}: blocked for one egress only");
        assert_eq!(clip.attempts, 1, "{}: a reroute is not an attempt", row.id);
        assert_eq!(frames(&s.out.join(row.rel_path())), expected_frames(row.start, row.end), "{}", row.id);
        for a in attempts.iter().filter(|a| a.youtube_id == row.id) {
            match a.egress.as_str() {
                "127.0.0.2" => {
                    assert_eq!((a.outcome.as_str(), a.category.as_deref()), ("rerouted", Some("geo_blocked")), "{a:?}");
                    rerouted += 1;
                }
                _ => assert_eq!(a.outcome, "done", "{a:?}"),
            }
        }
    }
    // The clip blocked everywhere was rerouted from its first egress before it failed on the second.
    let third: Vec<&AttemptRow> = attempts.iter().filter(|a| a.youtube_id == rows[2].id).collect();
    assert_eq!(third.len(), 2, "{third:#?}");
    assert_eq!((third[0].outcome.as_str(), third[0].category.as_deref()), ("rerouted", Some("geo_blocked")));
    rerouted += usize::from(third[0].egress == "127.0.0.2");
    assert!(rerouted >= 1, "no clip met the block on 127.0.0.2 and was rerouted: {attempts:#?}");
    // Blocked everywhere: tried through each egress once, then failed for good.
    let blocked = clips.iter().find(|c| c.youtube_id == rows[2].id).unwrap();
    assert_eq!((blocked.state.as_str(), blocked.category.as_deref()), ("failed", Some("geo_blocked")));
    let mut through: Vec<&str> =
        attempts.iter().filter(|a| a.youtube_id == rows[2].id).map(|a| a.egress.as_str()).collect();
    through.sort();
    assert_eq!(through, ips, "{attempts:#?}");
    let failed = read_csv(&s.out.join("failed.csv"));
    assert_eq!(failed.rows.len(), 1);
    assert_eq!(failed.rows[0]["category"], "geo_blocked");
}

/// yt-dlp turns a 429 on the DASH manifest into a warning and quietly falls back to itag 18
/// (`WARNING: [html5] ID: Failed to download MPD manifest: HTTP Error 429: Too Many Requests`, exit 0):
/// the egress is throttled all the same, so the breaker opens and the clip waits for it, instead of
/// carrying on through a banned IP with a worse format.
#[test]
fn a_429_that_yt_dlp_turns_into_a_warning_opens_the_breaker() {
    let rows = short_rows(52, 2);
    let s = setup(&rows);
    let server = server(Config::for_tests().with_duration(VIDEO));
    let state = s.tmp.path().join("warned");
    // The first extraction meets the 429 (as yt-dlp prints it when the manifest is refused); later ones don't.
    let body = format!(
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac\n\
         if mkdir '{state}' 2>/dev/null; then\n\
           echo 'WARNING: [generic] Falling back on generic information extractor' >&2\n\
           echo 'WARNING: [html5] watch?v=x: Failed to download MPD manifest: HTTP Error 429: Too Many Requests' >&2\n\
         fi\n\
         exec yt-dlp \"$@\"",
        state = state.display(),
    );
    let ytdlp = write_script(s.tmp.path(), "warn-yt-dlp", &body);
    let mut args = download(&server, &s, 1, &[EGRESS], &["--cooldown", "1s", "--ytdlp"]);
    args.push(ytdlp.into());
    run(&args).expect_code(0);
    assert_all_done(&s.out, &rows);

    let events = throttle_events(&s.out);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!((events[0].category.as_str(), events[0].egress.as_str()), ("rate_limited", EGRESS));
    let attempts = attempts(&s.out);
    let throttled: Vec<_> = attempts.iter().filter(|a| a.outcome == "throttled").collect();
    assert_eq!(throttled.len(), 1, "{attempts:#?}");
    // Nothing was cut from what that extraction offered: every clip came from the DASH pair.
    let stats = read_csv(&s.out.join("stats.csv"));
    assert!(stats.rows.iter().all(|r| r["format_id"] == "133+140"), "{:?}", stats.rows);
    assert!(journal_clips(&s.out).iter().all(|c| c.attempts == 1), "a throttle costs no attempt");
}

// ---- the learned request rate (issue 14) ----------------------------------------------------------------

/// `(egress, learned requests a minute)` of every egress that learned a rate.
fn learned_rates(out: &Path) -> Vec<(String, f64)> {
    let conn = open_journal(out).expect("the journal opens");
    let mut stmt = conn
        .prepare("SELECT egress, rate_per_min FROM egress_state WHERE rate_per_min IS NOT NULL ORDER BY egress")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.collect::<Result<_, _>>().expect("egress_state rows")
}

/// The relay's requests (ranged `/v/` requests) through `ip` at or after `from_ms`, by arrival.
fn relay_requests(stats: &Stats, ip: &str, from_ms: i64) -> Vec<LogEntry> {
    video_log(stats).into_iter().filter(|e| e.ip == ip && e.range.is_some() && e.time_ms as i64 >= from_ms).collect()
}

/// The relay's requests through `ip` go at most `per_min` a minute: two intervals (less the rate's growth over
/// the run, 10% a minute) between any request and the one two after it. A request is logged when its head
/// arrives, which on a loaded machine may lag its turn by a few hundred ms: two intervals leave room for
/// that. Unpaced, a DASH pair's header and window reads go out within a few hundred ms of each other.
#[track_caller]
fn assert_spaced(requests: &[LogEntry], per_min: f64, run_secs: f64) {
    assert!(requests.len() >= 4, "too few relay requests to see a pace: {requests:#?}");
    let grown = per_min * (1.0 + 0.1 * run_secs / 60.0);
    let gap_ms = 2.0 * 60_000.0 / grown - 500.0;
    for three in requests.windows(3) {
        let gap = three[2].time_ms as f64 - three[0].time_ms as f64;
        assert!(
            gap >= gap_ms,
            "three relay requests within {gap} ms, less than two intervals at {per_min:.1}/min ({gap_ms:.0} ms): {:#?}",
            three.iter().map(|e| (e.time_ms, &e.path, &e.range)).collect::<Vec<_>>()
        );
    }
}

/// Issue 14: a host that bans an address for more than N requests in T seconds. Unpaced, the first jobs ask
/// faster than that and are banned; each ban cuts the egress's request rate to half of what it was sending,
/// requests go one interval apart, and those of clips already running wait in the relay while the egress is
/// banned. So the bans stop after the first few per egress, at most one request per ban goes into it, and no
/// clip fails. The learned rate is kept and shown, and a rerun starts from it.
#[test]
fn a_learned_rate_per_egress_stops_the_bans_and_a_rerun_starts_from_it() {
    let rows = short_rows(56, 14);
    let (first, later) = rows.split_at(12);
    let s = setup(first);
    let ips = ["127.0.0.2", "127.0.0.3"];
    // More than 10 requests in 5 s (2 a second) bans an address for 3 s.
    let ban_secs = 3.0;
    let config = Config::for_tests().with_duration(VIDEO).with_ip_throttle(10, 5.0, ban_secs);
    let banning = server(config);
    run(&download(&banning, &s, 6, &ips, &["--cooldown", "1s"])).expect_code(0);
    assert_all_done(&s.out, first);
    assert_throttles_left_attempts_alone(&s.out, "rate_limited");

    let stats = banning.stats();
    let bans = bans(&stats, ban_secs);
    assert!(!bans.is_empty(), "the host must ban at least once for the test to mean anything");
    let events = throttle_events(&s.out);
    let opened: Vec<&ThrottleEvent> = events.iter().filter(|e| e.cooloff_s.is_some()).collect();
    // Bans per egress and minute, from the journal.
    let t0 = attempts(&s.out).iter().map(|a| a.started_ms).min().unwrap_or(0);
    let per_minute: Vec<(&str, i64)> = opened.iter().map(|e| (e.egress.as_str(), (e.at_ms - t0) / 60_000)).collect();
    for ip in ips {
        let mine = per_minute.iter().filter(|(e, _)| *e == ip).count();
        assert!(mine <= 3, "{ip}: {mine} bans, the learned rate did not stop them (egress, minute): {per_minute:?}");
    }
    // At most one request into each ban once its 429 could be back: the relay holds the others, only the
    // probe goes. Those that arrived within IN_FLIGHT_MS of the one that tripped it were on their way with it:
    // before an egress's first ban nothing is paced, and a DASH pair's two windows and another clip's watch
    // page go out within milliseconds of each other (after it, requests go at least 500 ms apart).
    for ban in &bans {
        let sent_into: Vec<_> = ban.into.iter().filter(|e| e.time_ms > ban.trigger.time_ms + IN_FLIGHT_MS).collect();
        assert!(
            sent_into.len() <= 1,
            "{}: {} requests went into the ban that began at {} ({} {}) later than {IN_FLIGHT_MS} ms after it:\n{}",
            ban.ip,
            sent_into.len(),
            ban.trigger.time_ms,
            ban.trigger.path,
            id_of(&ban.trigger),
            around_ban(&s.out, &stats, ban, ban_secs),
        );
    }
    let wasted: u64 = events.iter().map(|e| e.wasted).sum();
    assert_eq!(wasted, stats.ips.values().map(|i| i.count_429).sum::<u64>(), "{events:#?}");

    // Each banned egress learned a rate below what the host allows (120 a minute), kept and shown.
    let learned = learned_rates(&s.out);
    let banned: std::collections::BTreeSet<&str> = opened.iter().map(|e| e.egress.as_str()).collect();
    let names: Vec<&str> = learned.iter().map(|(e, _)| e.as_str()).collect();
    for ip in &banned {
        assert!(names.contains(ip), "{ip} was banned but learned no rate: {learned:?} {opened:#?}");
    }
    assert!(learned.iter().all(|(_, r)| *r > 0.0 && *r < 120.0), "{learned:?}");
    let status = status_json(&s.out);
    for (egress, rate) in &learned {
        let shown = status["egresses"].as_array().unwrap().iter().find(|e| e["egress"] == egress.as_str());
        let shown = shown.and_then(|e| e["learned_rate_per_min"].as_f64());
        assert!(shown.is_some_and(|r| (r - rate).abs() < 1e-9), "{egress}: {shown:?} for {rate}: {status:#}");
    }
    let text = run(&os(["status", "--out", s.out.to_str().unwrap()]));
    assert!(text.stdout.contains("learned rate"), "{}", text.stdout);

    // A rerun starts from the learned rate: its relay requests through that egress are paced at it.
    let (egress, rate) = learned.iter().min_by(|a, b| a.1.total_cmp(&b.1)).cloned().unwrap();
    write_csv(&s.csv, &rows);
    let open = server(Config::for_tests().with_duration(VIDEO));
    let began = now_ms();
    run(&download(&open, &s, 4, &[egress.as_str()], &["--cooldown", "1s"])).expect_code(0);
    assert_all_done(&s.out, &rows);
    let secs = (now_ms() - began) as f64 / 1000.0;
    assert_spaced(&relay_requests(&open.stats(), &egress, began), rate, secs);
    assert!(later.iter().all(|r| s.out.join(r.rel_path()).is_file()));
}

/// Writes into the journal the learned rate an earlier run through `egress` would have left.
fn save_learned_rate(out: &Path, egress: &str, per_min: f64) {
    let conn = rusqlite::Connection::open(journal_path(out)).unwrap();
    conn.execute(
        "INSERT INTO egress_state (egress, cooloff_ms, updated_ms, rate_per_min) VALUES (?1, 0, 0, ?2)
         ON CONFLICT (egress) DO UPDATE SET rate_per_min = ?2",
        rusqlite::params![egress, per_min],
    )
    .unwrap();
}

/// `--rate` is a ceiling on the learned rate too: a rate saved above it (here 600 requests a minute) is
/// capped at `--rate` times six requests a clip, paces the run at that, and is saved capped.
#[test]
fn rate_caps_a_learned_rate() {
    let rows = short_rows(76, 3);
    let s = setup(&rows[..1]);
    let open = server(Config::for_tests().with_duration(VIDEO));
    run(&download(&open, &s, 2, &[EGRESS], &[])).expect_code(0);
    // What a run that learned 600 requests a minute leaves.
    save_learned_rate(&s.out, EGRESS, 600.0);
    assert_eq!(learned_rates(&s.out), vec![(EGRESS.to_string(), 600.0)]);
    write_csv(&s.csv, &rows);
    let began = now_ms();
    // 600 clips an hour at six requests a clip: one request a second.
    run(&download(&open, &s, 2, &[EGRESS], &["--rate", "600/h"])).expect_code(0);
    assert_all_done(&s.out, &rows);
    let secs = (now_ms() - began) as f64 / 1000.0;
    assert_spaced(&relay_requests(&open.stats(), EGRESS, began), 60.0, secs);
    let capped = learned_rates(&s.out)[0].1;
    assert!(capped <= 60.0 + 1e-9, "--rate 600/h caps the learned rate at 60/min, got {capped}");
}

/// kinetics-dl's own CPU seconds, from the end summary's "CPU of the whole run" line.
fn own_cpu_s(stderr: &str) -> f64 {
    let line = stderr.lines().find(|l| l.contains("CPU of the whole run")).unwrap_or_else(|| panic!("{stderr}"));
    let own = line.split("kinetics-dl ").nth(1).and_then(|r| r.split(" s").next()).unwrap_or_else(|| panic!("{line}"));
    own.trim().parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn a_retry_due_while_its_egress_cools_waits_without_spinning() {
    // One job: the first clip's watch page answers 503 once (a retry in 2 s), the second's 429 once, which
    // opens the breaker for 30 s. The retry falls due while the egress cools and must wait for it: the
    // scheduler used to take the due time as its next wake-up, found it past, and went round its loop
    // without pause for the whole cool-off (11 CPU seconds of kinetics-dl in 30 s on a loaded machine).
    let rows = short_rows(0, 3);
    let s = setup(&rows);
    let cooldown = 30.0;
    let server = server(
        Config::for_tests()
            .with_duration(VIDEO)
            .with_behaviour(&rows[0].id, Behaviour::FailThenOk { status: 503, count: 1 })
            .with_behaviour(&rows[1].id, Behaviour::FailThenOk { status: 429, count: 1 }),
    );
    let mut args = os(["download", "--out"]);
    args.push(s.out.clone().into());
    args.push("--annotations".into());
    args.push(s.csv.clone().into());
    args.extend(os(["--url-template", &server.watch_url_template(), "-j", "1", "--source-address", EGRESS]));
    args.extend(os(["--retry-delay", "2s", "--cooldown", &format!("{cooldown}s"), QUOTA]));
    let o = run(&args);
    o.expect_code(0);
    assert_all_done(&s.out, &rows);
    let events = throttle_events(&s.out);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(events[0].cooloff_s.is_some_and(|c| c >= cooldown), "{events:#?}");
    let retried =
        attempts(&s.out).into_iter().filter(|a| a.outcome != "done").map(|a| a.youtube_id).collect::<Vec<_>>();
    assert!(retried.contains(&rows[0].id), "the first clip failed once and was retried: {retried:?}");
    // What kinetics-dl itself does in a run like this (the relay, the journal, the loop) takes well under a
    // second; the loop spinning through a 30 s cool-off took ten times that. Tenths of the cool-off, in CPU
    // seconds, whatever the machine's load (a spin gets less of a loaded CPU, but never this little).
    let own = own_cpu_s(&o.stderr);
    assert!(
        own < cooldown / 10.0,
        "kinetics-dl used {own} CPU s of its own through a {cooldown} s cool-off:\n{}",
        o.stderr
    );
}

/// Clip starts count the requests running clips still need (issue 14): from a learned rate of 30 requests a
/// minute (2 s apart) and `-j 7`, starting every free job at once would book 42 requests, 84 s of them, and
/// the later ones would wait past their bound (45 s) and send their clips back. A clip starts only when what
/// the running ones still owe and its own fit within 30 s at the rate: every clip is done from its first
/// attempt, none held, and requests still go one interval apart.
#[test]
fn clip_starts_leave_room_for_the_requests_running_clips_still_need() {
    let rows = short_rows(79, 8);
    let s = setup(&rows[..1]);
    let open = server(Config::for_tests().with_duration(VIDEO));
    run(&download(&open, &s, 1, &[EGRESS], &[])).expect_code(0);
    // What a run that learned 30 requests a minute leaves.
    save_learned_rate(&s.out, EGRESS, 30.0);
    write_csv(&s.csv, &rows);
    let began = now_ms();
    run(&download(&open, &s, 7, &[EGRESS], &[])).expect_code(0);
    assert_all_done(&s.out, &rows);
    let rerun: Vec<AttemptRow> = attempts(&s.out).into_iter().filter(|a| a.started_ms >= began).collect();
    let held: Vec<&AttemptRow> = rerun.iter().filter(|a| a.outcome != "done").collect();
    assert!(held.is_empty(), "clips started beyond the rate's room, held past their bound: {held:#?}");
    assert_eq!(rerun.len(), rows.len() - 1, "one attempt per new clip: {rerun:#?}");
    let secs = (now_ms() - began) as f64 / 1000.0;
    assert_spaced(&relay_requests(&open.stats(), EGRESS, began), 30.0, secs);
}

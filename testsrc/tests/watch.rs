//! The watch page `/watch?v={id}`: served over real sockets, and read by the real yt-dlp, which must
//! offer the progressive file and the DASH formats side by side, as it does on YouTube, from the page alone.

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use common::{attrs, base_urls, get, request, request_from, start};
use kinetics_testsrc::{watch, Behaviour, Config, Profile, ScenarioEntry, TestServer, Track};
use serde_json::Value;

/// The sort the root crate passes to yt-dlp.
const SORT: &str = "res:360,vcodec:h264,acodec:aac,ext:mp4:m4a,+size";

fn yt_dlp(args: &[&str], url: &str) -> Output {
    Command::new("yt-dlp").arg("--ignore-config").args(args).arg("--").arg(url).output().expect("yt-dlp runs")
}

/// `--dump-json` for `url` with format selection `format` and the root crate's sort.
fn dump_json(url: &str, format: &str) -> Value {
    let out = yt_dlp(&["--dump-json", "-f", format, "-S", SORT], url);
    assert!(out.status.success(), "-f {format}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `ERROR:` line of a failed yt-dlp run.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "yt-dlp should fail: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.starts_with("ERROR: ")).unwrap_or_else(|| panic!("no ERROR line: {stderr}"));
    line.to_owned()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn format_ids(formats: &[Value]) -> Vec<&str> {
    let mut ids: Vec<&str> = formats.iter().map(|f| str_field(f, "format_id")).collect();
    ids.sort();
    ids
}

/// A 640x360 profile, where the DASH video is itag 134 (YouTube's 360p) rather than 133.
fn hd_profile() -> Profile {
    Profile { duration_secs: 30.0, width: 640, height: 360, fps: 30, video_kbps: 700, ..Profile::default() }
}

fn config() -> Config {
    let silent = Profile { duration_secs: 10.0, width: 256, height: 144, fps: 25, audio: false, ..Profile::default() };
    Config::for_tests()
        .with_profile("hd", hd_profile())
        .with_entry("hd360", ScenarioEntry::new(Behaviour::Ok).with_profile("hd"))
        .with_profile("silent", silent)
        .with_entry("quiet", ScenarioEntry::new(Behaviour::Ok).with_profile("silent"))
        .with_behaviour("missing", Behaviour::Status(404))
        .with_behaviour("gone", Behaviour::Html)
        .with_behaviour("flaky", Behaviour::FailThenOk { status: 503, count: 1 })
        .with_behaviour("cut", Behaviour::Truncate { fraction: 0.5 })
        .with_behaviour("slow", Behaviour::Slow { bytes_per_sec: 10 })
        .with_behaviour("plain", Behaviour::NoRange)
}

#[test]
fn watch_page_offers_both_forms() {
    let server = start(config());
    let page = get(server.addr, "/watch?v=abc", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("application/dash+xml"));
    let text = String::from_utf8(page.body).unwrap();
    assert_eq!(text, server.watch_page_text("abc"));
    assert!(text.contains(&format!("<Title>{}</Title>", watch::title("abc"))), "{text}");
    // The DASH formats at their absolute paths, then the progressive file as itag 18, each with its size.
    let dash = server.dash_media("abc");
    let audio = dash.audio.as_ref().unwrap();
    assert_eq!(attrs(&text, "id"), ["133", "140", "18"]);
    assert_eq!(base_urls(&text), ["/v/abc/video.mp4", "/v/abc/audio.m4a", "/v/abc.mp4"]);
    let lens = [dash.video.len, audio.len, server.video_len("abc")].map(|n| n.to_string());
    assert_eq!(attrs(&text, "yt:contentLength"), lens);
    let (video_codec, audio_codec) = (&dash.video.layout.track.codecs, &audio.layout.track.codecs);
    assert_eq!(
        attrs(&text, "codecs"),
        [video_codec.clone(), audio_codec.clone(), format!("{video_codec}, {audio_codec}")]
    );
    assert_eq!(attrs(&text, "mimeType"), ["video/mp4", "audio/mp4", "video/mp4"]);
    assert_eq!((attrs(&text, "width"), attrs(&text, "height")), (vec!["320".into(); 2], vec!["180".into(); 2]));
    assert_eq!(attrs(&text, "audioSamplingRate"), ["44100", "44100"]);
    // The DASH files' header and index ranges, as YouTube's `initRange` and `indexRange`; none for itag 18.
    let segment = |t: &kinetics_testsrc::dash::TrackFile| {
        let s = t.layout.segment;
        (format!("{}-{}", s.index_first, s.index_last), format!("0-{}", s.init_last))
    };
    let (ranges, inits): (Vec<String>, Vec<String>) = [segment(&dash.video), segment(audio)].into_iter().unzip();
    assert_eq!((attrs(&text, "indexRange"), attrs(&text, "range")), (ranges, inits));
    assert!(text.len() < 2048, "the page is small: {} bytes", text.len());

    // The page of another profile gives that profile's size.
    let hd = String::from_utf8(get(server.addr, "/watch?v=hd360", &[]).body).unwrap();
    assert_eq!(hd, server.watch_page_text("hd360"));
    assert_eq!(attrs(&hd, "id"), ["134", "140", "18"]);
    assert_eq!(attrs(&hd, "height"), ["360", "360"]);
    // Without audio the progressive file names the video codec only.
    let quiet = String::from_utf8(get(server.addr, "/watch?v=quiet", &[]).body).unwrap();
    let video_codec = &server.dash_media("quiet").video.layout.track.codecs;
    assert_eq!(attrs(&quiet, "id"), ["160", "18"]);
    assert_eq!(attrs(&quiet, "codecs"), [video_codec.clone(), video_codec.clone()]);
    assert!(!quiet.contains("audioSamplingRate"), "{quiet}");

    // HEAD, other query parameters around `v`, and a Range header (ignored: the page is always whole).
    let head = request(server.addr, "HEAD", "/watch?v=abc", &[]);
    assert_eq!((head.status, head.content_length(), head.body.len()), (200, text.len() as u64, 0));
    let shared = get(server.addr, "/watch?feature=share&v=abc&t=12s", &[("Range", "bytes=0-9")]);
    assert_eq!((shared.status, shared.body), (200, text.clone().into_bytes()));

    // Missing or invalid ids, and paths that are not the page.
    let too_long = format!("/watch?v={}", "a".repeat(65));
    for path in
        ["/watch", "/watch?", "/watch?v=", "/watch?v", "/watch?v=a.b", "/watch?v=a%20b", "/watch?vv=abc", &too_long]
    {
        let resp = get(server.addr, path, &[]);
        assert_eq!(resp.status, 404, "{path}");
        assert!(resp.header("content-type").unwrap().starts_with("text/plain"), "{path}");
    }
    for path in ["/watch/abc", "/watch/?v=abc", "/watchx?v=abc", "/v/watch?v=abc"] {
        assert_eq!(get(server.addr, path, &[]).status, 404, "{path}");
    }
    assert_eq!(request(server.addr, "POST", "/watch?v=abc", &[]).status, 405);

    let stats = server.wait_idle(Duration::from_secs(5)).unwrap();
    assert_eq!(stats.id("abc").requests, 3, "GET, HEAD and the shared link; bad requests count for no id");
    let log: Vec<_> = stats.log_for_page("abc").collect();
    assert_eq!(
        log.iter().map(|e| (e.method.as_str(), e.status)).collect::<Vec<_>>(),
        [("GET", 200), ("HEAD", 200), ("GET", 200)]
    );
    assert_eq!(log.iter().map(|e| e.bytes).sum::<u64>(), 2 * text.len() as u64);
    assert_eq!(stats.id("abc").bytes, 2 * text.len() as u64);
}

#[test]
fn watch_page_follows_scripted_behaviours() {
    let server = start(config());
    let missing = get(server.addr, "/watch?v=missing", &[]);
    assert_eq!((missing.status, missing.body.as_slice()), (404, &b"Not Found\n"[..]));

    let gone = get(server.addr, "/watch?v=gone", &[]);
    assert_eq!(gone.status, 200);
    assert_eq!(gone.header("content-type"), Some("text/html; charset=utf-8"));
    let text = String::from_utf8(gone.body).unwrap();
    assert!(text.contains("Video unavailable") && !text.contains("<video"), "{text}");
    assert_eq!(text, String::from_utf8(get(server.addr, "/v/gone.mpd", &[]).body).unwrap(), "the same page as for /v/");

    // The page shares the id's failure count with the other resources, and takes the first failure.
    let flaky: Vec<u16> =
        ["/watch?v=flaky", "/watch?v=flaky", "/v/flaky.mpd"].iter().map(|p| get(server.addr, p, &[]).status).collect();
    assert_eq!(flaky, [503, 200, 200]);

    // Media behaviours leave the page alone: whole, at full speed, the same page.
    for id in ["cut", "slow", "plain"] {
        let started = std::time::Instant::now();
        let resp = get(server.addr, &format!("/watch?v={id}"), &[("Range", "bytes=0-9")]);
        assert_eq!(resp.status, 200, "{id}");
        assert_eq!(String::from_utf8(resp.body).unwrap(), server.watch_page_text(id), "{id}");
        assert!(started.elapsed() < Duration::from_secs(5), "{id}: the page is not paced");
    }

    let stats = server.wait_idle(Duration::from_secs(5)).unwrap();
    assert_eq!((stats.status_count("missing", 404), stats.id("missing").requests), (1, 1));
    assert_eq!((stats.status_count("flaky", 503), stats.status_count("flaky", 200)), (1, 2));
    assert!(stats.log_for_page("cut").all(|e| e.complete && e.bytes == server.watch_page_text("cut").len() as u64));
}

#[test]
fn watch_requests_count_as_video_requests() {
    let client = Ipv4Addr::new(127, 0, 0, 5);
    let server = start(Config::for_tests().with_ip_throttle(3, 60.0, 60.0));
    let fetch = |path: &str| request_from(server.addr, Some(client), "GET", path, &[]).status;
    let statuses: Vec<u16> =
        ["/watch?v=abc", "/watch?v=a.b", "/v/abc.mpd", "/watch?v=abc"].iter().map(|p| fetch(p)).collect();
    assert_eq!(statuses, [200, 404, 200, 429], "an invalid id uses up a slot too, as under /v/");
    let banned = request_from(server.addr, Some(client), "GET", "/watch?v=xyz", &[]);
    assert_eq!(banned.status, 429);
    assert!(banned.header("retry-after").is_some());

    let stats = server.stats();
    let ip = stats.ip(&client.to_string());
    assert_eq!((ip.requests, ip.count_429), (5, 2));
    assert_eq!((stats.id("abc").requests, stats.status_count("abc", 429)), (3, 1));
    assert_eq!((stats.id("xyz").requests, stats.status_count("xyz", 429)), (1, 1));
    let pages: Vec<u16> = stats.log_for_page("abc").map(|e| e.status).collect();
    assert_eq!(pages, [200, 429]);
}

/// Checks the formats yt-dlp extracted from the watch page of `id`, whose DASH video is `video_itag`.
fn check_formats(server: &TestServer, id: &str, video_itag: &str, info: &Value) {
    let (width, height) = (server.profile_for(id).width, server.profile_for(id).height);
    let fps = u64::from(server.profile_for(id).fps);
    // The generic extractor names the video after the URL's last path segment, not the manifest's title.
    assert_eq!(str_field(info, "title"), "watch");
    assert_eq!(str_field(info, "id"), format!("watch?v={id}"), "yt-dlp's generic id for the page");
    let formats = info["formats"].as_array().unwrap();
    assert_eq!(format_ids(formats), [video_itag, "140", "18"], "sorted as strings");
    let by_id = |want: &str| formats.iter().find(|f| f["format_id"] == want).unwrap();
    let dash = server.dash_media(id);

    let progressive = by_id("18");
    assert_eq!(str_field(progressive, "url"), server.video_url(id));
    assert_eq!((str_field(progressive, "protocol"), str_field(progressive, "ext")), ("http", "mp4"));
    // Both codecs known, as for YouTube's itag 18; the container is `mp4_dash`, as for every format yt-dlp
    // reads from a manifest (kinetics-dl looks at the codecs too: a muxed format is no DASH track).
    assert_eq!(str_field(progressive, "vcodec"), dash.video.layout.track.codecs);
    assert_eq!(str_field(progressive, "acodec"), "mp4a.40.2");
    assert_eq!(str_field(progressive, "container"), "mp4_dash");
    assert_eq!(
        (progressive["width"].as_u64(), progressive["height"].as_u64(), progressive["fps"].as_u64()),
        (Some(width.into()), Some(height.into()), Some(fps))
    );
    assert_eq!(progressive["filesize"].as_u64(), Some(server.video_len(id)));

    let video = by_id(video_itag);
    assert_eq!(str_field(video, "url"), server.dash_url(id, Track::Video));
    assert_eq!((str_field(video, "protocol"), str_field(video, "ext")), ("http", "mp4"));
    assert_eq!(str_field(video, "vcodec"), dash.video.layout.track.codecs);
    assert_eq!(str_field(video, "acodec"), "none");
    assert_eq!((video["height"].as_u64(), video["fps"].as_u64()), (Some(height.into()), Some(fps)));
    assert_eq!(str_field(video, "container"), "mp4_dash");
    assert_eq!(video["filesize"].as_u64(), Some(dash.video.len));
    // yt-dlp 2026.11 keeps no index ranges: a manifest's `SegmentBase`, like YouTube's `indexRange`, is read
    // by no one but the player.
    assert!(video["fragments"].is_null(), "{video}");

    let audio = by_id("140");
    assert_eq!(str_field(audio, "url"), server.dash_url(id, Track::Audio));
    assert_eq!((str_field(audio, "protocol"), str_field(audio, "ext")), ("http", "m4a"));
    assert_eq!((str_field(audio, "vcodec"), str_field(audio, "acodec")), ("none", "mp4a.40.2"));
    assert_eq!(audio["filesize"].as_u64(), Some(dash.audio.as_ref().unwrap().len));
}

/// The two DASH formats yt-dlp chose.
fn requested(info: &Value) -> Vec<(String, String, String)> {
    let formats = info["requested_formats"].as_array().unwrap_or_else(|| panic!("two formats: {}", info["format_id"]));
    formats
        .iter()
        .map(|f| (str_field(f, "format_id").into(), str_field(f, "protocol").into(), str_field(f, "url").into()))
        .collect()
}

#[test]
fn yt_dlp_sees_progressive_and_dash_formats_on_the_watch_page() {
    let server = start(config());
    for (id, video_itag) in [("abc", "133"), ("hd360", "134")] {
        let url = server.watch_url(id);
        let dash = |itag: &str, track| (itag.to_owned(), "http".to_owned(), server.dash_url(id, track));
        let pair = vec![dash(video_itag, Track::Video), dash("140", Track::Audio)];

        // -F lists all three, the progressive one with its video codec and AAC.
        let listed = yt_dlp(&["-F"], &url);
        assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
        let table = String::from_utf8(listed.stdout).unwrap();
        eprintln!("{id}:\n{table}");
        let row = |itag: &str| {
            let prefix = format!("{itag} ");
            table
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no row {itag}: {table}"))
                .to_owned()
        };
        let (width, height) = (server.profile_for(id).width, server.profile_for(id).height);
        let progressive = row("18");
        let video_codec = &server.dash_media(id).video.layout.track.codecs;
        for want in ["mp4", &format!("{width}x{height}"), "http", video_codec, "mp4a.40.2"] {
            assert!(progressive.contains(want), "18 shows {want}: {progressive}");
        }
        assert!(!progressive.contains("only"), "{progressive}");
        assert!(row(video_itag).contains("video only") && row(video_itag).contains("DASH video"), "{table}");
        assert!(row("140").contains("audio only") && row("140").contains("DASH audio"), "{table}");

        // Video-only plus audio-only: the DASH pair, the root crate's default.
        let info = dump_json(&url, "bv+ba/b");
        check_formats(&server, id, video_itag, &info);
        assert_eq!(requested(&info), pair, "bv+ba/b");
        assert_eq!(str_field(&info, "format_id"), format!("{video_itag}+140"));

        // `bv*` may take a format with audio: with both codecs known, itag 18 ranks first on `acodec:aac`,
        // as on YouTube, which is why the root crate asks for `bv`.
        let out = yt_dlp(&["--print", "format_id", "-f", "bv*+ba/b", "-S", SORT], &url);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "18", "{}", String::from_utf8_lossy(&out.stderr));

        // `b` wants video and audio in one format: only the progressive file has both.
        for format in ["b", "b[protocol=http]", "18"] {
            let info = dump_json(&url, format);
            assert!(info["requested_formats"].is_null(), "{format}: one format");
            assert_eq!(str_field(&info, "format_id"), "18", "{format}");
            assert_eq!(str_field(&info, "url"), server.video_url(id), "{format}");
            assert_eq!((str_field(&info, "protocol"), str_field(&info, "ext")), ("http", "mp4"), "{format}");
        }
    }

    // Listing formats reads the page and nothing else: no manifest, no media bytes at all.
    let stats = server.wait_idle(Duration::from_secs(10)).unwrap();
    for id in ["abc", "hd360"] {
        let runs = 1 + 1 + 1 + 3;
        let page_len = server.watch_page_text(id).len() as u64;
        let pages: Vec<_> = stats.log_for_page(id).collect();
        assert_eq!(pages.len(), runs, "{id}: one page request per run");
        assert!(pages.iter().all(|e| e.status == 200 && e.complete && e.bytes == page_len), "{id}: {pages:?}");
        assert!(page_len < 2048, "{id}: {page_len} bytes");
        assert_eq!(stats.log_for_path(&format!("/v/{id}.mpd")).count(), 0, "{id}: no manifest request");
        assert_eq!(stats.id(id).requests, runs as u64, "{id}: nothing but the page");
        assert_eq!(stats.id(id).bytes, runs as u64 * page_len, "{id}");
    }
}

#[test]
fn yt_dlp_fails_on_scripted_watch_pages() {
    let server = start(config());

    let line = error_line(&yt_dlp(&["--dump-json"], &server.watch_url("missing")));
    assert!(line.contains("Unable to download webpage: HTTP Error 404: Not Found"), "{line}");

    // A page without media: yt-dlp's generic extractor finds nothing it knows.
    let line = error_line(&yt_dlp(&["--dump-json"], &server.watch_url("gone")));
    assert_eq!(line, format!("ERROR: Unsupported URL: {}", server.watch_url("gone")));

    // yt-dlp does not retry the page: the failure ends the run, and the next run gets the formats.
    let line = error_line(&yt_dlp(&["--dump-json"], &server.watch_url("flaky")));
    assert!(line.contains("HTTP Error 503: Service Unavailable"), "{line}");
    let info = dump_json(&server.watch_url("flaky"), "bv*+ba/b");
    assert_eq!(format_ids(info["formats"].as_array().unwrap()), ["133", "140", "18"]);

    let stats = server.wait_idle(Duration::from_secs(10)).unwrap();
    let statuses = |id: &str| {
        stats.log.iter().filter(|e| e.id.as_deref() == Some(id)).map(|e| (e.path.clone(), e.status)).collect::<Vec<_>>()
    };
    assert_eq!(statuses("missing"), [("/watch".to_owned(), 404)], "yt-dlp stops at the page");
    assert_eq!(statuses("gone"), [("/watch".to_owned(), 200)]);
    assert_eq!(statuses("flaky"), [("/watch".to_owned(), 503), ("/watch".to_owned(), 200)]);
}

//! The DASH form of each id (`/v/{id}.mpd`, `/v/{id}/video.mp4`, `/v/{id}/audio.m4a`), checked over real
//! sockets and with the real yt-dlp, ffmpeg and ffprobe.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{attrs, base_urls, get, request, request_from, scratch_dir, start};
use kinetics_testsrc::mp4::{self, Fragment};
use kinetics_testsrc::{
    clip_frame_numbers, dash, frame_number_at, Behaviour, Config, LogEntry, Profile, ScenarioEntry, Track,
};
use serde_json::Value;

/// An `a-b` range attribute as numbers.
fn range_attr(value: &str) -> (u64, u64) {
    let (a, b) = value.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

fn ffprobe_streams(path: &Path) -> Vec<Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("stream=codec_type,codec_name,profile,level,sample_rate,width,height")
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json["streams"].as_array().unwrap().clone()
}

/// Top-level box types and lengths of a byte buffer that holds whole boxes.
fn box_kinds(mut bytes: &[u8]) -> Vec<(String, usize)> {
    let mut kinds = Vec::new();
    while bytes.len() >= 8 {
        let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        kinds.push((String::from_utf8_lossy(&bytes[4..8]).into_owned(), size));
        bytes = &bytes[size.min(bytes.len())..];
    }
    kinds
}

fn silent_profile() -> Profile {
    Profile { duration_secs: 10.0, width: 256, height: 144, fps: 25, audio: false, ..Profile::default() }
}

#[test]
fn manifest_describes_the_served_files() {
    let config = Config::for_tests()
        .with_profile("silent", silent_profile())
        .with_entry("quiet", ScenarioEntry::new(Behaviour::Ok).with_profile("silent"));
    let server = start(config);
    let resp = get(server.addr, "/v/abc.mpd", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/dash+xml"));
    let xml = String::from_utf8(resp.body).unwrap();
    assert_eq!(xml, server.mpd_text("abc"));
    assert_eq!(attrs(&xml, "type"), ["static"]);
    assert_eq!(attrs(&xml, "profiles"), ["urn:mpeg:dash:profile:isoff-on-demand:2011"]);
    assert_eq!(attrs(&xml, "mediaPresentationDuration"), ["PT30S"]);
    assert_eq!(attrs(&xml, "mimeType"), ["video/mp4", "audio/mp4"]);
    assert_eq!(attrs(&xml, "id"), ["133", "140"]);
    assert_eq!(
        (attrs(&xml, "width"), attrs(&xml, "height"), attrs(&xml, "frameRate")),
        (vec!["320".into()], vec!["180".into()], vec!["15".into()])
    );
    assert_eq!(base_urls(&xml), ["abc/video.mp4", "abc/audio.m4a"]);
    let media = server.dash_media("abc");
    let lens = [media.video.len, media.audio.as_ref().unwrap().len].map(|n| n.to_string());
    assert_eq!(attrs(&xml, "yt:contentLength"), lens, "the files' sizes, as YouTube's manifests give them");

    // The codec strings match what ffprobe sees in the files.
    let video = ffprobe_streams(&media.video.path);
    assert_eq!(video.len(), 1, "video only: {video:?}");
    assert_eq!((video[0]["codec_name"].as_str(), video[0]["profile"].as_str()), (Some("h264"), Some("High")));
    let level = video[0]["level"].as_u64().unwrap();
    let audio_path = &media.audio.as_ref().expect("the default profile has audio").path;
    let audio = ffprobe_streams(audio_path);
    assert_eq!(audio.len(), 1, "audio only: {audio:?}");
    assert_eq!((audio[0]["codec_name"].as_str(), audio[0]["profile"].as_str()), (Some("aac"), Some("LC")));
    assert_eq!(attrs(&xml, "codecs"), [format!("avc1.6400{level:02x}"), "mp4a.40.2".to_owned()]);
    assert_eq!(attrs(&xml, "audioSamplingRate"), [audio[0]["sample_rate"].as_str().unwrap()]);

    // The ranges point at the real boxes, fetched over HTTP the way a DASH client does.
    let index_ranges = attrs(&xml, "indexRange");
    let init_ranges = attrs(&xml, "range");
    for (i, (track, file)) in
        [(Track::Video, &media.video), (Track::Audio, media.audio.as_ref().unwrap())].into_iter().enumerate()
    {
        let (index_first, index_last) = range_attr(&index_ranges[i]);
        let (zero, init_last) = range_attr(&init_ranges[i]);
        assert_eq!((zero, index_first), (0, init_last + 1), "{track:?}: the index follows the init segment");
        let path = track.url_path("abc");
        let init = get(server.addr, &path, &[("Range", &format!("bytes=0-{init_last}"))]);
        assert_eq!(init.status, 206, "{track:?}");
        let kinds = box_kinds(&init.body);
        assert_eq!(kinds.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["ftyp", "moov"], "{track:?}");
        assert_eq!(kinds.iter().map(|(_, n)| n).sum::<usize>() as u64, init_last + 1, "{track:?}: ends with the moov");
        let index = get(server.addr, &path, &[("Range", &format!("bytes={index_first}-{index_last}"))]);
        assert_eq!(box_kinds(&index.body), [("sidx".to_owned(), (index_last - index_first + 1) as usize)], "{track:?}");
        let after = get(server.addr, &path, &[("Range", &format!("bytes={}-{}", index_last + 1, index_last + 8))]);
        assert_eq!(&after.body[4..8], b"moof", "{track:?}: media follows the index");
        let bandwidth: f64 = attrs(&xml, "bandwidth")[i].parse().unwrap();
        assert!((bandwidth - file.len as f64 * 8.0 / 30.0).abs() < 1.0, "{track:?}: bandwidth {bandwidth}");
    }

    // Remuxed, not re-encoded: every frame is there with its number.
    assert_eq!(clip_frame_numbers(&media.video.path).unwrap(), (0, 30 * 15 - 1));
    assert_eq!(frame_number_at(&media.video.path, 12.0).unwrap(), 180);

    // Cached next to the progressive file, named after it.
    let progressive = server.video_path("abc");
    assert_eq!(media.video.path.parent(), progressive.parent());
    let progressive_name = progressive.file_name().unwrap().to_str().unwrap();
    for (track, path) in [(Track::Video, &media.video.path), (Track::Audio, audio_path)] {
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), dash::cache_file_name(progressive_name, track, 0.0));
    }

    // A profile without audio has no audio adaptation set and no audio file.
    let quiet = String::from_utf8(get(server.addr, "/v/quiet.mpd", &[]).body).unwrap();
    assert_eq!(attrs(&quiet, "mimeType"), ["video/mp4"]);
    assert_eq!(attrs(&quiet, "id"), ["160"]);
    assert_eq!(attrs(&quiet, "mediaPresentationDuration"), ["PT10S"]);
    assert_eq!(base_urls(&quiet), ["quiet/video.mp4"]);
    assert!(server.dash_media("quiet").audio.is_none());
    assert_eq!(get(server.addr, "/v/quiet/audio.m4a", &[]).status, 404);
    let head = request(server.addr, "HEAD", "/v/quiet/video.mp4", &[]);
    assert_eq!((head.status, head.content_length()), (200, server.dash_media("quiet").video.len));
}

#[test]
fn dash_tracks_honour_ranges() {
    let server = start(Config::for_tests());
    let media = server.dash_media("abc");
    let audio = media.audio.as_ref().unwrap();
    for (track, file, content_type) in [(Track::Video, &media.video, "video/mp4"), (Track::Audio, audio, "audio/mp4")] {
        let bytes = std::fs::read(&file.path).unwrap();
        let total = bytes.len() as u64;
        let path = track.url_path("abc");
        let cases: Vec<(String, u16, u64, u64)> = vec![
            ("bytes=0-99".into(), 206, 0, 100),
            ("bytes=1000-".into(), 206, 1000, total - 1000),
            ("bytes=-500".into(), 206, total - 500, 500),
            ("bytes=7-3".into(), 200, 0, total),
        ];
        for (range, status, first, len) in cases {
            let resp = get(server.addr, &path, &[("Range", &range)]);
            assert_eq!((resp.status, resp.content_length()), (status, len), "{track:?} {range}");
            assert_eq!(resp.header("content-type"), Some(content_type), "{track:?} {range}");
            assert_eq!(resp.header("accept-ranges"), Some("bytes"), "{track:?} {range}");
            if status == 206 {
                let want = format!("bytes {first}-{}/{total}", first + len - 1);
                assert_eq!(resp.header("content-range"), Some(want.as_str()), "{track:?} {range}");
            }
            assert!(resp.body == bytes[first as usize..(first + len) as usize], "{track:?} {range}: body differs");
        }
        let unsatisfiable = get(server.addr, &path, &[("Range", &format!("bytes={total}-"))]);
        assert_eq!(unsatisfiable.status, 416, "{track:?}");
        let head = request(server.addr, "HEAD", &path, &[("Range", "bytes=0-9")]);
        assert_eq!((head.status, head.content_length()), (206, 10), "{track:?}");
    }
    for path in ["/v/abc/video.m4a", "/v/abc/audio.mp4", "/v/abc/video.mp4/x", "/v/a.b/video.mp4", "/v/abc.mpd/x"] {
        assert_eq!(get(server.addr, path, &[]).status, 404, "{path}");
    }
    assert_eq!(request(server.addr, "POST", "/v/abc.mpd", &[]).status, 405);
    assert_eq!(server.stats().id("abc").requests, 2 * 6, "neither bad paths nor bad methods count for abc");
}

#[test]
fn scripted_behaviours_cover_every_resource() {
    let config = Config::for_tests()
        .with_behaviour("missing", Behaviour::Status(404))
        .with_behaviour("flaky", Behaviour::FailThenOk { status: 503, count: 2 })
        .with_behaviour("page", Behaviour::Html)
        .with_behaviour("plain", Behaviour::NoRange)
        .with_behaviour("cut", Behaviour::Truncate { fraction: 0.5 });
    let server = start(config);
    for path in ["/v/missing.mpd", "/v/missing/video.mp4", "/v/missing/audio.m4a", "/v/missing.mp4"] {
        assert_eq!(get(server.addr, path, &[("Range", "bytes=0-9")]).status, 404, "{path}");
    }

    // One failure count for all of an id's resources: the first requests fail, whatever they ask for.
    let flaky: Vec<u16> = ["/v/flaky.mpd", "/v/flaky/video.mp4", "/v/flaky/audio.m4a", "/v/flaky.mpd"]
        .iter()
        .map(|path| get(server.addr, path, &[("Range", "bytes=0-9")]).status)
        .collect();
    assert_eq!(flaky, [503, 503, 206, 200]);

    for path in ["/v/page.mpd", "/v/page/video.mp4"] {
        let page = get(server.addr, path, &[]);
        assert_eq!(page.status, 200, "{path}");
        assert!(page.header("content-type").unwrap().starts_with("text/html"), "{path}");
    }

    let plain = get(server.addr, "/v/plain/video.mp4", &[("Range", "bytes=0-9")]);
    assert_eq!((plain.status, plain.body.len() as u64), (200, server.dash_media("plain").video.len));
    assert_eq!(plain.header("accept-ranges"), None);

    // Truncation cuts media bodies; the manifest is always whole.
    let audio_len = server.dash_media("cut").audio.as_ref().unwrap().len;
    let cut = get(server.addr, "/v/cut/audio.m4a", &[]);
    assert_eq!((cut.content_length(), cut.body.len() as u64), (audio_len, audio_len / 2));
    let manifest = get(server.addr, "/v/cut.mpd", &[]);
    assert_eq!(manifest.body.len() as u64, manifest.content_length());
    assert_eq!(String::from_utf8(manifest.body).unwrap(), server.mpd_text("cut"));

    let stats = server.stats();
    assert_eq!(stats.status_count("missing", 404), 4);
    assert_eq!((stats.status_count("flaky", 503), stats.id("flaky").requests), (2, 4));
    let log: Vec<&LogEntry> = stats.log_for_path("/v/cut/audio.m4a").collect();
    assert_eq!((log.len(), log[0].complete, log[0].bytes), (1, false, audio_len / 2));
}

#[test]
fn dash_requests_count_as_video_requests() {
    let client = Ipv4Addr::new(127, 0, 0, 4);
    let server = start(Config::for_tests().with_ip_throttle(3, 60.0, 60.0).with_open_range_throttle(100_000, 65_536));
    let fetch = |path: &str, range: Option<&str>| {
        let headers: Vec<(&str, &str)> = range.map(|r| ("Range", r)).into_iter().collect();
        request_from(server.addr, Some(client), "GET", path, &headers)
    };
    let statuses: Vec<u16> =
        [("/v/abc.mpd", None), ("/v/abc/video.mp4", Some("bytes=0-9")), ("/v/abc/audio.m4a", Some("bytes=5-9"))]
            .iter()
            .map(|(path, range)| fetch(path, *range).status)
            .collect();
    assert_eq!(statuses, [200, 206, 206]);
    let banned = fetch("/v/abc.mpd", None);
    assert_eq!(banned.status, 429);
    assert!(banned.header("retry-after").is_some());

    let stats = server.stats();
    assert_eq!((stats.ip(&client.to_string()).requests, stats.ip(&client.to_string()).count_429), (4, 1));
    assert_eq!((stats.id("abc").requests, stats.status_count("abc", 429)), (4, 1));
    assert_eq!(stats.bytes_for_path("/v/abc/video.mp4"), 10);
    assert_eq!(stats.bytes_for_path("/v/abc/audio.m4a"), 5);
    let mpd_len = server.mpd_text("abc").len() as u64;
    assert_eq!(stats.bytes_for_path("/v/abc.mpd"), mpd_len + "too many requests\n".len() as u64);
    assert_eq!(stats.id("abc").bytes, stats.bytes_sent);

    // The open-range throttle looks at DASH tracks like at the progressive file.
    let open = request(server.addr, "HEAD", "/v/other/video.mp4", &[("Range", "bytes=0-")]);
    assert_eq!((open.status, open.header("x-testsrc-throttled")), (206, Some("open-range")));
    let bounded = request(server.addr, "HEAD", "/v/other/video.mp4", &[("Range", "bytes=0-999999")]);
    assert_eq!(bounded.header("x-testsrc-throttled"), None);
}

/// The last fragment starting at or before `secs`: where a reader seeking there starts.
fn fragment_at(fragments: &[Fragment], secs: f64) -> Fragment {
    *fragments.iter().rev().find(|f| f.start_secs <= secs + 1e-9).expect("a fragment at or before the time")
}

/// The first byte a logged request asked for.
fn range_start(entry: &LogEntry) -> u64 {
    let range = entry.range.as_deref().unwrap_or("bytes=0-");
    let spec = range.strip_prefix("bytes=").unwrap();
    spec.split('-').next().unwrap().parse().unwrap_or(0)
}

#[test]
fn yt_dlp_picks_both_tracks_and_ffmpeg_seeks_by_the_index() {
    // Two minutes, so the bytes a seek skips dwarf what socket buffers read ahead on abandoned requests.
    let profile = Profile { duration_secs: 120.0, ..Profile::default() };
    let config = Config::for_tests()
        .with_profile("dash", profile)
        .with_entry("seek", ScenarioEntry::new(Behaviour::Ok).with_profile("dash"))
        .with_behaviour("missing", Behaviour::Status(404));
    let server = start(config);
    let (video_url, audio_url) = (server.dash_url("seek", Track::Video), server.dash_url("seek", Track::Audio));

    let out = Command::new("yt-dlp")
        .args(["--ignore-config", "--dump-json", "-f", "bv*+ba/b"])
        .args(["-S", "res:360,vcodec:h264,acodec:aac,ext:mp4:m4a,+size", "--"])
        .arg(server.mpd_url("seek"))
        .output()
        .expect("yt-dlp is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    let requested = info["requested_formats"].as_array().expect("a video+audio pair");
    let picked: Vec<(&str, &str, &str)> = requested
        .iter()
        .map(|f| (f["format_id"].as_str().unwrap(), f["protocol"].as_str().unwrap(), f["url"].as_str().unwrap()))
        .collect();
    assert_eq!(picked, [("133", "http", video_url.as_str()), ("140", "http", audio_url.as_str())]);
    assert_eq!(requested[0]["vcodec"].as_str().map(|c| c.starts_with("avc1.64")), Some(true));
    assert_eq!(requested[1]["acodec"], "mp4a.40.2");

    // Cut 4 s from the middle the way a clip downloader does: input seeks on both tracks, stream copy.
    let t = 61.0;
    let dir = scratch_dir("dash-seek");
    let clip = dir.join("out.mkv");
    let ss = t.to_string();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-ss", &ss, "-i", &video_url, "-ss", &ss, "-i", &audio_url])
        .args(["-t", "4", "-map", "0:v", "-map", "1:a", "-c", "copy"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    let streams = ffprobe_streams(&clip);
    let kinds: Vec<(&str, &str)> =
        streams.iter().map(|s| (s["codec_type"].as_str().unwrap(), s["codec_name"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("video", "h264"), ("audio", "aac")]);
    // Stream copy starts at the keyframe at or before T: the one at 60 s (GOP 2 s), frame 900.
    let (first, last) = clip_frame_numbers(&clip).unwrap();
    assert_eq!(first, 900, "clip starts at the keyframe before {t} s");
    assert!((first + 4 * 15..=first + 6 * 15).contains(&last), "clip ends at frame {last}");
    std::fs::remove_dir_all(&dir).unwrap();

    // ffmpeg jumped through the sidx: it asked for the fragment holding T directly and never for the
    // bytes of the first half, so far less than the files went over the wire.
    let stats = server.wait_idle(Duration::from_secs(20)).expect("the source goes idle");
    let media = server.dash_media("seek");
    let audio = media.audio.as_ref().unwrap();
    let mut sent = 0;
    for (track, file) in [(Track::Video, &media.video), (Track::Audio, audio)] {
        let fragments = mp4::sidx_fragments(&file.path).unwrap();
        let log: Vec<&LogEntry> = stats.log_for_path(&track.url_path("seek")).collect();
        let starts: Vec<u64> = log.iter().map(|e| range_start(e)).collect();
        let target = fragment_at(&fragments, t);
        assert!(starts.contains(&target.offset), "{track:?}: no request at the fragment for {t} s: {log:?}");
        sent += stats.bytes_for_path(&track.url_path("seek"));
        if track == Track::Video {
            let skipped = fragment_at(&fragments, t / 2.0);
            let overlaps = |e: &&LogEntry| {
                range_start(e) < skipped.offset + skipped.size && skipped.offset < range_start(e) + e.bytes
            };
            assert!(!log.iter().any(overlaps), "the fragment at {} s was sent: {log:?}", t / 2.0);
            let video_sent = stats.bytes_for_path(&track.url_path("seek"));
            assert!(video_sent < file.len / 3, "sent {video_sent} of the {} byte video track", file.len);
        }
    }
    let total = media.video.len + audio.len;
    assert!(sent < total / 2, "sent {sent} bytes of {total} for both tracks");

    // An id scripted to 404 fails on its manifest the way it fails on `/v/{id}.mp4`.
    let out = Command::new("yt-dlp")
        .args(["--ignore-config", "--dump-json", "--"])
        .arg(server.mpd_url("missing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP Error 404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = server.stats();
    assert!(stats.log_for_path("/v/missing.mpd").all(|e| e.status == 404));
    assert!(stats.status_count("missing", 404) >= 1);
}

#[test]
fn concurrent_remuxes_yield_one_valid_file_each() {
    let dir = scratch_dir("dash-gen");
    let profile = Profile { duration_secs: 4.0, width: 160, height: 96, ..Profile::default() };
    let progressive = kinetics_testsrc::video::ensure_video(&dir, &profile).unwrap();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (progressive, profile) = (progressive.clone(), profile.clone());
            std::thread::spawn(move || dash::ensure_dash(&progressive, &profile).unwrap())
        })
        .collect();
    let made: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for m in &made[1..] {
        assert_eq!((&m.video.path, &m.video.layout), (&made[0].video.path, &made[0].video.layout));
        assert_eq!(m.audio.as_ref().map(|a| &a.path), made[0].audio.as_ref().map(|a| &a.path));
    }
    assert_eq!(clip_frame_numbers(&made[0].video.path).unwrap(), (0, 59));
    let fragments = mp4::sidx_fragments(&made[0].video.path).unwrap();
    let starts: Vec<f64> = fragments.iter().map(|f| f.start_secs).collect();
    assert_eq!(starts, [0.0, 2.0], "one fragment per 2 s GOP");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    names.sort();
    let stem = progressive.file_stem().unwrap().to_str().unwrap();
    let want = [format!("{stem}.dash-v3.audio.m4a"), format!("{stem}.dash-v3.video.mp4"), format!("{stem}.mp4")];
    assert_eq!(names, want, "no temporary files left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dash_token_refuses_listed_ips_past_the_first_bytes_only() {
    let window = 64 * 1024;
    let server = start(Config::for_tests().with_dash_token(&["127.0.0.3"], window));
    let (refused, other) = (Ipv4Addr::new(127, 0, 0, 3), Ipv4Addr::new(127, 0, 0, 2));
    let inside = format!("bytes=0-{}", window - 1);
    let past = format!("bytes={window}-{}", window + 999);
    // (client, path, range, status)
    let cases: Vec<(Ipv4Addr, &str, &str, u16)> = vec![
        (refused, "/v/abc/video.mp4", &inside, 206),
        (refused, "/v/abc/video.mp4", &past, 403),
        (refused, "/v/abc/video.mp4", "bytes=-4", 403),
        (refused, "/v/abc/audio.m4a", "bytes=0-99", 206),
        (refused, "/v/abc/audio.m4a", &past, 403),
        (refused, "/v/abc.mp4", &past, 206),
        (refused, "/v/abc.mpd", "", 200),
        (other, "/v/abc/video.mp4", &past, 206),
        (other, "/v/abc/audio.m4a", "bytes=-4", 206),
    ];
    for (from, path, range, status) in cases {
        let headers: Vec<(&str, &str)> = if range.is_empty() { vec![] } else { vec![("Range", range)] };
        let resp = request_from(server.addr, Some(from), "GET", path, &headers);
        assert_eq!(resp.status, status, "{from} {path} {range}");
    }
}

/// The sound track names its seconds (`tone`): decoded, the progressive file's sound shows each second's
/// pitch and a silent gap at the start of each second to a fraction of a millisecond; the DASH audio
/// carries the same packets at the same times (its edit list skips the AAC priming as the progressive
/// file's does), so a cut of either starts where its timestamps say.
#[test]
fn the_sound_names_its_seconds_and_both_forms_agree_on_its_times() {
    use kinetics_testsrc::tone;
    let server = start(Config::for_tests());
    let samples = tone::decode(server.video_path("tone")).unwrap();
    assert!((samples.secs() - 30.0).abs() < 0.001, "{} s", samples.secs());
    for second in [0u32, 7, 12, 28] {
        let at = f64::from(second) + 0.5;
        let n = (at * f64::from(samples.rate)) as usize;
        let stretch = &samples.data[n..n + samples.rate as usize / 10];
        assert_eq!(tone::second_of(stretch, samples.rate), Some(second));
        let middle = samples.gap_middle(f64::from(second) + 1.0).expect("a gap");
        let want = f64::from(second) + 1.0 + tone::GAP_SECS / 2.0;
        assert!((middle - want).abs() < 0.0002, "gap at {middle}, want {want}");
    }
    let packet_times = |path: &Path| -> Vec<String> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts,size", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        // ffprobe ends some lines with a separator and adds blank ones: `-1024,206,`.
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_end_matches(',').to_owned())
            .collect::<Vec<_>>();
        lines.into_iter().filter(|l| !l.is_empty()).collect()
    };
    let media = server.dash_media("tone");
    let audio = media.audio.as_ref().expect("the test profile has audio");
    let (progressive, dash) = (packet_times(server.video_path("tone")), packet_times(&audio.path));
    assert!(progressive.len() > 1000, "{} packets", progressive.len());
    assert!(progressive[0].starts_with("-1024,"), "the priming frame comes before 0: {}", progressive[0]);
    let first_difference = dash.iter().zip(&progressive).position(|(d, p)| d != p);
    assert_eq!(first_difference, None, "the DASH audio's packets and times are the progressive file's");
    assert_eq!(dash.len(), progressive.len());
}

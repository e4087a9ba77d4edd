//! googlevideo's rough edges, switched on per id: signed media URLs bound to the client's IP with an
//! expiry, redirects on media URLs, and bodies that stall without closing. Checked over real sockets.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{base_urls, connect, get, read_head, request_from, request_line, start};
use kinetics_testsrc::{Behaviour, Config, ScenarioEntry};

/// The first base URL on the watch page `page` that contains `needle`, XML-unescaped.
fn source_url(page: &str, needle: &str) -> String {
    base_urls(page)
        .into_iter()
        .find(|s| s.contains(needle))
        .unwrap_or_else(|| panic!("no base URL with {needle} in\n{page}"))
        .replace("&amp;", "&")
}

#[test]
fn signed_urls_work_only_for_the_ip_they_were_handed_to_and_until_they_expire() {
    let config = Config::for_tests()
        .with_entry("signed", ScenarioEntry::default().signed())
        .with_entry("plain", ScenarioEntry::default());
    let server = start(config);
    let me = Some(Ipv4Addr::new(127, 0, 0, 1));
    let other = Some(Ipv4Addr::new(127, 0, 0, 2));

    let page = String::from_utf8(request_from(server.addr, me, "GET", "/watch?v=signed", &[]).body).unwrap();
    let mp4 = source_url(&page, "signed.mp4");
    assert!(mp4.starts_with("/v/signed.mp4?ip=127.0.0.1&expire="), "{mp4}");
    assert!(mp4.contains("&sig="), "{mp4}");

    // From the IP that fetched the page, the signed URLs work, the DASH tracks' too.
    assert_eq!(request_from(server.addr, me, "GET", &mp4, &[("Range", "bytes=0-99")]).status, 206);
    let track = source_url(&page, "signed/video.mp4");
    assert!(track.starts_with("/v/signed/video.mp4?ip=127.0.0.1&expire="), "{track}");
    assert_eq!(request_from(server.addr, me, "GET", &track, &[("Range", "bytes=0-99")]).status, 206);

    // Another IP, no signature, a tampered one: 403, as googlevideo answers.
    let flipped = if mp4.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &mp4[..mp4.len() - 1]);
    let unsigned = "/v/signed.mp4".to_owned();
    for (from, path, why) in [(other, &mp4, "another IP"), (me, &unsigned, "unsigned"), (me, &tampered, "tampered")] {
        let response = request_from(server.addr, from, "GET", path, &[]);
        assert_eq!(response.status, 403, "{why}");
        assert!(String::from_utf8_lossy(&response.body).starts_with("forbidden"), "{why}");
    }
    assert_eq!(request_from(server.addr, other, "GET", &track, &[]).status, 403, "the DASH track from another IP");
    // The page itself is never signed, and unsigned ids stay unsigned.
    assert_eq!(request_from(server.addr, other, "GET", "/watch?v=signed", &[]).status, 200);
    assert_eq!(get(server.addr, "/v/plain.mp4", &[("Range", "bytes=0-9")]).status, 206);
    drop(server);

    // An expired URL is refused even from the right IP.
    let expired =
        start(Config::for_tests().with_url_ttl(-10.0).with_entry("signed", ScenarioEntry::default().signed()));
    let page = String::from_utf8(request_from(expired.addr, me, "GET", "/watch?v=signed", &[]).body).unwrap();
    let response = request_from(expired.addr, me, "GET", &source_url(&page, "signed.mp4"), &[]);
    assert_eq!((response.status, String::from_utf8_lossy(&response.body).trim()), (403, "forbidden: URL expired"));
}

#[test]
fn redirected_media_urls_answer_302_to_the_same_url_with_a_hop() {
    let server = start(Config::for_tests().with_entry("moved", ScenarioEntry::default().redirected()));
    for path in ["/v/moved.mp4", "/v/moved/video.mp4", "/v/moved/audio.m4a"] {
        let first = get(server.addr, path, &[("Range", "bytes=0-9")]);
        assert_eq!(first.status, 302, "{path}");
        let location = first.header("location").unwrap().to_owned();
        assert_eq!(location, format!("{path}?hop=1"));
        let second = get(server.addr, &location, &[("Range", "bytes=0-9")]);
        assert_eq!((second.status, second.body.len()), (206, 10), "{path}");
    }
    // The page and the manifest are not redirected.
    assert_eq!(get(server.addr, "/watch?v=moved", &[]).status, 200);
    assert_eq!(get(server.addr, "/v/moved.mpd", &[]).status, 200);
}

#[test]
fn bodies_reaching_the_stuck_place_stall_without_closing_then_later_ones_are_whole() {
    let config = Config::for_tests().with_behaviour("stuck", Behaviour::Stall { fraction: 0.25, count: Some(1) });
    let server = start(config);
    let len = server.video_len("stuck");
    // A body ending before the stuck place (a quarter in) is whole and uses up nothing.
    let early = get(server.addr, "/v/stuck.mp4", &[("Range", "bytes=0-99")]);
    assert_eq!((early.status, early.body.len()), (206, 100));

    let mut stream = connect(server.addr, None);
    stream.write_all(&request_line("GET", "/v/stuck.mp4", &[], true)).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).unwrap();
    assert_eq!(status, 200);
    let promised: u64 =
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).unwrap().1.parse().unwrap();
    assert_eq!(promised, len, "the full length is promised");
    // Read what comes; the read must end in a timeout (the stall), not in an end of stream.
    let started = Instant::now();
    let mut got = 0u64;
    let mut buf = [0u8; 65536];
    let ended = loop {
        match reader.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => got += n as u64,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                break "stalled"
            }
            Err(e) => panic!("{e}"),
        }
        assert!(started.elapsed() < Duration::from_secs(60), "still reading");
    };
    assert_eq!((ended, got), ("stalled", (len as f64 * 0.25).floor() as u64));
    drop(reader);

    // The count is used up: the next body is whole.
    let whole = get(server.addr, "/v/stuck.mp4", &[]);
    assert_eq!((whole.status, whole.body.len() as u64), (200, len));
    let log = common::wait_for(Duration::from_secs(10), || {
        let log = server.stats().log;
        (log.len() == 3).then_some(log)
    })
    .expect("both requests logged");
    let mut log = log;
    log.sort_by_key(|e| e.time_ms);
    assert_eq!(log.iter().map(|e| e.complete).collect::<Vec<_>>(), [true, false, true]);
}

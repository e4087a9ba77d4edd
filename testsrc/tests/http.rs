//! HTTP behaviour over real loopback sockets: ranges, scripted behaviours, keep-alive, static files, stats.

mod common;

use std::io::{BufReader, Read, Write};
use std::time::Duration;

use common::{file_bytes, get, read_response, request, request_line, scratch_dir, start, wait_for};
use kinetics_testsrc::{Behaviour, Config, Stats};

#[test]
fn ranges_return_exact_bytes() {
    let server = start(Config::for_tests());
    let file = file_bytes(&server, "abc");
    let total = file.len() as u64;
    let last = total - 1;
    let cases: Vec<(String, u16, u64, u64, Option<String>)> = vec![
        ("bytes=0-99".into(), 206, 0, 100, Some(format!("bytes 0-99/{total}"))),
        ("bytes=1000-".into(), 206, 1000, total - 1000, Some(format!("bytes 1000-{last}/{total}"))),
        ("bytes=-500".into(), 206, total - 500, 500, Some(format!("bytes {}-{last}/{total}", total - 500))),
        (
            format!("bytes={}-{}", total - 10, total + 100),
            206,
            total - 10,
            10,
            Some(format!("bytes {}-{last}/{total}", total - 10)),
        ),
        ("bytes=7-3".into(), 200, 0, total, None),
    ];
    for (range, status, start, len, content_range) in cases {
        let resp = get(server.addr, "/v/abc.mp4", &[("Range", &range)]);
        assert_eq!(resp.status, status, "{range}");
        assert_eq!(resp.content_length(), len, "{range}");
        assert_eq!(resp.header("content-range").map(str::to_owned), content_range, "{range}");
        assert_eq!(resp.header("accept-ranges"), Some("bytes"), "{range}");
        assert_eq!(resp.header("content-type"), Some("video/mp4"), "{range}");
        assert!(resp.body == file[start as usize..(start + len) as usize], "{range}: body differs from the file");
    }

    let full = get(server.addr, "/v/abc.mp4", &[]);
    assert_eq!((full.status, full.body.len() as u64), (200, total));
    assert!(full.body == file);

    let unsatisfiable = get(server.addr, "/v/abc.mp4", &[("Range", &format!("bytes={total}-"))]);
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("content-range"), Some(format!("bytes */{total}").as_str()));

    let head = request(server.addr, "HEAD", "/v/abc.mp4", &[("Range", "bytes=0-9")]);
    assert_eq!((head.status, head.content_length()), (206, 10));
    assert_eq!(server.stats().id("abc").requests, 8);
}

#[test]
fn scripted_behaviours() {
    let config = Config::for_tests()
        .with_behaviour("missing", Behaviour::Status(404))
        .with_behaviour("private", Behaviour::Status(403))
        .with_behaviour("gone", Behaviour::Status(410))
        .with_behaviour("teapot", Behaviour::Status(418))
        .with_behaviour("flaky", Behaviour::FailThenOk { status: 503, count: 2 })
        .with_behaviour("page", Behaviour::Html)
        .with_behaviour("plain", Behaviour::NoRange);
    let server = start(config);
    for (id, status) in [("missing", 404), ("private", 403), ("gone", 410), ("teapot", 418)] {
        assert_eq!(get(server.addr, &format!("/v/{id}.mp4"), &[]).status, status, "{id}");
    }

    let flaky: Vec<u16> = (0..4).map(|_| get(server.addr, "/v/flaky.mp4", &[("Range", "bytes=0-9")]).status).collect();
    assert_eq!(flaky, [503, 503, 206, 206]);

    let page = get(server.addr, "/v/page.mp4", &[]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page.body).contains("<html>"));

    let plain = get(server.addr, "/v/plain.mp4", &[("Range", "bytes=0-9")]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body.len() as u64, server.video_len("plain"));
    assert_eq!(plain.header("accept-ranges"), None);
    assert_eq!(plain.header("content-range"), None);

    let stats = server.stats();
    assert_eq!(stats.status_count("flaky", 503), 2);
    assert_eq!(stats.status_count("flaky", 206), 2);
    assert_eq!(stats.status_count("gone", 410), 1);
}

#[test]
fn truncate_promises_everything_and_closes_early() {
    let server = start(Config::for_tests().with_behaviour("cut", Behaviour::Truncate { fraction: 0.5 }));
    let file = file_bytes(&server, "cut");
    let resp = get(server.addr, "/v/cut.mp4", &[("Range", "bytes=100-100099")]);
    assert_eq!((resp.status, resp.content_length()), (206, 100_000));
    assert_eq!(resp.body.len(), 50_000);
    assert!(resp.body == file[100..50_100]);

    let full = get(server.addr, "/v/cut.mp4", &[]);
    assert_eq!(full.content_length(), file.len() as u64);
    assert_eq!(full.body.len(), file.len() / 2);

    let stats = server.stats();
    let log: Vec<_> = stats.log_for("cut").collect();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|e| !e.complete));
    assert_eq!(log[0].bytes, 50_000);
}

#[test]
fn bad_paths_and_methods() {
    let server = start(Config::for_tests());
    let cases = [
        ("GET", "/v/a.b.mp4", 404),
        ("GET", "/v/abc.webm", 404),
        ("GET", "/v/.mp4", 404),
        ("GET", &format!("/v/{}.mp4", "x".repeat(65)), 404),
        ("GET", "/nothing", 404),
        ("GET", "/files/x.csv", 404),
        ("POST", "/v/abc.mp4", 405),
        ("GET", "/v/abc.mp4?t=1", 200),
    ];
    for (method, path, status) in cases {
        let resp = if status == 200 {
            request(server.addr, "HEAD", path, &[])
        } else {
            request(server.addr, method, path, &[])
        };
        assert_eq!(resp.status, status, "{method} {path}");
    }
    let mut raw = common::connect(server.addr, None);
    raw.write_all(b"NONSENSE\r\n\r\n").unwrap();
    let resp = read_response(&mut BufReader::new(raw), false).unwrap();
    assert_eq!(resp.status, 400);
}

#[test]
fn keep_alive_and_pipelining() {
    let server = start(Config::for_tests());
    let file = file_bytes(&server, "abc");
    let stream = common::connect(server.addr, None);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for (i, range) in ["bytes=0-9", "bytes=10-19"].iter().enumerate() {
        writer.write_all(&request_line("GET", "/v/abc.mp4", &[("Range", range)], false)).unwrap();
        let resp = read_response(&mut reader, false).unwrap();
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        assert!(resp.body == file[i * 10..i * 10 + 10]);
    }
    // Two requests in one write: both answered in order, the last one closes.
    let mut both = request_line("GET", "/v/abc.mp4", &[("Range", "bytes=20-29")], false);
    both.extend(request_line("HEAD", "/v/abc.mp4", &[], true));
    writer.write_all(&both).unwrap();
    let first = read_response(&mut reader, false).unwrap();
    assert!(first.body == file[20..30]);
    let second = read_response(&mut reader, true).unwrap();
    assert_eq!((second.status, second.header("connection")), (200, Some("close")));
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the last response");
}

#[test]
fn hang_ups_mid_body_are_tolerated() {
    let server = start(Config::for_tests());
    for _ in 0..5 {
        let mut stream = common::connect(server.addr, None);
        stream.write_all(&request_line("GET", "/v/abc.mp4", &[], true)).unwrap();
        let mut some = [0u8; 1000];
        stream.read_exact(&mut some).unwrap();
    }
    let found = wait_for(Duration::from_secs(20), || {
        let stats = server.stats();
        (stats.log_for("abc").filter(|e| !e.complete).count() == 5).then_some(stats)
    });
    let stats = found.expect("five incomplete responses are logged");
    assert!(stats.log_for("abc").all(|e| e.bytes < server.video_len("abc")));
    // The server still answers normally afterwards.
    assert_eq!(get(server.addr, "/v/abc.mp4", &[("Range", "bytes=0-0")]).status, 206);
}

#[test]
fn stats_endpoint_matches_library_stats() {
    let server = start(Config::for_tests().with_behaviour("gone", Behaviour::Status(410)));
    get(server.addr, "/v/abc.mp4", &[("Range", "bytes=0-99")]);
    get(server.addr, "/v/gone.mp4", &[]);
    get(server.addr, "/elsewhere", &[]);
    let resp = get(server.addr, "/_stats", &[]);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let over_http: Stats = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(over_http, server.stats(), "/_stats itself is not counted");
    assert_eq!(over_http.total_requests, 3);
    assert_eq!(over_http.id("abc").bytes, 100);
    assert_eq!(over_http.ip("127.0.0.1").requests, 3);
    let entry = over_http.log_for("abc").next().unwrap();
    assert_eq!((entry.status, entry.range.as_deref(), entry.bytes), (206, Some("bytes=0-99"), 100));
    assert!(over_http.bytes_sent >= 100 + "Gone\n".len() as u64);
}

#[test]
fn static_files_with_ranges_and_no_traversal() {
    let dir = scratch_dir("static");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/k400.csv"), "label,youtube_id\nabseiling,abc\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("escape.txt")).unwrap();
    let server = start(Config::for_tests().with_static_dir(&dir));

    let full = get(server.addr, "/files/sub/k400.csv", &[]);
    assert_eq!((full.status, full.header("content-type")), (200, Some("text/csv")));
    assert_eq!(full.body, b"label,youtube_id\nabseiling,abc\n");
    let part = get(server.addr, "/files/sub/k400.csv", &[("Range", "bytes=6-15")]);
    assert_eq!((part.status, part.body.as_slice()), (206, &b"youtube_id"[..]));

    for path in ["/files/../Cargo.toml", "/files/sub/../../x", "/files/%2e%2e/etc/passwd", "/files/escape.txt"] {
        assert_eq!(get(server.addr, path, &[]).status, 403, "{path}");
    }
    assert_eq!(get(server.addr, "/files/sub/none.csv", &[]).status, 404);
    assert_eq!(get(server.addr, "/files/sub", &[]).status, 404);
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Rate limits over real sockets: per-IP 429 bans, the open-range throttle, slow ids, the global cap.
//!
//! Timing assertions are one-sided bounds the pacing guarantees on any machine (a slow machine only
//! makes them hold more easily), never a tight wall-clock window.

mod common;

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{connect, get, read_head, request_from, request_line, start, wait_for};
use kinetics_testsrc::{Behaviour, Config};

const CLIENT_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const CLIENT_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

#[test]
fn per_ip_ban_then_recovery() {
    let server = start(Config::for_tests().with_ip_throttle(3, 60.0, 2.0));
    let fetch = |ip| request_from(server.addr, Some(ip), "GET", "/v/abc.mp4", &[("Range", "bytes=0-99")]);
    let statuses: Vec<u16> = (0..4).map(|_| fetch(CLIENT_A).status).collect();
    assert_eq!(statuses, [206, 206, 206, 429]);
    let banned = fetch(CLIENT_A);
    assert_eq!(banned.status, 429);
    let retry_after: u64 = banned.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(fetch(CLIENT_B).status, 206, "another loopback address is another client");

    let stats = server.stats();
    let a = stats.ip(&CLIENT_A.to_string());
    assert_eq!((a.requests, a.count_429), (5, 2));
    assert!(a.banned_until.is_some());
    assert_eq!(stats.ip(&CLIENT_B.to_string()).count_429, 0);

    // Requests during the ban do not extend it (extend_ban is off), so polling ends within the ban.
    let recovered = wait_for(Duration::from_secs(20), || (fetch(CLIENT_A).status == 206).then_some(()));
    assert!(recovered.is_some(), "the ban is lifted");
}

/// A ban's 429s may say no Retry-After, as YouTube's watch page mostly does not: the ban is the same.
#[test]
fn bans_without_retry_after() {
    let server = start(Config::for_tests().with_ip_throttle(1, 60.0, 2.0).without_retry_after());
    let fetch = || request_from(server.addr, Some(CLIENT_A), "GET", "/watch?v=abcdefghijk", &[]);
    assert_eq!(fetch().status, 200);
    let banned = fetch();
    assert_eq!((banned.status, banned.header("retry-after")), (429, None));
    assert_eq!(server.stats().ip(&CLIENT_A.to_string()).count_429, 1);
}

#[test]
fn open_ended_ranges_of_big_files_are_throttled() {
    let rate = 64 * 1024;
    let server = start(Config::for_tests().with_open_range_throttle(500_000, rate));
    let total = server.video_len("abc");
    assert!(total > 1_000_000, "test video is large enough");

    // Bounded ranges go at full speed however large they are.
    let bounded = get(server.addr, "/v/abc.mp4", &[("Range", "bytes=0-999999")]);
    assert_eq!((bounded.status, bounded.body.len()), (206, 1_000_000));
    assert_eq!(bounded.header("x-testsrc-throttled"), None);

    // An open range with little left is not throttled either.
    let tail = format!("bytes={}-", total - 100_000);
    assert_eq!(get(server.addr, "/v/abc.mp4", &[("Range", &tail)]).body.len(), 100_000);

    // An open range from the start is: read for a while and check the pace from above.
    let started = Instant::now();
    let mut stream = connect(server.addr, None);
    stream.write_all(&request_line("GET", "/v/abc.mp4", &[("Range", "bytes=0-")], true)).unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).unwrap();
    assert_eq!(status, 206);
    assert!(headers.iter().any(|(k, v)| k == "X-Testsrc-Throttled" && v == "open-range"));
    let mut got = vec![0u8; 3 * rate as usize];
    reader.read_exact(&mut got).unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    // The pacer sends one chunk up front, then at most `rate` per second.
    assert!(elapsed * rate as f64 + 8192.0 >= got.len() as f64, "{} bytes in {elapsed:.2} s", got.len());
    drop(reader);

    let stats = server.stats();
    let log: Vec<_> = stats.log_for("abc").collect();
    assert!(!log[0].throttled && !log[1].throttled);
    let open =
        wait_for(Duration::from_secs(10), || server.stats().log_for("abc").nth(2).map(|e| (e.throttled, e.complete)));
    assert_eq!(open, Some((true, false)));
}

#[test]
fn slow_ids_trickle() {
    let rate = 50_000;
    let server = start(Config::for_tests().with_behaviour("slow", Behaviour::Slow { bytes_per_sec: rate }));
    let started = Instant::now();
    let resp = get(server.addr, "/v/slow.mp4", &[("Range", "bytes=0-99999")]);
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(resp.body.len(), 100_000);
    // 100 kB at 50 kB/s: at least about 2 s minus the first chunk, however fast the machine.
    assert!(elapsed >= (100_000.0 - 2_500.0) / rate as f64 * 0.95, "took {elapsed:.2} s");
    // Other ids are not slowed down.
    let fast = get(server.addr, "/v/other.mp4", &[("Range", "bytes=0-99999")]);
    assert_eq!(fast.body.len(), 100_000);
}

#[test]
fn global_cap_is_shared_by_connections() {
    let cap = 200_000u64;
    let server = start(Config::for_tests().with_bandwidth(cap));
    let addr = server.addr;
    let started = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let range = format!("bytes={}-{}", i * 200_000, i * 200_000 + 199_999);
                get(addr, "/v/abc.mp4", &[("Range", &range)]).body.len()
            })
        })
        .collect();
    let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(total, 400_000);
    // 400 kB through a 200 kB/s bucket with a 50 ms burst needs close to 2 s in total.
    assert!(elapsed >= (400_000.0 / cap as f64 - 0.05) * 0.95, "took {elapsed:.2} s");
    let stats = server.wait_idle(Duration::from_secs(10)).expect("no response in flight");
    assert_eq!(stats.bytes_sent, 400_000);
}

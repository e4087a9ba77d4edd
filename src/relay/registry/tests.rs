//! The registry's unit tests: forwarded headers, piece lengths and first reads against the plan, pieces outside
//! it, transient errors, and tokens.

use super::*;

#[test]
fn forwards_end_to_end_headers_only() {
    let given: Vec<(String, String)> = [
        ("User-Agent", "Mozilla/5.0"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("Connection", "keep-alive"),
        ("Range", "bytes=0-"),
        ("Accept-Encoding", "gzip"),
        ("Host", "example.com"),
        ("Bad Header", "x"),
        ("X-Ok", "line\nbreak"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let map = forwarded_headers(&given);
    let cookies: Vec<_> = map.get_all("cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(map["user-agent"], "Mozilla/5.0");
    assert_eq!(map["accept-encoding"], "identity");
    for dropped in ["connection", "range", "host", "x-ok"] {
        assert!(!map.contains_key(dropped), "{dropped}");
    }
    assert_eq!(map.len(), 4);
}

#[test]
fn piece_lengths_follow_the_plan() {
    let known = Plan::Known { header_end: 50_000, span: Some((1_000_000, 1_499_999)) };
    // (plan, offset, ramp before, length, ramp after)
    let cases = [
        (Plan::default(), 0, 0, HEADER_PIECE, 0),
        (Plan::Scanning { need: 300_000 }, 32_768, 0, 300_000 - 32_768 + PROBE_READ, 0),
        (Plan::Scanning { need: 32_770 }, 32_768, 0, MIN_PIECE + PROBE_READ, 0),
        // Still scanning, but ffmpeg reads elsewhere (the tail, for an `mfra`): small pieces.
        (Plan::Scanning { need: 16 }, 5_000_000, 0, PROBE_PIECE, 1),
        (known, 10_000, 0, 40_000, 0),
        (known, 1_000_000, 0, 500_000, 0),
        (known, 1_200_000, 3, 300_000, 3),
        (known, 60_000, 0, PROBE_PIECE, 1),
        (known, 60_000, 2, PROBE_PIECE * 4, 3),
        // Within ffmpeg's read-through distance of the window: the gap and the window in one piece.
        (known, 1_000_000 - READ_THROUGH, 0, READ_THROUGH + 500_000, 0),
        (known, 1_000_000 - READ_THROUGH - 1, 0, PROBE_PIECE, 1),
        (known, 1_500_000, 0, PROBE_PIECE, 1),
        (Plan::Known { header_end: 50_000, span: None }, 1_000_000, 1, PROBE_PIECE * 2, 2),
        (Plan::Unplanned, 0, 0, UNPLANNED_PIECE, 1),
        (Plan::Unplanned, 123, 3, UNPLANNED_PIECE * 8, 4),
    ];
    for (plan, offset, ramp, want, ramp_after) in cases {
        let mut r = ramp;
        assert_eq!(planned_len(plan, HEADER_PIECE, offset, &mut r), want, "{plan:?} at {offset}");
        assert_eq!(r, ramp_after, "{plan:?} at {offset}");
    }
}

#[test]
fn first_reads_hold_the_header_the_metadata_predicts() {
    let progressive = |secs: f64, fps: Option<f64>| Expect { duration: Some(secs), fps, fragmented: false };
    // (what is known, first read)
    let per_sec = |fps: u64| fps * 23 + 44 * 4;
    // (what is known, first read)
    let cases = [
        (Expect::default(), HEADER_PIECE + PROBE_READ),
        (Expect { fragmented: true, ..Expect::default() }, HEADER_PIECE),
        // A DASH file of 5 minutes: its 2 KB header and ffmpeg's probe of the first fragment (whose 30 KB the
        // fixed read held too). An hour: the test source's 2 s fragments make a 21.6 KB sidx.
        (Expect { fragmented: true, ..progressive(300.0, Some(30.0)) }, 4096 + 300 * 6 + PROBE_READ),
        (Expect { fragmented: true, ..progressive(3600.0, Some(30.0)) }, 4096 + 3600 * 6 + PROBE_READ),
        (Expect { fragmented: true, ..progressive(10.0, None) }, 4096 + 10 * 6 + PROBE_READ),
        // The test source's itag 18: 60 s at 15 fps, whose moov ends at 25,445 (30,847 with B-frames).
        (progressive(60.0, Some(15.0)), 4096 + 60 * per_sec(15) + PROBE_READ),
        // Unknown frame rate: 30 fps.
        (progressive(60.0, None), 4096 + 60 * per_sec(30) + PROBE_READ),
        // The test source's 5 minutes at 30 fps, whose moov ends at 255,766: ffmpeg's probe past it too.
        (progressive(300.0, Some(30.0)), 4096 + 300 * per_sec(30) + PROBE_READ),
        // A short video: its small moov and ffmpeg's read past it; very long ones stop at the cap.
        (progressive(2.0, Some(30.0)), 4096 + 2 * per_sec(30) + PROBE_READ),
        (progressive(100_000.0, Some(60.0)), MAX_FIRST_READ),
        (progressive(f64::NAN, Some(30.0)), HEADER_PIECE + PROBE_READ),
        (progressive(60.0, Some(0.0)), 4096 + 60 * per_sec(30) + PROBE_READ),
    ];
    // Every header of the test source's cached files (moov or sidx end, seconds, fps, fragmented) is held
    // with ffmpeg's probe past it.
    let measured = [
        (25_445, 60.0, 15.0, false),
        (30_847, 60.0, 15.0, false),
        (49_485, 120.0, 15.0, false),
        (26_842, 30.0, 30.0, false),
        (255_766, 300.0, 30.0, false),
        (1_443_818, 3600.0, 15.0, false),
        (2_637, 300.0, 30.0, true),
        (22_437, 3600.0, 15.0, true),
    ];
    for (header_end, secs, fps, fragmented) in measured {
        let read = first_read(Expect { duration: Some(secs), fps: Some(fps), fragmented });
        assert!(read >= header_end + PROBE_READ, "{secs} s at {fps} fps: {read} B for a header to {header_end}");
    }
    for (expect, want) in cases {
        assert_eq!(first_read(expect), want, "{expect:?}");
    }
    let mut ramp = 0;
    assert_eq!(planned_len(Plan::default(), 50_000, 0, &mut ramp), 50_000);
}

#[test]
fn pieces_outside_the_plan() {
    let entry = Entry::new("http://h.example/v", &[], reqwest::Client::new(), Arc::new(Counters::default()));
    // (plan, offset, outside)
    let known = Plan::Known { header_end: 50_000, span: Some((1_000_000, 1_499_999)) };
    let cases = [
        (Plan::default(), 5_000_000, false),
        (Plan::Unplanned, 5_000_000, false),
        (Plan::Known { header_end: 50_000, span: None }, 5_000_000, false),
        (known, 10_000, false),
        // Past the header: the header read held ffmpeg's probe, a DASH fragment's first bytes are not needed.
        (known, 49_999, false),
        (known, 50_000, true),
        (known, 1_000_000 - READ_THROUGH - 1, true),
        (known, 1_000_000 - READ_THROUGH, false),
        (known, 1_499_999, false),
        (known, 1_500_000, true),
    ];
    for (plan, offset, want) in cases {
        entry.layout().plan = plan;
        assert_eq!(entry.outside_plan(offset), want, "{plan:?} at {offset}");
    }
}

#[test]
fn transient_errors() {
    let status = |s: u16| UpstreamError::Status { status: s, reason: String::new() };
    let cases = [
        (status(403), false),
        (status(404), false),
        (status(410), false),
        (status(408), true),
        (status(429), false),
        (status(500), true),
        (status(503), true),
        (UpstreamError::Transport("reset".into()), true),
        (UpstreamError::RangeUnsupported, false),
        (UpstreamError::BadContentRange("x".into()), false),
    ];
    for (error, want) in cases {
        assert_eq!(error.is_transient(), want, "{error}");
    }
}

#[test]
fn tokens_are_unique_and_unregister_on_drop() {
    let registry = Arc::new(Registry::default());
    let totals = Arc::new(Counters::default());
    let entry = || Entry::new("http://h.example/v?sig=1", &[], reqwest::Client::new(), totals.clone());
    let a = Registration::new(registry.clone(), entry(), "http://127.0.0.1:1");
    let b = Registration::new(registry.clone(), entry(), "http://127.0.0.1:1");
    assert_ne!(a.token, b.token);
    assert_eq!(a.token.len(), 32);
    assert!(a.url().starts_with("http://127.0.0.1:1/m/"));
    assert_eq!(a.entry.host, "h.example");
    let token = a.token.clone();
    assert!(registry.get(&token).is_some());
    drop(a);
    assert!(registry.get(&token).is_none());
    assert!(registry.get(&b.token).is_some());
}

use super::*;
use Category::*;

/// One case of `tests/data/classify.tsv`.
struct Case {
    line: usize,
    category: Category,
    exit_code: Option<i32>,
    stderr: String,
}

/// Reads the case table (format in its header).
fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/classify.tsv");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rows = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    rows.map(|(i, l)| {
        let at = |what: &str| format!("{path}:{}: {what}: {l:?}", i + 1);
        let mut fields = l.splitn(3, '\t');
        let (Some(category), Some(code), Some(stderr)) = (fields.next(), fields.next(), fields.next()) else {
            panic!("{}", at("expected CATEGORY<TAB>EXIT_CODE<TAB>STDERR"));
        };
        Case {
            line: i + 1,
            category: category.parse().unwrap_or_else(|e| panic!("{}", at(&format!("{e}")))),
            exit_code: (code != "-").then(|| code.parse().unwrap_or_else(|_| panic!("{}", at("bad exit code")))),
            stderr: unescape(stderr).unwrap_or_else(|| panic!("{}", at("only \\n and \\\\ are escapes"))),
        }
    })
    .collect()
}

/// `\n` is a line break, `\\` a backslash; any other backslash is a mistake.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                '\\' => '\\',
                _ => return None,
            }),
            c => out.push(c),
        }
    }
    Some(out)
}

#[test]
fn the_case_table_reads_its_escapes() {
    let escapes = [
        ("a\\nb", Some("a\nb")),
        ("a\\\\nb", Some("a\\nb")),
        ("x\u{2019}y", Some("x\u{2019}y")),
        ("a\\tb", None),
        ("a\\", None),
    ];
    for (input, expected) in escapes {
        assert_eq!(unescape(input).as_deref(), expected, "{input:?}");
    }
    assert!(cases().len() > 60, "the table has its rows");
}

#[test]
fn classifies_the_documented_and_captured_messages() {
    let mut wrong = Vec::new();
    for case in cases() {
        let got = classify(&case.stderr, case.exit_code);
        if got != case.category {
            wrong.push(format!("line {}: expected {}, got {got}: {:?}", case.line, case.category, case.stderr));
        }
    }
    assert!(wrong.is_empty(), "{} misclassified:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn unreachable_is_said_by_connection_failures_not_by_broken_transfers() {
    // (line of the case table's text it must match or not): the captured outage rows say it; a reset,
    // a short transfer, a read time-out and a bare `ffmpeg exited` do not.
    let mut wrong = Vec::new();
    for case in cases().into_iter().filter(|c| c.category == Category::Network) {
        let text = case.stderr.to_lowercase();
        let transfer = ["reset by peer", "content too short", "read timed out", "connection timed out"]
            .iter()
            .any(|n| text.contains(n))
            || !text.contains("connect") && !text.contains("resolve") && !text.contains("tls") && !text.contains("ssl");
        if unreachable(&case.stderr) == transfer {
            wrong.push(format!("line {}: unreachable={}: {:?}", case.line, !transfer, case.stderr));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for text in [
        "Failed to resolve 'nosuchhost.invalid' ([Errno -2] Name or service not known)",
        "('Unable to connect to proxy', NewConnectionError(...))",
        "[tcp @ 0x5] Connection to tcp://127.0.0.1:9 failed: Connection refused",
        "[tls @ 0x5] An unexpected TLS packet was received.",
    ] {
        assert!(unreachable(text), "{text}");
    }
    for text in ["Connection reset by peer", "Read timed out. (read timeout=3.0)", "ERROR: ffmpeg exited with code 1"] {
        assert!(!unreachable(text), "{text}");
    }
}

#[test]
fn every_category_has_a_row() {
    let cases = cases();
    // `missing_from_mirror` is given by the mirror phase, never read from a tool's stderr.
    for category in Category::ALL.into_iter().filter(|c| *c != Category::MissingFromMirror) {
        assert!(cases.iter().any(|c| c.category == category), "no test row for {category}");
    }
}

#[test]
fn names_round_trip_through_display_fromstr_and_serde() {
    for category in Category::ALL {
        let name = category.to_string();
        assert_eq!(name.parse::<Category>(), Ok(category));
        assert_eq!(serde_json::to_string(&category).unwrap(), format!("\"{name}\""));
    }
    assert_eq!("http_403".parse::<Category>(), Ok(Http403));
    assert_eq!("Private".parse::<Category>(), Err(UnknownCategory("Private".into())));
}

#[test]
fn dispositions_and_attempts_follow_the_table() {
    let cases = [
        (Unavailable, Disposition::Permanent, 1),
        (GeoBlocked, Disposition::Permanent, 1),
        (AgeRestricted, Disposition::NeedsCookies, 1),
        (BotCheck, Disposition::Throttle, u32::MAX),
        (RateLimited, Disposition::Throttle, u32::MAX),
        (Environment, Disposition::Environment, u32::MAX),
        (Http403, Disposition::RetryLater, 2),
        (Http404, Disposition::RetryLater, 2),
        (ServerError, Disposition::RetryLater, 5),
        (Network, Disposition::RetryLater, 5),
        (Other, Disposition::RetryLater, 3),
        (FormatUnavailable, Disposition::Permanent, 1),
    ];
    for (category, disposition, attempts) in cases {
        assert_eq!(category.disposition(), disposition, "{category}");
        assert_eq!(category.max_attempts(), attempts, "{category}");
    }
}

#[test]
fn media_server_statuses_have_categories() {
    let cases = [
        (403, Http403),
        (404, Http404),
        (410, Unavailable),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (400, Other),
        (416, Other),
    ];
    for (status, category) in cases {
        assert_eq!(http_status(status), category, "{status}");
    }
}

#[test]
fn whole_download_is_detected_and_not_an_environment_failure() {
    let stderr = "ERROR: [youtube] abc: This format cannot be partially downloaded. Aborting";
    assert!(needs_whole_download(stderr));
    assert_ne!(classify(stderr, Some(1)), Environment);
    assert!(!needs_whole_download("ERROR: ffmpeg exited with code 1"));
}

#[test]
fn tail_keeps_whole_lines_and_char_boundaries() {
    let cases: &[(&str, usize, &str)] = &[
        ("short", 100, "short"),
        ("line one\nline two\nline three", 14, "line three"),
        ("aaaa\nbbbb\n", 5, "bbbb\n"),
        ("one long line without breaks", 6, "breaks"),
        ("x\u{2019}\u{2019}y", 5, "\u{2019}y"),
        ("abc\n", 0, ""),
    ];
    for (input, max, expected) in cases {
        let tail = stderr_tail(input, *max);
        assert_eq!(tail, *expected, "stderr_tail({input:?}, {max})");
        assert!(tail.len() <= *max || input.len() <= *max);
    }
}

//! Every malformed case: the error names the right kind, line and field.

use super::*;

/// (name, bytes, kind, line, field)
type Case = (&'static str, Vec<u8>, ErrorKind, Option<u64>, Option<&'static str>);

#[test]
fn malformed() {
    use ErrorKind::*;
    let csv = |rows: &str| format!("{H}yoga,ok,1,2,train\n{rows}").into_bytes();
    let json =
        |entry: &str| format!("{{\n\"ok\": {{\"annotations\": {{\"segment\": [1, 2]}}}},\n{entry}\n}}").into_bytes();
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("empty file", b"".to_vec(), Empty, Some(1), None),
        ("whitespace only", b" \n\r\n\t".to_vec(), Empty, Some(1), None),
        ("BOM only", b"\xEF\xBB\xBF".to_vec(), Empty, Some(1), None),
        ("unknown header", b"label,youtube_id,time_start,time_end,bogus\n".to_vec(), UnknownHeader, Some(1), Some("bogus")),
        ("empty header", b"label,,youtube_id,time_start,time_end\n".to_vec(), UnknownHeader, Some(1), Some("(empty)")),
        ("duplicate header", b"youtube_id,ytid,start,end\n".to_vec(), DuplicateHeader, Some(1), Some("ytid")),
        ("missing column", b"label,youtube_id,time_start,split\n".to_vec(), MissingColumn, Some(1), Some("time_end")),
        ("empty id", csv(",,1,2,train\n"), MissingField, Some(3), Some("youtube_id")),
        ("bad id", csv("yoga,abc def,1,2,train\n"), BadId, Some(3), Some("youtube_id")),
        ("path id", csv("yoga,../x,1,2,train\n"), BadId, Some(3), Some("youtube_id")),
        ("long id", csv(&format!("yoga,{},1,2,train\n", "a".repeat(65))), BadId, Some(3), Some("youtube_id")),
        ("empty time", csv("yoga,abc,,2,train\n"), MissingField, Some(3), Some("time_start")),
        ("HACS flag 0", b"classname,youtube_id,subset,start,end,label\nyoga,abc,training,1,2,0\n".to_vec(), BadFlag, Some(2), Some("label")),
        ("HACS flag empty", b"classname,youtube_id,subset,start,end,label\nyoga,abc,training,1,2,1\nyoga,abc,training,1,2,\n".to_vec(), MissingField, Some(3), Some("label")),
        ("HACS negative still validated", b"classname,youtube_id,subset,start,end,label\nyoga,a b,training,1,2,-1\n".to_vec(), BadId, Some(2), Some("youtube_id")),
        ("text time", csv("yoga,abc,one,2,train\n"), BadNumber, Some(3), Some("time_start")),
        ("NaN", csv("yoga,abc,1,NaN,train\n"), BadNumber, Some(3), Some("time_end")),
        ("inf", csv("yoga,abc,inf,2,train\n"), BadNumber, Some(3), Some("time_start")),
        ("negative", csv("yoga,abc,-1,2,train\n"), NegativeTime, Some(3), Some("time_start")),
        ("end equals start", csv("yoga,abc,5,5,train\n"), EndNotAfterStart, Some(3), Some("time_end")),
        ("end before start", csv("yoga,abc,5,4.5,train\n"), EndNotAfterStart, Some(3), Some("time_end")),
        ("unterminated quote", csv("\"yoga,abc,1,2,train\nyoga,def,1,2,train\n"), UnterminatedQuote, Some(3), Some("label")),
        ("unterminated quote, last line", csv("yoga,abc,1,2,\"train\n"), UnterminatedQuote, Some(3), Some("split")),
        ("unterminated quote, no newline", csv("yoga,abc,1,2,\"train"), UnterminatedQuote, Some(3), Some("split")),
        ("unterminated quote, first field", csv("\"yoga,abc,1,2,train"), UnterminatedQuote, Some(3), Some("label")),
        ("closed quote at the end is fine", csv("\"yo\"\"ga\",abc,1,2,train\nok,x,a,2,train"), BadNumber, Some(4), Some("time_start")),
        ("unterminated quote in header", b"label,\"youtube_id,time_start,time_end".to_vec(), UnterminatedQuote, Some(1), None),
        ("too few fields", csv("yoga,abc,1,2\n"), FieldCount, Some(3), None),
        ("too many fields", csv("yoga,abc,1,2,train,x\n"), FieldCount, Some(3), None),
        ("NUL in label", csv("yo\0ga,abc,1,2,train\n"), BadLabel, Some(3), Some("label")),
        ("control in label", csv("yo\x1bga,abc,1,2,train\n"), BadLabel, Some(3), Some("label")),
        ("tab in quoted label", csv("\"yo\tga\",abc,1,2,train\n"), BadLabel, Some(3), Some("label")),
        ("control in split", csv("yoga,abc,1,2,tr\x07ain\n"), BadSplit, Some(3), Some("split")),
        ("bad UTF-8", [H.as_bytes(), b"yo\xFFga,abc,1,2,train\n"].concat(), BadEncoding, Some(2), Some("label")),
        ("line after CRLF blank lines", b"youtube_id,start,end\r\na,1,2\r\n\r\n\r\nb,2,1\r\n".to_vec(), EndNotAfterStart, Some(5), Some("end")),
        ("line after CR-only lines", b"youtube_id,start,end\ra,1,2\rb,x,2\r".to_vec(), BadNumber, Some(3), Some("start")),
        ("alias named in error", b"ytid,start,end\nabc,1,x\n".to_vec(), BadNumber, Some(2), Some("end")),
        ("truncated JSON", b"{\n\"a\": {\"annotations\": {\"segment\": [1, 2]}},\n\"b\": {\"annota".to_vec(), Truncated, Some(3), None),
        ("truncated JSON in segment", b"{\n\"a\": {\"annotations\": {\"segment\": [1,".to_vec(), Truncated, Some(2), Some("annotations.segment")),
        ("truncated JSON after entry", b"{\n\"a\": {\"annotations\": {\"segment\": [1, 2]}}\n".to_vec(), Truncated, Some(3), None),
        ("JSON bad id", json("\"a b\": {\"annotations\": {\"segment\": [1, 2]}}"), BadId, Some(3), Some("youtube_id")),
        ("JSON empty id", json("\"\": {\"annotations\": {\"segment\": [1, 2]}}"), MissingField, Some(3), Some("youtube_id")),
        ("JSON no annotations", json("\"a\": {\"subset\": \"train\"}"), MissingField, Some(3), Some("annotations")),
        ("JSON no segment", json("\"a\": {\"annotations\": {\"label\": \"x\"}}"), MissingField, Some(3), Some("annotations.segment")),
        ("JSON text segment", json("\"a\": {\"annotations\": {\"segment\": [\"1\", 2]}}"), BadNumber, Some(3), Some("annotations.segment")),
        ("JSON short segment", json("\"a\": {\"annotations\": {\"segment\": [1]}}"), BadNumber, Some(3), Some("annotations.segment")),
        ("JSON long segment", json("\"a\": {\"annotations\": {\"segment\": [1, 2, 3]}}"), BadNumber, Some(3), Some("annotations.segment")),
        ("JSON negative", json("\"a\": {\"annotations\": {\"segment\": [-1, 2]}}"), NegativeTime, Some(3), Some("annotations.segment")),
        ("JSON end before start", json("\"a\": {\"annotations\": {\"segment\": [3, 2]}}"), EndNotAfterStart, Some(3), Some("annotations.segment")),
        ("JSON huge number", json("\"a\": {\"annotations\": {\"segment\": [1, 1e999]}}"), BadNumber, Some(3), Some("annotations.segment")),
        ("JSON NUL label", json("\"a\": {\"annotations\": {\"label\": \"x\\u0000\", \"segment\": [1, 2]}}"), BadLabel, Some(3), Some("annotations.label")),
        ("JSON numeric label", json("\"a\": {\"annotations\": {\"label\": 7, \"segment\": [1, 2]}}"), Json, Some(3), Some("annotations.label")),
        ("JSON control subset", json("\"a\": {\"annotations\": {\"segment\": [1, 2]}, \"subset\": \"t\\u0007\"}"), BadSplit, Some(3), Some("subset")),
        ("JSON entry not an object", json("\"a\": [1, 2]"), Json, Some(3), None),
        ("JSON array", b"[1, 2]".to_vec(), Json, Some(1), None),
        ("JSON trailing garbage", b"{}\n}".to_vec(), Json, Some(2), None),
        ("JSON missing comma", b"{\n\"a\": {\"annotations\": {\"segment\": [1, 2]}}\n\"b\": {}}".to_vec(), Json, Some(3), None),
    ];
    for (name, bytes, kind, line, field) in cases {
        let err = match read_one(&bytes, &Filters::default()) {
            Ok(rows) => panic!("{name}: accepted {rows:?}"),
            Err(e) => e,
        };
        assert_eq!((err.kind, err.line, err.field.as_deref()), (kind, line, field), "{name}: {err}");
        assert!(err.file.ends_with("ann.txt"), "{name}: {err}");
    }
}

#[test]
fn first_error_names_its_file_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.csv", format!("{H}yoga,a,1,2,train\n").as_bytes());
    let bad = write(&dir, "bad.json", b"{\"a\": {\"annotations\": {\"segment\": [2, 1]}}}");
    let never = write(&dir, "never.csv", b"");
    let err = read_all(&[good.clone(), bad.clone(), never], &Filters::default()).unwrap_err();
    assert_eq!(err.file, bad);
    assert_eq!(
        err.to_string(),
        format!("{}:1: field `annotations.segment`: end 1 is not after start 2", bad.display())
    );
    let missing = dir.path().join("missing.csv");
    let err = read_all(&[good, missing.clone()], &Filters::default()).unwrap_err();
    assert_eq!((err.kind, err.file), (ErrorKind::Io, missing));
}

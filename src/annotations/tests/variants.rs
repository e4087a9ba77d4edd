//! Every accepted CSV and JSON variant, read back exactly.

use super::*;

#[test]
fn every_variant() {
    let cases: &[(&str, &[u8], &[Want])] = &[
        (
            "current DeepMind",
            b"label,youtube_id,time_start,time_end,split\ntestifying,---QUuC4vJs,84,94,validate\n",
            &[(Some("testifying"), "---QUuC4vJs", 84.0, 94.0, Some("validate"), 2)],
        ),
        (
            "2017 release: is_cc, quoted labels, val",
            b"label,youtube_id,time_start,time_end,split,is_cc\n\"air drumming\",--nQbRBEz2s,104,114,val,0\n",
            &[(Some("air drumming"), "--nQbRBEz2s", 104.0, 114.0, Some("validate"), 2)],
        ),
        (
            "unlabelled test file",
            b"youtube_id,time_start,time_end,split\nabc,1,11,test\ndef,2,12,holdout_test\n",
            &[(None, "abc", 1.0, 11.0, Some("test"), 2), (None, "def", 2.0, 12.0, Some("holdout_test"), 3)],
        ),
        (
            "any column order, upper-case headers and split",
            b"SPLIT,time_end,Label,time_start,youtube_id\nTrain,10,yoga,0,a-b_c\n",
            &[(Some("yoga"), "a-b_c", 0.0, 10.0, Some("train"), 2)],
        ),
        (
            "quoted label with comma and doubled quote",
            b"label,youtube_id,time_start,time_end,split\n\"a, \"\"b\"\"\",x,1,2,train\n",
            &[(Some("a, \"b\""), "x", 1.0, 2.0, Some("train"), 2)],
        ),
        (
            "float times",
            b"label,youtube_id,time_start,time_end,split\nyoga,x,17.0,27.0,train\nyoga,y,84.5,94.25,train\n",
            &[(Some("yoga"), "x", 17.0, 27.0, Some("train"), 2), (Some("yoga"), "y", 84.5, 94.25, Some("train"), 3)],
        ),
        (
            "BOM and CRLF",
            b"\xEF\xBB\xBFlabel,youtube_id,time_start,time_end,split\r\nyoga,x,1,2,train\r\n\r\nyoga,y,3,4,val\r\n",
            &[(Some("yoga"), "x", 1.0, 2.0, Some("train"), 2), (Some("yoga"), "y", 3.0, 4.0, Some("validate"), 4)],
        ),
        (
            "blank and whitespace-only lines keep line numbers",
            b"\nlabel,youtube_id,time_start,time_end\n\n  \nyoga, x ,1,2\n\n",
            &[(Some("yoga"), "x", 1.0, 2.0, None, 5)],
        ),
        (
            "AudioSet/VGGSound aliases",
            b"ytid,start_seconds,end_seconds\nabc,30.000,40.000\n",
            &[(None, "abc", 30.0, 40.0, None, 2)],
        ),
        (
            "video_id, start, end",
            b"video_id,start,end,label\nabc,1,2,yoga\n",
            &[(Some("yoga"), "abc", 1.0, 2.0, None, 2)],
        ),
        (
            "HACS clips: classname is the label, label is a flag, negatives (-1) skipped",
            b"classname,youtube_id,subset,start,end,label\nApplying sunscreen,--0edUL8zmA,training,92.0,94.0,1\n\
              Applying sunscreen,--0edUL8zmA,training,38.0,40.0,-1\nArchery,-0Bzp9ubvMM,validation,6.5,8.5,1.0\n",
            &[
                (Some("Applying sunscreen"), "--0edUL8zmA", 92.0, 94.0, Some("training"), 2),
                (Some("Archery"), "-0Bzp9ubvMM", 6.5, 8.5, Some("validation"), 4),
            ],
        ),
        (
            "empty label and split mean none",
            b"label,youtube_id,time_start,time_end,split\n,abc,1,2,\n",
            &[(None, "abc", 1.0, 2.0, None, 2)],
        ),
        (
            "quoted last field, no final newline",
            b"label,youtube_id,time_start,time_end,split\n\"a \"\"b\"\"\",x,1,2,\"train\"",
            &[(Some("a \"b\""), "x", 1.0, 2.0, Some("train"), 2)],
        ),
        ("header only", b"label,youtube_id,time_start,time_end,split\n", &[]),
        (
            "JSON",
            br#"{
  "---QUuC4vJs": {"annotations": {"label": "testifying", "segment": [84.0, 94.0]},
                  "duration": 10.0, "subset": "validate", "url": "https://www.youtube.com/watch?v=---QUuC4vJs"},
  "--33Lscn6sk": {"annotations": {"label": "", "segment": [4, 14]}, "subset": "test"},
  "x": {"duration": 10.0, "annotations": {"segment": [1.5, 2.5], "extra": [1, {"a": null}]}, "subset": "val"},
  "y": {"annotations": {"segment": [0, 1], "label": null}}
}"#,
            &[
                (Some("testifying"), "---QUuC4vJs", 84.0, 94.0, Some("validate"), 2),
                (None, "--33Lscn6sk", 4.0, 14.0, Some("test"), 4),
                (None, "x", 1.5, 2.5, Some("validate"), 5),
                (None, "y", 0.0, 1.0, None, 6),
            ],
        ),
        (
            "JSON with BOM, one line",
            b"\xEF\xBB\xBF {\"a\":{\"annotations\":{\"label\":\"yoga\",\"segment\":[0,10]}}}",
            &[(Some("yoga"), "a", 0.0, 10.0, None, 1)],
        ),
        ("empty JSON object", b"{}", &[]),
    ];
    for (name, bytes, want) in cases {
        let rows = read_one(bytes, &Filters::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(simplify(&rows), *want, "{name}");
    }
}

#[test]
fn hostile_labels_pass_through_unchanged() {
    let long = "x".repeat(300);
    let bytes = format!("{H}../../etc,-a,1,2,train\na/b,-b,1,2,train\n..,-c,1,2,train\n{long},-d,1,2,train\n");
    let rows = read_one(bytes.as_bytes(), &Filters::default()).unwrap();
    let labels: Vec<_> = rows.iter().map(|r| r.label.clone().unwrap()).collect();
    assert_eq!(labels, ["../../etc", "a/b", "..", long.as_str()]);
    let ids: Vec<_> = rows.iter().map(|r| r.youtube_id.as_str()).collect();
    assert_eq!(ids, ["-a", "-b", "-c", "-d"]);
}

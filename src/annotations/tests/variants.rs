//! Every accepted CSV and JSON variant, read back exactly: the variants are files under
//! `tests/data/annotation-variants`.

use super::*;

/// The folder of variant files, one file per variant, and what each reads as (`expected.tsv`).
const VARIANTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/annotation-variants");

/// `expected.tsv`: the rows each file gives, by file name (a file listed alone gives none).
/// [`Want`] with owned strings: (label, youtube_id, start, end, split, line).
type OwnedWant = (Option<String>, String, f64, f64, Option<String>, u64);

fn expected() -> std::collections::BTreeMap<String, Vec<OwnedWant>> {
    let text = std::fs::read_to_string(format!("{VARIANTS}/expected.tsv")).unwrap();
    let mut want = std::collections::BTreeMap::<_, Vec<_>>::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let rows = want.entry(f[0].to_string()).or_default();
        if f.len() == 1 {
            continue;
        }
        assert_eq!(f.len(), 7, "expected.tsv:{}: {line:?}", n + 1);
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let num = |s: &str| s.parse::<f64>().unwrap_or_else(|e| panic!("expected.tsv:{}: {s:?}: {e}", n + 1));
        rows.push((some(f[5]), f[2].to_string(), num(f[3]), num(f[4]), some(f[6]), f[1].parse().unwrap()));
    }
    want
}

/// Every accepted CSV and JSON variant, a file of `tests/data/annotation-variants` each (kept byte for
/// byte: BOMs, CRLF, no final newline), read back exactly as `expected.tsv` says.
#[test]
fn every_variant() {
    let want = expected();
    let mut files: Vec<String> = std::fs::read_dir(VARIANTS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "expected.tsv")
        .collect();
    files.sort();
    assert_eq!(files, want.keys().cloned().collect::<Vec<_>>(), "every file has its expected rows, and only those");
    assert!(files.len() >= 17, "{files:?}");
    for name in files {
        let path = std::path::Path::new(VARIANTS).join(&name);
        let rows = read_all(&[path], &Filters::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<OwnedWant> = simplify(&rows)
            .into_iter()
            .map(|(label, id, s, e, split, line)| {
                (label.map(str::to_string), id.to_string(), s, e, split.map(str::to_string), line)
            })
            .collect();
        assert_eq!(got, want[&name], "{name}");
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

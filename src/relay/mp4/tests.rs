use super::*;
use crate::isobmff::sample_sizes;

/// A box: size, type, body.
fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// A full box table: version/flags 0, entry count, entries of u32 fields.
fn table_box(kind: &[u8; 4], entries: &[&[u32]]) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        for v in *e {
            body.extend_from_slice(&v.to_be_bytes());
        }
    }
    bx(kind, &body)
}

/// A progressive track: `n` samples of `delta` ticks at `timescale`, `size` bytes each, `per_chunk`
/// samples per chunk at the given chunk offsets, optional 1-based sync samples and edit-list shift.
struct T<'a> {
    video: bool,
    timescale: u32,
    n: u32,
    delta: u32,
    size: u32,
    per_chunk: u32,
    chunks: &'a [u32],
    sync: Option<&'a [u32]>,
    shift: Option<u32>,
}

fn trak(t: &T) -> Vec<u8> {
    let mut mdhd = vec![0u8; 12];
    mdhd.extend_from_slice(&t.timescale.to_be_bytes());
    mdhd.extend_from_slice(&[0; 8]);
    let mut hdlr = vec![0u8; 8];
    hdlr.extend_from_slice(if t.video { b"vide" } else { b"soun" });
    hdlr.extend_from_slice(&[0; 12]);
    let mut stsz = vec![0u8; 4];
    stsz.extend_from_slice(&t.size.to_be_bytes());
    stsz.extend_from_slice(&t.n.to_be_bytes());
    let mut stbl = table_box(b"stts", &[&[t.n, t.delta]]);
    stbl.extend(table_box(b"stsc", &[&[1, t.per_chunk, 1]]));
    stbl.extend(bx(b"stsz", &stsz));
    let chunks: Vec<[u32; 1]> = t.chunks.iter().map(|c| [*c]).collect();
    stbl.extend(table_box(b"stco", &chunks.iter().map(|c| &c[..]).collect::<Vec<_>>()));
    if let Some(sync) = t.sync {
        let rows: Vec<[u32; 1]> = sync.iter().map(|s| [*s]).collect();
        stbl.extend(table_box(b"stss", &rows.iter().map(|r| &r[..]).collect::<Vec<_>>()));
    }
    let minf = bx(b"minf", &bx(b"stbl", &stbl));
    let mut mdia = bx(b"mdhd", &mdhd);
    mdia.extend(bx(b"hdlr", &hdlr));
    mdia.extend(minf);
    let mut out = Vec::new();
    if let Some(shift) = t.shift {
        out.extend(bx(b"edts", &table_box(b"elst", &[&[1000, shift, 0x10000]])));
    }
    out.extend(bx(b"mdia", &mdia));
    bx(b"trak", &out)
}

fn sidx(timescale: u32, first_offset: u32, refs: &[(u32, u32)]) -> Vec<u8> {
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&timescale.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&first_offset.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&(refs.len() as u16).to_be_bytes());
    for (size, duration) in refs {
        body.extend_from_slice(&size.to_be_bytes());
        body.extend_from_slice(&duration.to_be_bytes());
        body.extend_from_slice(&0x9000_0000u32.to_be_bytes());
    }
    bx(b"sidx", &body)
}

#[test]
fn scan_finds_where_the_header_ends() {
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0");
    let moov = bx(b"moov", &[7u8; 100]);
    let file = |parts: &[&[u8]]| parts.concat();
    let whole = file(&[&ftyp, &moov, &bx(b"mdat", &[0; 50])]);
    let moov_body = ftyp.len() + 8..ftyp.len() + moov.len();
    let header_end = (ftyp.len() + moov.len()) as u64;
    let frag = file(&[&ftyp, &moov, &sidx(1000, 0, &[(10, 1000)]), &bx(b"moof", &[0; 8])]);
    let sidx_start = ftyp.len() + moov.len();
    let cases: Vec<(&str, Vec<u8>, Scan)> = vec![
        ("empty", vec![], Scan::NeedUpTo(16)),
        ("half a box header", ftyp[..5].to_vec(), Scan::NeedUpTo(16)),
        ("moov cut short", whole[..ftyp.len() + 20].to_vec(), Scan::NeedUpTo(header_end + 8)),
        ("moov but not the next header", whole[..header_end as usize + 4].to_vec(), Scan::NeedUpTo(header_end + 8)),
        ("progressive", whole.clone(), Scan::Header { end: header_end, moov: moov_body.clone(), sidx: None }),
        (
            "fragmented",
            frag.clone(),
            Scan::Header {
                end: (frag.len() - 16) as u64,
                moov: moov_body.clone(),
                sidx: Some(sidx_start + 8..frag.len() - 16),
            },
        ),
        ("moov at the end", file(&[&ftyp, &bx(b"mdat", &[0; 50]), &moov]), Scan::Unknown),
        ("size smaller than its header", file(&[&ftyp, &[0, 0, 0, 4], b"moov"]), Scan::Unknown),
        ("huge box", file(&[&ftyp, &[0, 0, 0, 1], b"free", &u64::MAX.to_be_bytes()]), Scan::Unknown),
    ];
    for (name, prefix, want) in cases {
        assert_eq!(scan(&prefix), want, "{name}");
    }
}

fn progressive() -> Index {
    // Video: 10 samples of 0.5 s, 100 B each, sync at samples 1, 5, 9 (1-based), two chunks of 5.
    // Audio: 20 samples of 0.25 s, 10 B each, 4 chunks of 5, interleaved after each video chunk,
    // with an edit list that drops its first 0.25 s (1 sample) of priming.
    let video = T {
        video: true,
        timescale: 1000,
        n: 10,
        delta: 500,
        size: 100,
        per_chunk: 5,
        chunks: &[1000, 3000],
        sync: Some(&[1, 5, 9]),
        shift: None,
    };
    let audio = T {
        video: false,
        timescale: 4,
        n: 20,
        delta: 1,
        size: 10,
        per_chunk: 5,
        chunks: &[2000, 2100, 4000, 4100],
        sync: None,
        shift: Some(1),
    };
    let moov = bx(b"moov", &[trak(&video), trak(&audio)].concat());
    let body = 8..moov.len();
    Index::parse(&moov, body, None).expect("index")
}

#[test]
fn progressive_tables_flatten_to_samples() {
    let Index::Progressive(tracks) = progressive() else { panic!("not progressive") };
    let (v, a) = (&tracks[0], &tracks[1]);
    assert!(v.video && !a.video);
    assert_eq!(v.times[..3], [0.0, 0.5, 1.0]);
    assert_eq!(v.offsets, [1000, 1100, 1200, 1300, 1400, 3000, 3100, 3200, 3300, 3400]);
    assert_eq!(v.sync.as_deref(), Some(&[0, 4, 8][..]));
    assert_eq!(a.times[..2], [-0.25, 0.0]);
    assert_eq!(a.offsets[4..7], [2040, 2100, 2110]);
    assert_eq!(a.sync, None);
}

#[test]
fn progressive_window_spans() {
    let index = progressive();
    // (start, end, want): the video seeks to the sync sample at or before start; every track reads
    // from there to one sample past end + 0.5 s.
    let cases = [
        // Sync sample 4 (2.0 s) at 1400; audio from 2.0 s = sample 9 at 2140; end 3.5 s: video sample 8
        // (4.0 s) ends at 3399, audio sample 16 (3.75 s) at 4110 ends at 4119.
        (2.2, 3.0, (1400, 4119)),
        // From the start: sync sample 0 at 1000; end 1.5 s: video sample 4 (2.0 s) ends at 1499, audio
        // sample 8 (1.75 s) at 2130 ends at 2139.
        (0.0, 1.0, (1000, 2139)),
        // Past the end: sync sample 8 (4.0 s) at 3300; last samples of both tracks.
        (4.2, 9.0, (3300, 4149)),
    ];
    for (start, end, want) in cases {
        assert_eq!(index.window_span(start, end), Some(want), "{start}-{end}");
    }
}

#[test]
fn fragmented_window_spans() {
    // Three 2 s fragments of 1000 B right after a sidx that ends at byte 500.
    let s = sidx(1000, 0, &[(1000, 2000), (1000, 2000), (1000, 2000)]);
    let index = Index::parse(&s, 8..s.len(), Some(8..s.len())).expect("index");
    let Index::Fragmented(frags) = &index else { panic!("not fragmented") };
    let base = s.len() as u64;
    assert_eq!(frags[1], Fragment { offset: base + 1000, size: 1000, start: 2.0, duration: 2.0 });
    let cases = [
        // From fragment 1; end 3.5 s is 75% into it, plus 10%.
        (2.5, 3.0, (base + 1000, base + 1000 + 850 - 1)),
        // Fragment 0 to 85% of fragment 2.
        (0.0, 5.0, (base, base + 2000 + 850 - 1)),
        // Before the first fragment's start: fragment 0.
        (-1.0, 0.2, (base, base + 450 - 1)),
    ];
    for (start, end, want) in cases {
        assert_eq!(index.window_span(start, end), Some(want), "{start}-{end}");
    }
}

#[test]
fn hostile_indexes_are_refused_not_trusted() {
    // A sidx pointing to another sidx, a table claiming more entries than it holds, an empty moov.
    let mut nested = sidx(1000, 0, &[(1000, 2000)]);
    let at = nested.len() - 12;
    nested[at] |= 0x80;
    assert_eq!(Index::parse(&nested, 8..nested.len(), Some(8..nested.len())), None);
    let lying = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1];
    assert!(table(&lying, 8).is_none());
    assert_eq!(sample_sizes(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), None);
    let empty = bx(b"moov", &[]);
    assert_eq!(Index::parse(&empty, 8..8, None), None);
}

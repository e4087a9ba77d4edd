//! Reading ISO BMFF (MP4) boxes: bounds-checked helpers over a byte slice, shared by the relay's planning of
//! a source's byte ranges (`relay::mp4`) and the read-back of a finished clip (`tools::mp4clip`).

/// The type, header length and total size (`None`: to the end of the file) of the box at `buf[0..]`.
pub fn box_header(buf: &[u8]) -> Option<([u8; 4], usize, Option<u64>)> {
    let size = be_u32(buf, 0)?;
    let kind: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
    match size {
        0 => Some((kind, 8, None)),
        1 => Some((kind, 16, Some(be_u64(buf, 8)?))),
        n => Some((kind, 8, Some(u64::from(n)))),
    }
}

pub fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

pub fn be_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(buf.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The child boxes of a box body: (type, body).
pub fn children(body: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rest = body.get(pos..)?;
        let (kind, header_len, size) = box_header(rest)?;
        let size = size.map_or(Some(rest.len()), |s| usize::try_from(s).ok())?;
        let child = rest.get(header_len..size)?;
        pos += size;
        Some((kind, child))
    })
}

pub fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(body).find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// More samples than a day of 240 fps: not a file we plan for.
pub const MAX_SAMPLES: usize = 24 * 3600 * 240;

/// The entries of a full box table (`version/flags, entry_count, entries`), each `width` bytes.
pub fn table(body: &[u8], width: usize) -> Option<impl Iterator<Item = &[u8]>> {
    let count = be_u32(body, 4)? as usize;
    let entries = body.get(8..8usize.checked_add(count.checked_mul(width)?)?)?;
    Some(entries.chunks_exact(width))
}

pub fn sample_sizes(stsz: &[u8]) -> Option<Vec<u32>> {
    let uniform = be_u32(stsz, 4)?;
    let count = be_u32(stsz, 8)? as usize;
    if count > MAX_SAMPLES {
        return None;
    }
    if uniform != 0 {
        return Some(vec![uniform; count]);
    }
    let entries = stsz.get(12..12 + count.checked_mul(4)?)?;
    Some(entries.chunks_exact(4).map(|e| u32::from_be_bytes([e[0], e[1], e[2], e[3]])).collect())
}

/// Each sample's file offset from the chunk offsets, the sample-to-chunk runs and the sample sizes.
pub fn sample_offsets(chunks: &[u64], stsc: &[(u32, u32)], sizes: &[u32]) -> Option<Vec<u64>> {
    let mut offsets = Vec::with_capacity(sizes.len());
    for (run, &(first_chunk, per_chunk)) in stsc.iter().enumerate() {
        let next_first = stsc.get(run + 1).map_or(chunks.len() as u64 + 1, |r| u64::from(r.0));
        for chunk in u64::from(first_chunk.max(1))..next_first {
            let mut at = *chunks.get(usize::try_from(chunk - 1).ok()?)?;
            for _ in 0..per_chunk {
                let Some(&size) = sizes.get(offsets.len()) else { return Some(offsets) };
                offsets.push(at);
                at += u64::from(size);
            }
        }
    }
    Some(offsets)
}

/// Each sample's file offset and size, from a sample table (`stbl`): `stsz`, `stsc` and `co64` or `stco`.
pub fn sample_ranges(stbl: &[u8]) -> Option<(Vec<u64>, Vec<u32>)> {
    let sizes = sample_sizes(child(stbl, b"stsz")?)?;
    let chunks: Vec<u64> = if let Some(co64) = child(stbl, b"co64") {
        table(co64, 8)?.map(|e| be_u64(e, 0)).collect::<Option<_>>()?
    } else {
        table(child(stbl, b"stco")?, 4)?.map(|e| be_u32(e, 0).map(u64::from)).collect::<Option<_>>()?
    };
    let stsc: Vec<(u32, u32)> =
        table(child(stbl, b"stsc")?, 12)?.map(|e| Some((be_u32(e, 0)?, be_u32(e, 4)?))).collect::<Option<_>>()?;
    let offsets = sample_offsets(&chunks, &stsc, &sizes)?;
    Some((offsets, sizes))
}

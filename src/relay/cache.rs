//! What the relay already fetched for one registration. ffmpeg reads a file in several requests that
//! overlap (the header, then the first fragment from a fresh connection, then the window), and bytes
//! fetched once must not be fetched again.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Per registration; a clip's header and window at 360p are a few MB at most.
const LIMIT: usize = 16 << 20;

#[derive(Debug, Default)]
pub(super) struct Cache {
    /// Non-overlapping chunks by their first offset.
    chunks: BTreeMap<u64, Bytes>,
    size: usize,
}

impl Cache {
    /// Cached bytes starting at `offset` (the rest of one stored chunk), at most through `end`.
    pub fn get(&self, offset: u64, end: u64) -> Option<Bytes> {
        let (&at, chunk) = self.chunks.range(..=offset).next_back()?;
        let skip = usize::try_from(offset - at).ok()?;
        if skip >= chunk.len() || offset > end {
            return None;
        }
        let take = usize::try_from((end - offset).saturating_add(1)).unwrap_or(usize::MAX).min(chunk.len() - skip);
        Some(chunk.slice(skip..skip + take))
    }

    /// The first cached offset after `offset`: an upstream piece should stop before it.
    pub fn next_start(&self, offset: u64) -> Option<u64> {
        self.chunks.range(offset + 1..).next().map(|(&at, _)| at)
    }

    /// Stores a chunk unless it overlaps one already stored or the cache is full.
    pub fn put(&mut self, offset: u64, chunk: Bytes) {
        let end = offset + chunk.len() as u64;
        if chunk.is_empty() || self.size + chunk.len() > LIMIT {
            return;
        }
        let before = self.chunks.range(..=offset).next_back().is_some_and(|(&at, c)| at + c.len() as u64 > offset);
        let after = self.chunks.range(offset..).next().is_some_and(|(&at, _)| at < end);
        if !before && !after {
            self.size += chunk.len();
            self.chunks.insert(offset, chunk);
        }
    }

    /// How many bytes from offset 0 on are cached without a gap.
    pub fn contiguous(&self) -> u64 {
        let mut end = 0u64;
        for (&at, chunk) in &self.chunks {
            if at != end {
                break;
            }
            end += chunk.len() as u64;
        }
        end
    }

    /// A copy of the first `contiguous()` bytes.
    pub fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.contiguous() as usize);
        for (&at, chunk) in &self.chunks {
            if at != out.len() as u64 {
                break;
            }
            out.extend_from_slice(chunk);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(parts: &[(u64, &[u8])]) -> Cache {
        let mut c = Cache::default();
        for (at, bytes) in parts {
            c.put(*at, Bytes::copy_from_slice(bytes));
        }
        c
    }

    #[test]
    fn get_serves_the_tail_of_one_chunk_up_to_end() {
        let c = cache(&[(0, b"abcd"), (4, b"efgh"), (20, b"xyz")]);
        let cases: &[(u64, u64, Option<&[u8]>)] = &[
            (0, 100, Some(b"abcd")),
            (2, 100, Some(b"cd")),
            (2, 2, Some(b"c")),
            (5, 6, Some(b"fg")),
            (8, 100, None),
            (19, 100, None),
            (21, 21, Some(b"y")),
            (23, 100, None),
            (3, 1, None),
        ];
        for (offset, end, want) in cases {
            assert_eq!(c.get(*offset, *end).as_deref(), *want, "{offset}..={end}");
        }
        assert_eq!(c.next_start(0), Some(4));
        assert_eq!(c.next_start(4), Some(20));
        assert_eq!(c.next_start(20), None);
        assert_eq!(c.contiguous(), 8);
        assert_eq!(c.prefix(), b"abcdefgh");
    }

    #[test]
    fn overlapping_and_oversized_chunks_are_not_stored() {
        let mut c = cache(&[(10, b"0123456789")]);
        for (at, len) in [(5, 6), (12, 2), (19, 5), (0, 30)] {
            c.put(at, Bytes::from(vec![b'!'; len]));
        }
        assert_eq!(c.chunks.len(), 1);
        c.put(20, Bytes::from(vec![b'a'; 3]));
        c.put(0, Bytes::from(vec![b'b'; 10]));
        assert_eq!(c.contiguous(), 23);
        c.put(100, Bytes::from(vec![0; LIMIT]));
        assert_eq!(c.size, 23);
        assert_eq!(c.get(0, 5).as_deref(), Some(&b"bbbbbb"[..]));
    }
}

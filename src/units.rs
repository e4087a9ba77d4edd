//! Sizes for people, the one byte formatter of the crate (summary, status, report), and the hex of digests.

/// `1.5 MiB`-style sizes: binary units, one decimal, plain bytes below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Lowercase hex of `bytes`: the digests the journal, manifests, pins and packet checks keep.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_table() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (5 * 1024 * 1024, "5.0 MiB"),
            (3 << 40, "3.0 TiB"),
            (2 << 50, "2.0 PiB"),
            (5000 << 50, "5000.0 PiB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        for (bytes, want) in [
            (&[][..], ""),
            (&[0u8][..], "00"),
            (&[0x0f, 0xa0, 0xff][..], "0fa0ff"),
            (&[1, 35, 69, 103][..], "01234567"),
        ] {
            assert_eq!(hex(bytes), want);
        }
        // SHA-256 of "abc", as sha256sum prints it.
        use sha2::{Digest, Sha256};
        assert_eq!(hex(&Sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

//! Opens an annotation file and tells CSV from JSON by its first non-whitespace byte, not its extension.

use super::collect::Collector;
use super::error::{ErrorKind, InputError};
use super::presets::Preset;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Json,
}

/// The format from the start of a file (BOM already removed); `None` while only whitespace was seen.
/// `[` also counts as JSON so that an array gets a JSON error instead of an "unknown header".
pub(crate) fn sniff(prefix: &[u8]) -> Option<Format> {
    let first = prefix.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    Some(match first {
        b'{' | b'[' => Format::Json,
        _ => Format::Csv,
    })
}

/// Reads until the format is known. Returns the bytes read (BOM removed), so nothing needs to seek and
/// pipes work too.
fn read_prefix(path: &Path, file: &mut File) -> Result<(Vec<u8>, Option<Format>), InputError> {
    let mut prefix = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(InputError::io(path, &e)),
        };
        prefix.extend_from_slice(&chunk[..n]);
        let at_eof = n == 0;
        if prefix.len() < BOM.len() && !at_eof {
            continue;
        }
        let body = prefix.strip_prefix(BOM).unwrap_or(&prefix);
        let format = sniff(body);
        if format.is_some() || at_eof {
            if prefix.starts_with(BOM) {
                prefix.drain(..BOM.len());
            }
            return Ok((prefix, format));
        }
    }
}

/// Reads one file into `out`, in the format `preset` names (recognised from the file's start when `Auto`).
pub(crate) fn read_into(path: &Path, out: &mut Collector<'_>, preset: &Preset) -> Result<(), InputError> {
    let mut file = File::open(path).map_err(|e| InputError::io(path, &e))?;
    let (mut prefix, format) = read_prefix(path, &mut file)?;
    out.start_file(path);
    let recognised;
    let preset = match preset {
        Preset::Auto if format.is_some() => {
            // Enough of the file to see its first line or key.
            let mut more = Vec::new();
            (&mut file).take(4096).read_to_end(&mut more).map_err(|e| InputError::io(path, &e))?;
            prefix.extend_from_slice(&more);
            recognised = super::presets::recognise(&prefix);
            &recognised
        }
        other => other,
    };
    match preset {
        Preset::VggSound | Preset::ActivityNet | Preset::AudioSet | Preset::AvaKinetics | Preset::Columns(_) => {
            let mut data = prefix;
            file.read_to_end(&mut data).map_err(|e| InputError::io(path, &e))?;
            return match preset {
                Preset::VggSound => super::presets::read_vggsound(path, &data, out),
                Preset::Columns(map) => super::presets::read_columns(path, &data, map, out),
                Preset::AudioSet => super::presets::read_audioset(path, &data, out),
                Preset::AvaKinetics => super::presets::read_ava(path, &data, out),
                _ => super::presets::read_activitynet(path, &data, out),
            };
        }
        Preset::Auto | Preset::Kinetics => {}
    }
    match format {
        None => Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "empty file: no header")),
        Some(Format::Csv) => {
            let mut data = prefix;
            file.read_to_end(&mut data).map_err(|e| InputError::io(path, &e))?;
            super::csv::read(path, &data, out)
        }
        Some(Format::Json) => super::json::read(path, Cursor::new(prefix).chain(file), out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_first_non_whitespace_byte() {
        let cases: [(&[u8], Option<Format>); 7] = [
            (b"{\"a\": 1}", Some(Format::Json)),
            (b" \r\n\t {", Some(Format::Json)),
            (b"[1]", Some(Format::Json)),
            (b"label,youtube_id", Some(Format::Csv)),
            (b"\n\nyoutube_id,", Some(Format::Csv)),
            (b"  \n ", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }
}

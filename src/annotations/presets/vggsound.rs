//! VGGSound's `vggsound.csv`: no header, `youtube_id,start_seconds,label,split` a line (labels with a
//! comma are quoted), each clip the 10 s from its start.

use super::line::{numbered, Row};
use super::VGGSOUND_CLIP_SECONDS;
use crate::annotations::collect::{Checked, Collector};
use crate::annotations::error::{ErrorKind, InputError, Problem};
use crate::annotations::fields::{check_id, check_label, check_split, check_window, parse_time};
use std::borrow::Cow;
use std::path::Path;

const FIELDS: [&str; 4] = ["youtube_id", "start_seconds", "label", "split"];
const EXPECTED: &str = "4 fields (youtube_id,start_seconds,label,split)";

/// Reads a whole VGGSound file (without its BOM), offering each row to `out`; stops at the first error.
pub(crate) fn read(path: &Path, data: &[u8], out: &mut Collector<'_>) -> Result<(), InputError> {
    let text = super::line::text(path, data)?;
    let mut rows = 0usize;
    for (line, raw) in numbered(text) {
        if raw.trim().is_empty() {
            continue;
        }
        let row = Row::read(path, line, raw, &FIELDS, 4..=4, EXPECTED)?;
        let (fields, at) = (&row.fields, |i: usize| row.at(i));
        check_id(&fields[0]).map_err(at(0))?;
        let start = parse_time(&fields[1]).map_err(at(1))?;
        let end = start + VGGSOUND_CLIP_SECONDS;
        check_window(start, end).map_err(at(1))?;
        if fields[2].is_empty() {
            return Err(at(2)(Problem::new(ErrorKind::MissingField, "empty label")));
        }
        check_label(&fields[2]).map_err(at(2))?;
        check_split(&fields[3]).map_err(at(3))?;
        let mut fields = row.fields.into_iter();
        let (id, _, label, split) = (fields.next(), fields.next(), fields.next(), fields.next());
        out.offer(Checked {
            label,
            extra_labels: Vec::new(),
            boxes: Vec::new(),
            youtube_id: id.unwrap_or(Cow::Borrowed("")),
            time_start: start,
            time_end: end,
            split: split.filter(|s| !s.is_empty()),
            line,
        });
        rows += 1;
    }
    if rows == 0 {
        return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "empty file: no rows"));
    }
    Ok(())
}

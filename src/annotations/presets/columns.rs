//! `--columns`: any delimited file of YouTube clips, read through a column map the user gives
//! (`id=ytid,start=t0,end=t1,label=cls,split=subset`). Columns are named by the header, or by position
//! from 0 with `--no-header`; `--duration S` gives clips that have only a start; `--id-from-url` takes the
//! id out of a YouTube URL; `--delimiter` is any one character. A field never spans lines; quotes work as
//! in `line.rs`.

use super::line::{numbered, split};
use crate::annotations::collect::{Checked, Collector};
use crate::annotations::error::{ErrorKind, InputError, Problem};
use crate::annotations::fields::{check_id, check_label, check_split, check_window, parse_time};
use std::borrow::Cow;
use std::path::Path;

/// The keys a map may give, in the order messages list them.
pub const KEYS: [&str; 5] = ["id", "start", "end", "label", "split"];

/// One mapped column: a header name, or a position from 0 (`--no-header`).
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Name(String),
    Index(usize),
}

/// How to read a file whose shape the user describes.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMap {
    pub id: Column,
    pub start: Column,
    /// `None`: every clip lasts `duration`.
    pub end: Option<Column>,
    pub label: Option<Column>,
    pub split: Option<Column>,
    pub duration: Option<f64>,
    /// The id column holds YouTube URLs.
    pub id_from_url: bool,
    /// The first line names the columns.
    pub header: bool,
    pub delimiter: char,
}

/// The `--columns` options, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct MapOptions<'a> {
    pub columns: &'a str,
    pub duration: Option<f64>,
    pub id_from_url: bool,
    pub no_header: bool,
    pub delimiter: Option<&'a str>,
}

impl ColumnMap {
    /// Checks the options; the error says what to change.
    pub fn parse(o: &MapOptions<'_>) -> Result<ColumnMap, String> {
        let delimiter = match o.delimiter {
            Some(text) => parse_delimiter(text)?,
            None => ',',
        };
        let mut slots: [Option<Column>; 5] = Default::default();
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for item in o.columns.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(format!(
                    "--columns {:?}: an empty mapping; expected KEY=COLUMN, comma-separated",
                    o.columns
                ));
            }
            let Some((key, value)) = item.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
                return Err(format!("--columns: {item:?} is not KEY=COLUMN (keys: {})", KEYS.join(", ")));
            };
            let Some(k) = KEYS.iter().position(|&x| x == key) else {
                return Err(format!("--columns: unknown key {key:?} (keys: {})", KEYS.join(", ")));
            };
            if value.is_empty() {
                return Err(format!("--columns: {key}= names no column"));
            }
            if slots[k].is_some() {
                return Err(format!("--columns: {key} is mapped twice"));
            }
            if let Some((other, _)) = seen.iter().find(|(_, v)| *v == value) {
                return Err(format!("--columns: {other} and {key} both map to column {value:?}"));
            }
            seen.push((key, value));
            slots[k] = Some(if o.no_header {
                let i = value.parse::<usize>().map_err(|_| {
                    format!("--columns: with --no-header columns are positions from 0; {key}={value} is not one")
                })?;
                Column::Index(i)
            } else {
                Column::Name(value.to_string())
            });
        }
        let [id, start, end, label, split] = slots;
        let id = id.ok_or("--columns: no id column (id=COLUMN)")?;
        let start = start.ok_or("--columns: no start column (start=COLUMN)")?;
        match (&end, o.duration) {
            (Some(_), Some(_)) => {
                return Err("--duration is for files without an end column; --columns maps end".into())
            }
            (None, None) => return Err("--columns maps no end column: map end=COLUMN or give --duration S".into()),
            (None, Some(d)) if !(0.001..=crate::annotations::MAX_SECONDS).contains(&d) => {
                return Err(format!("--duration {d}: expected seconds, at least 0.001"));
            }
            _ => {}
        }
        Ok(ColumnMap {
            id,
            start,
            end,
            label,
            split,
            duration: o.duration,
            id_from_url: o.id_from_url,
            header: !o.no_header,
            delimiter,
        })
    }
}

/// `--delimiter`: one character, or `\t` for a tab; a quote or a line break cannot delimit.
pub fn parse_delimiter(text: &str) -> Result<char, String> {
    let c = match text {
        "\\t" | "tab" => '\t',
        _ => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => return Err(format!("--delimiter {text:?}: expected one character (\\t for a tab)")),
            }
        }
    };
    if matches!(c, '"' | '\n' | '\r') {
        return Err(format!("--delimiter {text:?}: a quote or a line break cannot delimit fields"));
    }
    Ok(c)
}

/// The map resolved against one file: field positions, and each one's name for messages.
struct Layout {
    id: usize,
    start: usize,
    end: Option<usize>,
    label: Option<usize>,
    split: Option<usize>,
    /// Fields every line has.
    width: usize,
    names: Vec<String>,
}

impl Layout {
    /// From the header's fields (`header`) or the first row's count of fields.
    fn new(map: &ColumnMap, header: Option<&[Cow<'_, str>]>, width: usize) -> Result<Layout, (Problem, String)> {
        let names: Vec<String> = match header {
            Some(fields) => fields.iter().map(|f| f.to_string()).collect(),
            None => (0..width).map(|i| format!("column {i}")).collect(),
        };
        let find = |key: &str, col: &Column| -> Result<usize, (Problem, String)> {
            match col {
                Column::Name(name) => {
                    let mut at = names.iter().enumerate().filter(|(_, n)| *n == name).map(|(i, _)| i);
                    let i = at.next().ok_or_else(|| {
                        let msg =
                            format!("--columns maps {key} to {name:?}, which the header lacks (it has {names:?})");
                        (Problem::new(ErrorKind::BadMapping, msg), name.clone())
                    })?;
                    if at.next().is_some() {
                        let msg = format!("--columns maps {key} to {name:?}, which the header names twice");
                        return Err((Problem::new(ErrorKind::BadMapping, msg), name.clone()));
                    }
                    Ok(i)
                }
                Column::Index(i) if *i < width => Ok(*i),
                Column::Index(i) => {
                    let msg = format!(
                        "--columns maps {key} to column {i}, but the line has {width} fields (0 to {})",
                        width.saturating_sub(1)
                    );
                    Err((Problem::new(ErrorKind::BadMapping, msg), format!("column {i}")))
                }
            }
        };
        let opt = |key: &str, col: &Option<Column>| col.as_ref().map(|c| find(key, c)).transpose();
        let mut layout = Layout {
            id: find("id", &map.id)?,
            start: find("start", &map.start)?,
            end: opt("end", &map.end)?,
            label: opt("label", &map.label)?,
            split: opt("split", &map.split)?,
            width,
            names,
        };
        if header.is_none() {
            // Without a header a field is named by its position and its key.
            let keys = [("id", Some(layout.id)), ("start", Some(layout.start)), ("end", layout.end)];
            let keys = keys.into_iter().chain([("label", layout.label), ("split", layout.split)]);
            for (key, at) in keys {
                if let Some(i) = at {
                    layout.names[i] = format!("column {i} ({key})");
                }
            }
        }
        Ok(layout)
    }

    /// Validates one line's fields into a row; the error carries the field's position.
    fn check<'a>(
        &self,
        map: &ColumnMap,
        mut fields: Vec<Cow<'a, str>>,
        line: u64,
    ) -> Result<Checked<'a>, (Problem, Option<usize>)> {
        if fields.len() != self.width {
            let like = if map.header { "the header" } else { "the first line" };
            let msg = format!("expected {} fields like {like}, found {}", self.width, fields.len());
            return Err((Problem::new(ErrorKind::FieldCount, msg), None));
        }
        let at = |i: usize| move |p: Problem| (p, Some(i));
        let raw_id = std::mem::take(&mut fields[self.id]);
        let youtube_id = if map.id_from_url {
            Cow::Owned(super::youtube_url::video_id(&raw_id).map_err(at(self.id))?.to_string())
        } else {
            check_id(&raw_id).map_err(at(self.id))?;
            raw_id
        };
        let start = parse_time(&fields[self.start]).map_err(at(self.start))?;
        let end = match (self.end, map.duration) {
            (Some(i), _) => parse_time(&fields[i]).map_err(at(i))?,
            (None, Some(d)) => start + d,
            (None, None) => unreachable!("ColumnMap::parse requires an end column or a duration"),
        };
        check_window(start, end).map_err(at(self.end.unwrap_or(self.start)))?;
        let mut text = |col: Option<usize>| col.map(|i| std::mem::take(&mut fields[i])).filter(|v| !v.is_empty());
        let label = text(self.label);
        if let (Some(v), Some(i)) = (&label, self.label) {
            check_label(v).map_err(at(i))?;
        }
        let split = text(self.split);
        if let (Some(v), Some(i)) = (&split, self.split) {
            check_split(v).map_err(at(i))?;
        }
        Ok(Checked {
            label,
            extra_labels: Vec::new(),
            boxes: Vec::new(),
            youtube_id,
            time_start: start,
            time_end: end,
            split,
            line,
        })
    }
}

/// Reads a whole file (without its BOM) through `map`, offering each row to `out`; stops at the first error.
pub(crate) fn read(path: &Path, data: &[u8], map: &ColumnMap, out: &mut Collector<'_>) -> Result<(), InputError> {
    let text = super::line::text(path, data)?;
    let mut lines = numbered(text).filter(|(_, l)| !l.trim().is_empty());
    let mut layout = None;
    if map.header {
        let Some((line, raw)) = lines.next() else {
            return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "empty file: no header"));
        };
        let names = split(raw, map.delimiter).map_err(|p| p.at(path, line, "header"))?;
        layout = Some(Layout::new(map, Some(&names), names.len()).map_err(|(p, f)| p.at(path, line, &f))?);
    }
    let mut rows = 0usize;
    for (line, raw) in lines {
        let fields = split(raw, map.delimiter).map_err(|p| p.at(path, line, "line"))?;
        if layout.is_none() {
            layout = Some(Layout::new(map, None, fields.len()).map_err(|(p, f)| p.at(path, line, &f))?);
        }
        let Some(layout) = &layout else { unreachable!("set just above") };
        let row = layout.check(map, fields, line).map_err(|(p, at)| match at {
            Some(i) => p.at(path, line, &layout.names[i]),
            None => InputError::new(path, Some(line), None, p.kind, p.message),
        })?;
        out.offer(row);
        rows += 1;
    }
    if rows == 0 {
        return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "no rows"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(columns: &str) -> MapOptions<'_> {
        MapOptions { columns, ..Default::default() }
    }

    #[test]
    fn maps_as_written() {
        let name = |s: &str| Column::Name(s.into());
        let m = ColumnMap::parse(&opts("id=ytid,start=t0,end=t1,label=cls,split=subset")).unwrap();
        assert_eq!((m.id, m.start, m.end), (name("ytid"), name("t0"), Some(name("t1"))));
        assert_eq!((m.label, m.split, m.header, m.delimiter), (Some(name("cls")), Some(name("subset")), true, ','));
        let m = ColumnMap::parse(&MapOptions {
            columns: " id = 2 , start=0",
            duration: Some(10.0),
            no_header: true,
            delimiter: Some("\\t"),
            id_from_url: true,
        })
        .unwrap();
        assert_eq!((m.id, m.start, m.end, m.label), (Column::Index(2), Column::Index(0), None, None));
        assert_eq!((m.duration, m.header, m.delimiter, m.id_from_url), (Some(10.0), false, '\t', true));
        // A header name may be anything but a comma, also a number.
        let m = ColumnMap::parse(&MapOptions { duration: Some(4.5), ..opts("id=YouTube ID,start=2") }).unwrap();
        assert_eq!((m.id, m.start), (name("YouTube ID"), name("2")));
    }

    #[test]
    fn bad_maps_say_what_to_change() {
        let d = Some(10.0);
        let cases: [(MapOptions, &str); 14] = [
            (opts(""), "an empty mapping"),
            (opts("id=a,,start=b,end=c"), "an empty mapping"),
            (opts("id=a,start"), "\"start\" is not KEY=COLUMN"),
            (opts("id=a,begin=b,end=c"), "unknown key \"begin\""),
            (opts("id=a,start=b,end=c,id=d"), "id is mapped twice"),
            (opts("id=a,start=a,end=c"), "id and start both map to column \"a\""),
            (opts("id=a,start=,end=c"), "start= names no column"),
            (opts("start=b,end=c"), "no id column"),
            (opts("id=a,end=c"), "no start column"),
            (opts("id=a,start=b"), "map end=COLUMN or give --duration S"),
            (MapOptions { duration: d, ..opts("id=a,start=b,end=c") }, "--duration is for files without an end"),
            (MapOptions { duration: Some(0.0), ..opts("id=a,start=b") }, "--duration 0"),
            (MapOptions { no_header: true, duration: d, ..opts("id=0,start=t0") }, "start=t0 is not one"),
            (MapOptions { no_header: true, duration: d, ..opts("id=0,start=-1") }, "start=-1 is not one"),
        ];
        for (o, want) in cases {
            let e = ColumnMap::parse(&o).unwrap_err();
            assert!(e.contains(want), "{:?}: {e} does not say {want}", o.columns);
        }
    }

    #[test]
    fn delimiters() {
        let ok = [
            (",", ','),
            (";", ';'),
            ("\t", '\t'),
            ("\\t", '\t'),
            ("tab", '\t'),
            ("|", '|'),
            (" ", ' '),
            ("\u{a7}", '\u{a7}'),
        ];
        for (text, want) in ok {
            assert_eq!(parse_delimiter(text), Ok(want), "{text:?}");
        }
        for text in ["", ",,", "ab", "\"", "\n", "\r", "\\n"] {
            assert!(parse_delimiter(text).is_err(), "{text:?}");
        }
    }

    /// (label, id, start, end, split, line) of each row read from `text` through `o`.
    type Seen = (Option<String>, String, f64, f64, Option<String>, u64);

    fn read_text(o: &MapOptions<'_>, text: &str) -> Result<Vec<Seen>, InputError> {
        let map = ColumnMap::parse(o).unwrap();
        let filters = crate::annotations::Filters::default();
        let mut rows = Vec::new();
        let mut push = |r: crate::annotations::Row| rows.push(r);
        let mut out = Collector::new(&filters, &mut push);
        read(Path::new("clips.txt"), text.as_bytes(), &map, &mut out)?;
        drop(out);
        Ok(rows.into_iter().map(|r| (r.label, r.youtube_id, r.time_start, r.time_end, r.split, r.line)).collect())
    }

    #[test]
    fn files_of_other_shapes() {
        let s = |x: &str| Some(x.to_string());
        // A header in another order with other names, extra columns, URLs, CRLF and a blank line.
        let text = "url;cls;t0;t1;subset;notes\r\n\
                    https://www.youtube.com/watch?v=--07WQ2iBlw&t=1s;javelin throw;1;11.5;Train;x\r\n\
                    \r\n\
                    https://youtu.be/0wR5jVB-WPk;\"a; b\";40.15;44.9;val;\r\n\
                    https://www.youtube.com/shorts/aqz-KE-bpKQ;;0;3;;\r\n";
        let o = MapOptions {
            columns: "id=url,start=t0,end=t1,label=cls,split=subset",
            id_from_url: true,
            delimiter: Some(";"),
            ..Default::default()
        };
        assert_eq!(
            read_text(&o, text).unwrap(),
            vec![
                (s("javelin throw"), "--07WQ2iBlw".into(), 1.0, 11.5, s("train"), 2),
                (s("a; b"), "0wR5jVB-WPk".into(), 40.15, 44.9, s("validate"), 4),
                (None, "aqz-KE-bpKQ".into(), 0.0, 3.0, None, 5),
            ]
        );
        // No header, tab-separated, a start only: the VGGSound shape with the columns moved about.
        let text = "30.5\tdog barking\t---g-f_I2yQ\n12\tcattle, bovinae cowbell\t-0BIyqJj9ZU\n";
        let o = MapOptions {
            columns: "id=2,start=0,label=1",
            no_header: true,
            duration: Some(10.0),
            delimiter: Some("\\t"),
            ..Default::default()
        };
        assert_eq!(
            read_text(&o, text).unwrap(),
            vec![
                (s("dog barking"), "---g-f_I2yQ".into(), 30.5, 40.5, None, 1),
                (s("cattle, bovinae cowbell"), "-0BIyqJj9ZU".into(), 12.0, 22.0, None, 2),
            ]
        );
    }

    #[test]
    fn bad_files_name_line_and_field() {
        let header = MapOptions { columns: "id=ytid,start=t0,end=t1,label=cls", ..Default::default() };
        let urls = MapOptions { id_from_url: true, ..header.clone() };
        let bare =
            MapOptions { columns: "id=0,start=1,label=3", no_header: true, duration: Some(5.0), ..Default::default() };
        let cases: [(&MapOptions, &str, ErrorKind, u64, Option<&str>); 13] = [
            (&header, "ytid,t0,t1\nabc,1,2\n", ErrorKind::BadMapping, 1, Some("cls")),
            (&header, "ytid,t0,t1,cls,t0\nabc,1,2,x,3\n", ErrorKind::BadMapping, 1, Some("t0")),
            (&header, "\n\nytid,t0,t1,cls\nabc,1,2,x\nabc,1,2\n", ErrorKind::FieldCount, 5, None),
            (&header, "ytid,t0,t1,cls\nab/c,1,2,x\n", ErrorKind::BadId, 2, Some("ytid")),
            (&header, "ytid,t0,t1,cls\nabc,1,2,x\nabc,x1,2,x\n", ErrorKind::BadNumber, 3, Some("t0")),
            (&header, "ytid,t0,t1,cls\nabc,5,2,x\n", ErrorKind::EndNotAfterStart, 2, Some("t1")),
            (&header, "ytid,t0,t1,cls\nabc,1,2,\"x\n", ErrorKind::UnterminatedQuote, 2, Some("line")),
            (&header, "ytid,t0,t1,cls\r\nabc,1,2,a\u{7}b\r\n", ErrorKind::BadLabel, 2, Some("cls")),
            (&header, "ytid,t0,t1,cls\n", ErrorKind::Empty, 1, None),
            (
                &urls,
                "ytid,t0,t1,cls\nhttps://evil.example/watch?v=--07WQ2iBlw,1,2,x\n",
                ErrorKind::BadUrl,
                2,
                Some("ytid"),
            ),
            (&bare, "abc,1,x\n", ErrorKind::BadMapping, 1, Some("column 3")),
            (&bare, "abc,1,x,y\nabc,-1,x,y\n", ErrorKind::NegativeTime, 2, Some("column 1 (start)")),
            (&bare, "abc,1,x,y\n\nabc,1,x\n", ErrorKind::FieldCount, 3, None),
        ];
        for (o, text, kind, line, field) in cases {
            let e = read_text(o, text).unwrap_err();
            assert_eq!((e.kind, e.line, e.field.as_deref()), (kind, Some(line), field), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("clips.txt:{line}")), "{e}");
        }
    }
}

//! DeepMind's JSON annotations, parsed streaming: one entry at a time, never a tree of the whole file
//! (the Kinetics-700 train file is about 200 MB).
//!
//! Shape: `{"<youtube_id>": {"annotations": {"label": "...", "segment": [start, end]}, "subset": "...",
//! "duration": ..., "url": ...}, ...}`. Unknown keys are skipped; an empty, null or missing label means an
//! unlabelled (test) row. Errors name the line of the entry's key, or serde_json's line for syntax errors.

use super::collect::{Checked, Collector};
use super::error::{ErrorKind, InputError, Problem};
use super::fields::{check_id, check_label, check_split, check_time, check_window};
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

/// A buffered reader that counts the newlines handed out, so the visitor knows the line it is on.
/// serde_json reads one byte at a time, so the count is exact at the parser's position.
struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    newlines: Rc<Cell<u64>>,
}

impl<R: Read> Read for LineReader<R> {
    #[inline]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // serde_json asks for one byte at a time: keep that path free of slicing and memcpy calls.
        if let ([slot], Some(&b)) = (&mut *out, self.buf[..self.len].get(self.pos)) {
            *slot = b;
            self.pos += 1;
            if b == b'\n' {
                self.newlines.set(self.newlines.get() + 1);
            }
            return Ok(1);
        }
        if self.pos == self.len {
            self.len = self.inner.read(&mut self.buf)?;
            self.pos = 0;
        }
        let n = out.len().min(self.len - self.pos);
        let chunk = &self.buf[self.pos..self.pos + n];
        out[..n].copy_from_slice(chunk);
        let seen = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        self.newlines.set(self.newlines.get() + seen);
        self.pos += n;
        Ok(n)
    }
}

/// What the visitors share: where the parser is, and the first validation failure.
struct Ctx<'c, 'f> {
    path: &'c Path,
    newlines: Rc<Cell<u64>>,
    /// The entry field whose value is being parsed, for serde_json's own errors.
    field: Cell<Option<&'static str>>,
    out: &'c mut Collector<'f>,
    failure: Option<InputError>,
}

#[derive(Default)]
struct Entry {
    has_annotations: bool,
    label: Option<String>,
    segment: Option<(f64, f64)>,
    subset: Option<String>,
}

impl Ctx<'_, '_> {
    fn accept(&mut self, id: String, entry: Entry, line: u64) -> Result<(), InputError> {
        let path = self.path;
        let at = |field: &'static str| move |p: Problem| p.at(path, line, field);
        check_id(&id).map_err(at("youtube_id"))?;
        let missing =
            |field: &str| InputError::new(path, Some(line), Some(field), ErrorKind::MissingField, "missing value");
        if !entry.has_annotations {
            return Err(missing("annotations"));
        }
        let (start, end) = entry.segment.ok_or_else(|| missing("annotations.segment"))?;
        let start = check_time(start).map_err(at("annotations.segment"))?;
        let end = check_time(end).map_err(at("annotations.segment"))?;
        check_window(start, end).map_err(at("annotations.segment"))?;
        let label = trimmed(entry.label);
        if let Some(label) = &label {
            check_label(label).map_err(at("annotations.label"))?;
        }
        let subset = trimmed(entry.subset);
        if let Some(subset) = &subset {
            check_split(subset).map_err(at("subset"))?;
        }
        self.out.offer(Checked {
            label: label.map(Cow::Owned),
            extra_labels: Vec::new(),
            boxes: Vec::new(),
            youtube_id: Cow::Owned(id),
            time_start: start,
            time_end: end,
            split: subset.map(Cow::Owned),
            line,
        });
        Ok(())
    }
}

fn trimmed(value: Option<String>) -> Option<String> {
    let value = value?;
    let t = value.trim();
    match t.len() {
        0 => None,
        n if n == value.len() => Some(value),
        _ => Some(t.to_owned()),
    }
}

/// Top level: the object keyed by youtube id.
struct Top<'a, 'c, 'f>(&'a mut Ctx<'c, 'f>);

impl<'de> Visitor<'de> for Top<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object keyed by youtube id")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(id) = map.next_key::<String>()? {
            let line = self.0.newlines.get() + 1;
            let entry = map.next_value_seed(EntrySeed(&self.0.field))?;
            if let Err(e) = self.0.accept(id, entry, line) {
                self.0.failure = Some(e);
                return Err(de::Error::custom("invalid entry"));
            }
        }
        Ok(())
    }
}

/// Keys of an entry or of its `annotations`, matched without allocating.
enum Key {
    Annotations,
    Subset,
    Label,
    Segment,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "annotations" => Key::Annotations,
                    "subset" => Key::Subset,
                    "label" => Key::Label,
                    "segment" => Key::Segment,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Parses the value of `key` with `field` set as context for serde_json's errors.
fn value<'de, A, T>(map: &mut A, field: &Cell<Option<&'static str>>, name: &'static str) -> Result<T, A::Error>
where
    A: MapAccess<'de>,
    T: de::Deserialize<'de>,
{
    let outer = field.replace(Some(name));
    let v = map.next_value()?;
    field.set(outer);
    Ok(v)
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

struct EntrySeed<'a>(&'a Cell<Option<&'static str>>);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entry object with `annotations`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut entry = Entry::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Annotations => {
                    self.0.set(Some("annotations"));
                    map.next_value_seed(AnnotationsSeed(self.0, &mut entry))?;
                    self.0.set(None);
                    entry.has_annotations = true;
                }
                Key::Subset => entry.subset = value(&mut map, self.0, "subset")?,
                _ => skip(&mut map)?,
            }
        }
        Ok(entry)
    }
}

struct AnnotationsSeed<'a>(&'a Cell<Option<&'static str>>, &'a mut Entry);

impl<'de> DeserializeSeed<'de> for AnnotationsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AnnotationsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an annotations object with `label` and `segment`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Label => self.1.label = value(&mut map, self.0, "annotations.label")?,
                Key::Segment => {
                    let Segment(s, e) = value(&mut map, self.0, "annotations.segment")?;
                    self.1.segment = Some((s, e));
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(())
    }
}

/// `[start, end]`, exactly two numbers.
struct Segment(f64, f64);

impl<'de> de::Deserialize<'de> for Segment {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Segment, D::Error> {
        d.deserialize_seq(SegmentVisitor)
    }
}

struct SegmentVisitor;

impl<'de> Visitor<'de> for SegmentVisitor {
    type Value = Segment;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [start, end] pair of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Segment, A::Error> {
        let start = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let end = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("expected a [start, end] pair of numbers, found more values"));
        }
        Ok(Segment(start, end))
    }
}

/// serde_json's message without its trailing " at line L column C", which the error carries separately.
fn bare_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &text[..i], err.column()),
        None => text,
    }
}

/// Streams one JSON file (without its BOM), offering each valid entry to `out`; stops at the first error.
pub(crate) fn read<R: Read>(path: &Path, reader: R, out: &mut Collector<'_>) -> Result<(), InputError> {
    let newlines = Rc::new(Cell::new(0));
    let reader = LineReader {
        inner: reader,
        buf: vec![0; 64 * 1024].into_boxed_slice(),
        pos: 0,
        len: 0,
        newlines: Rc::clone(&newlines),
    };
    let mut ctx = Ctx { path, newlines, field: Cell::new(None), out, failure: None };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = de.deserialize_map(Top(&mut ctx)).and_then(|()| de.end());
    if let Some(failure) = ctx.failure {
        return Err(failure);
    }
    result.map_err(|err| {
        use serde_json::error::Category;
        let field = ctx.field.get();
        let mut message = bare_message(&err);
        let kind = match err.classify() {
            Category::Io => ErrorKind::Io,
            Category::Eof => ErrorKind::Truncated,
            Category::Data if field == Some("annotations.segment") => ErrorKind::BadNumber,
            Category::Syntax if message.starts_with("number out of range") => ErrorKind::BadNumber,
            Category::Syntax | Category::Data => ErrorKind::Json,
        };
        if kind == ErrorKind::Truncated {
            message = format!("truncated JSON: {message}");
        }
        InputError::new(path, Some(err.line() as u64).filter(|&l| l > 0), field, kind, message)
    })
}

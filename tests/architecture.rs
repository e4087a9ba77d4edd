//! Dependencies between the files of `src/` point one way: this reads every `crate::`, `super::` and
//! `self::` path (in `use` lines and in code) and fails on any cycle between files, printing it with the
//! lines that make each step.
//!
//! A path is followed to the file that defines the item: `pub use` re-exports in a `mod.rs` are a facade,
//! not a dependency of their own. Test code (`tests.rs`, `tests/` folders, `#[cfg(test)] mod tests { }`) is
//! left out: a test may use anything. `main.rs` is the outermost layer and uses the library by name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles that exist today and have a reason to, as the sorted set of the files they join. Keep it short:
/// each entry is a design decision not yet made. The test fails when a cycle is missing from this list and
/// when an entry here no longer is one (remove it).
const KNOWN_CYCLES: &[(&[&str], &str)] = &[];

type Module = Vec<String>;

#[derive(Debug, Default)]
struct File {
    rel: String,
    /// Absolute paths this file names, with the line each appears on.
    paths: Vec<(Module, usize)>,
    /// `pub use` items: the name it is known by here → the path it stands for.
    reexports: BTreeMap<String, Module>,
    /// `pub use x::*`: names here may be any of these modules' items.
    globs: Vec<Module>,
}

#[test]
fn no_cycles_between_files_of_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_crate(&root);
    let graph = edges(&files);
    let mut found: Vec<Vec<String>> = strongly_connected(&graph).into_iter().filter(|c| c.len() > 1).collect();
    found.sort();
    let known: BTreeSet<Vec<String>> = KNOWN_CYCLES
        .iter()
        .map(|(files, _)| {
            let mut v: Vec<String> = files.iter().map(|f| f.to_string()).collect();
            v.sort();
            v
        })
        .collect();
    let mut report = Vec::new();
    for component in &found {
        if !known.contains(component) {
            report.push(format!("cycle: {}", describe_cycle(component, &graph)));
        }
    }
    for k in &known {
        if !found.contains(k) {
            report.push(format!("KNOWN_CYCLES lists {k:?}, which is no longer a cycle: remove it"));
        }
    }
    assert!(report.is_empty(), "{} problem(s) in the dependencies of src/:\n\n{}", report.len(), report.join("\n\n"));
}

/// The run loop does not know which store it drives: `download/scheduler.rs` reaches the journal's store, the
/// fleet's store and the fleet's database only through the `Store` trait of `download/store.rs`.
#[test]
fn the_run_loop_reaches_its_store_only_through_the_seam() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = edges(&read_crate(&root));
    let deps = &graph["download/scheduler.rs"];
    let concrete: Vec<&String> = deps
        .iter()
        .filter(|(to, _)| to.starts_with("fleet/") || to.starts_with("download/fleet/") || *to == "download/local.rs")
        .map(|(_, at)| at)
        .collect();
    assert!(concrete.is_empty(), "the run loop names a store of its own: {concrete:?}");
    assert!(deps.contains_key("download/store.rs"), "the run loop goes through the seam: {deps:?}");
    // Both stores implement it.
    for store in ["download/local.rs", "download/fleet/mod.rs"] {
        assert!(graph[store].contains_key("download/store.rs"), "{store} implements the store seam");
    }
}

/// The reader sees what a human sees: the paths of `use` trees, re-exports, inline paths, test code cut.
#[test]
fn the_reader_follows_use_trees_reexports_and_skips_tests() {
    let text = r#"
//! crate::commented::Out
pub use child::{Thing as Renamed, other::*};
use super::{self, sibling::{A, B}};
use crate::plain;
fn f() { let s = "crate::in_a_string"; let c = '\''; crate::inline::call::<'static>(); }
#[cfg(test)]
mod tests { use crate::only_tests; }
"#;
    let file = parse("a/b/mod.rs", &vec!["a".into(), "b".into()], &["child".to_string()].into(), text);
    let names: Vec<String> = file.paths.iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(names, ["a", "a::sibling::A", "a::sibling::B", "plain", "inline::call"]);
    assert_eq!(file.reexports["Renamed"].join("::"), "a::b::child::Thing");
    assert_eq!(file.globs, [vec!["a".to_string(), "b".into(), "child".into(), "other".into()]]);
}

#[test]
fn cycles_are_found_and_described() {
    let graph: Graph = BTreeMap::from([
        ("a.rs".to_string(), BTreeMap::from([("b.rs".to_string(), "a.rs:1".to_string())])),
        ("b.rs".to_string(), BTreeMap::from([("c.rs".to_string(), "b.rs:2".to_string())])),
        ("c.rs".to_string(), BTreeMap::from([("a.rs".to_string(), "c.rs:3".to_string())])),
        ("d.rs".to_string(), BTreeMap::from([("a.rs".to_string(), "d.rs:4".to_string())])),
    ]);
    let cycles: Vec<_> = strongly_connected(&graph).into_iter().filter(|c| c.len() > 1).collect();
    assert_eq!(cycles, [vec!["a.rs".to_string(), "b.rs".into(), "c.rs".into()]]);
    let text = describe_cycle(&cycles[0], &graph);
    assert!(text.starts_with("a.rs → b.rs → c.rs → a.rs"), "{text}");
    assert!(text.contains("c.rs:3"), "{text}");
}

fn read_crate(root: &Path) -> BTreeMap<Module, File> {
    let mut sources = Vec::new();
    walk(root, &mut sources);
    let modules: BTreeMap<Module, PathBuf> =
        sources.iter().filter_map(|p| Some((module_of(root, p)?, p.clone()))).collect();
    let mut files = BTreeMap::new();
    for (module, path) in &modules {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m.last().unwrap().clone())
            .collect();
        let text = std::fs::read_to_string(path).unwrap();
        files.insert(module.clone(), parse(&rel, module, &children, &text));
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                walk(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" && name != "main.rs" {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the crate root.
fn module_of(root: &Path, path: &Path) -> Option<Module> {
    let rel = path.strip_prefix(root).ok()?.with_extension("");
    let mut parts: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod") | Some("lib")) {
        parts.pop();
    }
    Some(parts)
}

fn parse(rel: &str, module: &Module, children: &BTreeSet<String>, text: &str) -> File {
    let tokens = tokenize(strip_tests(text));
    let mut file = File { rel: rel.to_string(), ..File::default() };
    let mut i = 0;
    while i < tokens.len() {
        let (tok, line) = (&tokens[i].0, tokens[i].1);
        if tok == "use" {
            let public = i > 0 && (tokens[i - 1].0 == "pub" || tokens[i - 1].0 == ")");
            let end = tokens[i..].iter().position(|t| t.0 == ";").map_or(tokens.len(), |p| i + p);
            let mut leaves = Vec::new();
            use_tree(&tokens[i + 1..end], &mut Vec::new(), &mut leaves);
            for (path, alias, glob) in leaves {
                let Some(abs) = absolute(&path, module, children) else { continue };
                if public {
                    match (glob, alias.or_else(|| path.last().cloned())) {
                        (true, _) => file.globs.push(abs.clone()),
                        (false, Some(name)) if name != "self" => {
                            file.reexports.insert(name, abs.clone());
                        }
                        _ => {}
                    }
                } else {
                    file.paths.push((abs, line));
                }
            }
            i = end + 1;
        } else if matches!(tok.as_str(), "crate" | "super" | "self") && tokens.get(i + 1).is_some_and(|t| t.0 == "::") {
            let mut path = vec![tok.clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t.0 == "::") && tokens.get(j + 1).is_some_and(|t| is_ident(&t.0)) {
                path.push(tokens[j + 1].0.clone());
                j += 2;
            }
            if let Some(abs) = absolute(&path, module, children) {
                file.paths.push((abs, line));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    file
}

/// Expands a `use` tree into its leaves: (path, alias, is a glob).
fn use_tree(tokens: &[(String, usize)], prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Option<String>, bool)>) {
    let depth = prefix.len();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].0.as_str() {
            "::" => i += 1,
            "{" => {
                let close = matching(tokens, i);
                for part in split_top(&tokens[i + 1..close]) {
                    use_tree(part, &mut prefix.clone(), out);
                }
                i = close + 1;
            }
            "*" => {
                out.push((prefix.clone(), None, true));
                i += 1;
            }
            "as" => {
                if let Some(last) = out.last_mut() {
                    last.1 = tokens.get(i + 1).map(|t| t.0.clone());
                }
                i += 2;
            }
            "self" if i + 1 == tokens.len() && depth > 0 => {
                out.push((prefix.clone(), None, false));
                i += 1;
            }
            t if is_ident(t) => {
                prefix.push(t.to_string());
                if tokens.get(i + 1).is_none_or(|n| n.0 == "as") {
                    out.push((prefix.clone(), None, false));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
}

fn matching(tokens: &[(String, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (k, t) in tokens.iter().enumerate().skip(open) {
        match t.0.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn split_top(tokens: &[(String, usize)]) -> Vec<&[(String, usize)]> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (k, t) in tokens.iter().enumerate() {
        match t.0.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&tokens[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// `crate::`, `super::`, `self::` or a child module's name at the front, made absolute; None for other
/// crates.
fn absolute(path: &[String], module: &Module, children: &BTreeSet<String>) -> Option<Module> {
    let mut base = module.clone();
    let mut rest = path;
    match path.first()?.as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        first if children.contains(first) => {}
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// File → file it depends on → where (`file:line`), following re-exports to the defining file.
fn edges(files: &BTreeMap<Module, File>) -> Graph {
    let mut graph: Graph = files.values().map(|f| (f.rel.clone(), BTreeMap::new())).collect();
    for file in files.values() {
        for (path, line) in &file.paths {
            let Some(target) = resolve(files, path, 0) else { continue };
            if target != file.rel {
                let at = format!("{}:{line}: {}", file.rel, path.join("::"));
                graph.get_mut(&file.rel).unwrap().entry(target).or_insert(at);
            }
        }
    }
    graph
}

/// The file that defines what `path` names: the deepest module on it, through that module's re-exports.
fn resolve(files: &BTreeMap<Module, File>, path: &[String], depth: usize) -> Option<String> {
    let len = (0..=path.len()).rev().find(|n| files.contains_key(&path[..*n]))?;
    let file = &files[&path[..len]];
    if len == 0 && path.is_empty() {
        return None;
    }
    if depth < 8 {
        if let Some(name) = path.get(len) {
            if let Some(target) = file.reexports.get(name) {
                let mut next = target.clone();
                next.extend(path[len + 1..].iter().cloned());
                return resolve(files, &next, depth + 1);
            }
            for glob in &file.globs {
                let mut next = glob.clone();
                next.extend(path[len..].iter().cloned());
                if let Some(found) = resolve(files, &next, depth + 1).filter(|f| *f != file.rel) {
                    return Some(found);
                }
            }
        }
    }
    // The crate root only declares modules: naming it is no dependency.
    (len > 0).then(|| file.rel.clone())
}

/// Tarjan's strongly connected components, each sorted.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One cycle through the component's first file, shortest first, with the line behind each step.
fn describe_cycle(component: &[String], graph: &Graph) -> String {
    let members: BTreeSet<&String> = component.iter().collect();
    let start = &component[0];
    // Breadth-first from `start` back to it, inside the component.
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut last = None;
    'search: while let Some(v) = queue.pop_front() {
        for w in graph[v].keys().filter(|w| members.contains(w)) {
            if w == start {
                last = Some(v);
                break 'search;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut between = Vec::new();
    let mut at = last.expect("a component of several files has a cycle through each");
    while at != start {
        between.push(at);
        at = came_from[at];
    }
    between.reverse();
    let chain: Vec<&String> = std::iter::once(start).chain(between).chain(std::iter::once(start)).collect();
    let arrows: Vec<&str> = chain.iter().map(|s| s.as_str()).collect();
    let mut text = arrows.join(" → ");
    for pair in chain.windows(2) {
        text.push_str(&format!("\n    {}", graph[pair[0]][pair[1]]));
    }
    if component.len() > chain.len() - 1 {
        text.push_str(&format!("\n    (the whole knot: {})", component.join(", ")));
    }
    text
}

/// Everything before the first inline test module.
fn strip_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let at = from + at;
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        let declares_inline = after.strip_prefix("mod ").is_some_and(|rest| {
            let name_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            rest[name_end..].trim_start().starts_with('{')
        });
        if declares_inline {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

fn is_ident(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && t.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::` and single punctuation, with line numbers; comments, strings and chars dropped.
fn tokenize(text: &str) -> Vec<(String, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && at(i + 1) == '/') {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                line += usize::from(chars[i] == '\n');
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a, 'static).
            if at(i + 1) == '\\' {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // Raw strings: r"..", r#".."#, br"..".
            if (word == "r" || word == "br") && (at(i) == '"' || at(i) == '#') {
                let hashes = chars[i..].iter().take_while(|c| **c == '#').count();
                i += hashes + 1;
                while i < chars.len() && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#')) {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
                i += 1 + hashes;
                continue;
            }
            out.push((word, line));
        } else if c == ':' && at(i + 1) == ':' {
            out.push(("::".to_string(), line));
            i += 2;
        } else {
            out.push((c.to_string(), line));
            i += 1;
        }
    }
    out
}

//! The shape of the source tree, checked from its text: the rules README's
//! "Where things are" promises. Every `src/` module opens with a `//!` doc
//! saying what it owns; no non-test source file is much over 700 lines; the
//! live collector never reaches into the replay mode; and no two files of
//! `src/` import each other, directly or around a circle.
//!
//! Imports are read from `use` trees and from `crate::`/`super::` paths in
//! code (comments and in-file test modules left out). A path is resolved to
//! the file that defines its item: through module files, and through a
//! parent's `pub use child::Name` re-export to the child that defines it, so
//! a re-export alone is never an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a non-test source file may be (the issue says "about 700").
const MAX_LINES: usize = 750;

struct Module {
    /// Path relative to the repository, for messages.
    file: String,
    /// Source without comments and without in-file `#[cfg(test)]` modules.
    code: String,
    /// Lines of the file up to its in-file test module.
    lines: usize,
    /// Whether the whole file is test code (`tests.rs`, or declared under `#[cfg(test)]`).
    test_only: bool,
    doc: bool,
}

/// Module path (`["flow", "key"]`; the crate root is `[]`) -> module.
fn modules() -> BTreeMap<Vec<String>, Module> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    walk(&root, &mut files);
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let mut path: Vec<String> =
            rel.iter().map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        match path.last().map(String::as_str) {
            Some("mod" | "lib") => {
                path.pop();
            }
            Some("main") => continue, // the binary: not part of the library's graph
            _ => {}
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let cut = test_module_start(&text).unwrap_or(text.len());
        let name = path.last().cloned().unwrap_or_default();
        out.insert(
            path,
            Module {
                file: format!("src/{}", rel.display()),
                code: strip_comments(&text[..cut]),
                lines: text[..cut].lines().count(),
                test_only: name == "tests" || name.ends_with("_tests"),
                doc: text.trim_start().starts_with("//!"),
            },
        );
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Where an in-file test module starts (`#[cfg(test)]` then `mod name {`).
fn test_module_start(text: &str) -> Option<usize> {
    let mut at = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            if let Some(next) = lines.peek() {
                let t = next.trim_start();
                if t.starts_with("mod ") && t.trim_end().ends_with('{') {
                    return Some(at);
                }
            }
        }
        at += line.len();
    }
    None
}

/// Drops `//` comments (doc comments too) and string literals' contents, so
/// that paths in prose or messages are not read as imports.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Every path a module names: expanded `use` trees and inline
/// `crate::`/`super::` paths, as segment lists; `pub use` trees come back
/// separately (a re-export of a child is not a dependency of the parent).
fn paths(code: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut out = Vec::new();
    let mut public = Vec::new();
    // `use` trees (possibly over several lines).
    let mut rest = code;
    while let Some(i) = find_word(rest, "use ") {
        let is_pub = rest[..i].trim_end().ends_with("pub");
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        let tree = after[..end].split_whitespace().collect::<String>();
        expand(&tree, &mut Vec::new(), if is_pub { &mut public } else { &mut out });
        rest = &after[end..];
    }
    // Inline paths.
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let word_start = i == 0 || !is_ident(rest.as_bytes()[i - 1] as char);
            let tail = &rest[i..];
            let len = tail
                .char_indices()
                .find(|&(_, c)| !(is_ident(c) || c == ':'))
                .map_or(tail.len(), |(j, _)| j);
            // (`super::{A, B}` is a use tree, read above.)
            if word_start && !tail[len..].starts_with('{') {
                out.push(
                    tail[..len].split("::").filter(|s| !s.is_empty()).map(String::from).collect(),
                );
            }
            rest = &rest[i + start.len()..];
        }
    }
    (out, public)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn find_word(s: &str, w: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(w) {
        let at = from + i;
        if at == 0 || !is_ident(s.as_bytes()[at - 1] as char) {
            return Some(at);
        }
        from = at + w.len();
    }
    None
}

/// Expands a use tree without whitespace (`crate::a::{b,c::{d,e}}`).
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head: Vec<String> =
            tree[..open].split("::").filter(|s| !s.is_empty()).map(String::from).collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let n = prefix.len();
        prefix.extend(head);
        let mut depth = 0;
        let mut from = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[from..i], prefix, out);
                    from = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[from..], prefix, out);
        prefix.truncate(n);
    } else if !tree.is_empty() {
        let mut p = prefix.clone();
        p.extend(tree.split(" as ").next().unwrap().split("::").map(String::from));
        let p: Vec<String> =
            p.into_iter().map(|s| s.split("as").next().unwrap().to_string()).collect();
        out.push(p);
    }
}

/// `pub use child::Name` and `pub use child::{A, B}` of a module: name -> child.
fn reexports(code: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = code;
    while let Some(i) = find_word(rest, "pub use ") {
        let after = &rest[i + 8..];
        let end = after.find(';').unwrap_or(after.len());
        let mut ps = Vec::new();
        expand(&after[..end].split_whitespace().collect::<String>(), &mut Vec::new(), &mut ps);
        for mut p in ps {
            if p.first().is_some_and(|s| s == "self") {
                p.remove(0);
            }
            if p.len() >= 2 && !matches!(p[0].as_str(), "crate" | "super" | "std" | "self") {
                out.insert(p.last().unwrap().clone(), p[0].clone());
            }
        }
        rest = &after[end..];
    }
    out
}

/// The module (key of `mods`) that defines what `path`, named in `from`, points at.
fn resolve(
    mods: &BTreeMap<Vec<String>, Module>,
    from: &[String],
    path: &[String],
) -> Option<Vec<String>> {
    let mut child = from.to_vec();
    child.push(path.first()?.clone());
    let (mut at, skip): (Vec<String>, usize) = match path.first()?.as_str() {
        "crate" => (Vec::new(), 1),
        "super" => (from[..from.len().checked_sub(1)?].to_vec(), 1),
        "self" => (from.to_vec(), 1),
        // `use child::Item` names a child module of `from`.
        _ if mods.contains_key(&child) => (from.to_vec(), 0),
        _ => return None, // std, external crates, or a local name
    };
    for s in &path[skip..] {
        if s == "super" {
            at.pop();
            continue;
        }
        let mut next = at.clone();
        next.push(s.clone());
        if mods.contains_key(&next) {
            at = next;
            continue;
        }
        // An item of `at`: follow re-exports to the child that defines it.
        let mut seen = 0;
        while let Some(child) = mods.get(&at).and_then(|m| reexports(&m.code).get(s).cloned()) {
            at.push(child);
            seen += 1;
            if seen > 8 || !mods.contains_key(&at) {
                at.pop();
                break;
            }
        }
        break;
    }
    Some(at)
}

fn graph(mods: &BTreeMap<Vec<String>, Module>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut g = BTreeMap::new();
    for (name, m) in mods {
        if m.test_only {
            continue;
        }
        let (uses, public) = paths(&m.code);
        let reexported = public.iter().filter_map(|p| resolve(mods, name, p));
        let edges: BTreeSet<Vec<String>> = uses
            .iter()
            .filter_map(|p| resolve(mods, name, p))
            // A parent's `pub use` of its own child is a re-export, not a use.
            .chain(reexported.filter(|to| !to.starts_with(name)))
            .filter(|to| to != name && mods.get(to).is_some_and(|m| !m.test_only))
            .collect();
        g.insert(name.clone(), edges);
    }
    g
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn every_module_says_what_it_owns() {
    let bad: Vec<String> = modules().values().filter(|m| !m.doc).map(|m| m.file.clone()).collect();
    assert!(bad.is_empty(), "these files do not open with a //! doc comment: {bad:?}");
}

#[test]
fn no_source_file_is_much_over_700_lines() {
    let bad: Vec<String> = modules()
        .values()
        .filter(|m| !m.test_only && m.lines > MAX_LINES)
        .map(|m| format!("{} ({} lines)", m.file, m.lines))
        .collect();
    assert!(bad.is_empty(), "split these files (at most {MAX_LINES} lines before tests): {bad:?}");
}

#[test]
fn the_collector_does_not_reach_into_replay() {
    let mods = modules();
    let g = graph(&mods);
    // Every file the collector's files reach, directly or through others
    // (with the first file on the way, for the message).
    let mut reached: BTreeMap<&Vec<String>, &Vec<String>> = BTreeMap::new();
    let mut todo: Vec<(&Vec<String>, &Vec<String>)> =
        g.keys().filter(|m| m.first().is_some_and(|r| r == "collect")).map(|m| (m, m)).collect();
    while let Some((m, from)) = todo.pop() {
        for t in g.get(m).into_iter().flatten() {
            if !reached.contains_key(t) {
                reached.insert(t, from);
                todo.push((t, from));
            }
        }
    }
    for (t, from) in reached {
        assert!(
            t.first().is_none_or(|r| r != "replay"),
            "{} reaches {}",
            mods[from].file,
            mods[t].file
        );
    }
}

/// The strongly connected components of more than one file (Tarjan).
fn circles(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, (usize, usize)>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(t: &mut T<'a>, n: &'a Vec<String>) {
        let i = t.index.len();
        t.index.insert(n, (i, i));
        t.stack.push(n);
        t.on.insert(n);
        for m in t.g.get(n).into_iter().flatten() {
            let m = t.g.get_key_value(m).map_or(m, |(k, _)| k);
            if !t.index.contains_key(m) {
                visit(t, m);
                let low = t.index[m].1.min(t.index[n].1);
                t.index.get_mut(n).unwrap().1 = low;
            } else if t.on.contains(m) {
                let low = t.index[m].0.min(t.index[n].1);
                t.index.get_mut(n).unwrap().1 = low;
            }
        }
        if t.index[n].0 == t.index[n].1 {
            let mut c = Vec::new();
            while let Some(m) = t.stack.pop() {
                t.on.remove(m);
                c.push(m.clone());
                if m == n {
                    break;
                }
            }
            if c.len() > 1 {
                c.reverse();
                t.out.push(c);
            }
        }
    }
    let mut t =
        T { g, index: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for n in g.keys() {
        if !t.index.contains_key(n) {
            visit(&mut t, n);
        }
    }
    t.out
}

#[test]
fn no_import_circle_among_source_files() {
    let mods = modules();
    let g = graph(&mods);
    let found: Vec<String> = circles(&g)
        .iter()
        .map(|c| {
            let files: Vec<&str> = c.iter().map(|m| mods[m].file.as_str()).collect();
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("{} -> {}", show(a), show(b)))
                })
                .collect();
            format!("{{{}}}: {}", files.join(", "), edges.join("; "))
        })
        .collect();
    assert!(found.is_empty(), "import circles among files:\n{}", found.join("\n"));
    // The checker itself: it must see the edges that do exist.
    let key = vec!["flow".to_string(), "key".to_string()];
    let record = vec!["flow".to_string(), "record".to_string()];
    assert!(g[&key].contains(&record), "flow/key.rs uses flow/record.rs: {:?}", g[&key]);
}

//! The house rules, checked on the source: the plumbing never imports the
//! engine, no two library files import each other (directly or in a
//! loop), the engine's facade stays short, and no function takes a
//! `too_many_arguments` exemption.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module path of a file (`migration::backup::name`; `""` for lib.rs).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut path = parts.join("::");
    if path == "lib" {
        path.clear();
    }
    path.strip_suffix("::mod")
        .map(str::to_string)
        .unwrap_or(path)
}

/// The code of a file without its comments and its `#[cfg(test)]` tail.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names: `crate::a::b`, `super::x`, and a child module's
/// name used as a path (`entry::run`).
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if starts_word && (bytes[i].is_alphabetic() || bytes[i] == '_') {
            let mut path = Vec::new();
            let mut j = i;
            loop {
                let begin = j;
                while j < bytes.len() && (bytes[j].is_alphanumeric() || bytes[j] == '_') {
                    j += 1;
                }
                path.push(bytes[begin..j].iter().collect::<String>());
                if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' {
                    j += 2;
                    if bytes[j] == '{' {
                        // `use a::{b, c::d}`: each item continues the path.
                        let end = j + bytes[j..].iter().position(|c| *c == '}').unwrap_or(0);
                        let group: String = bytes[j + 1..end].iter().collect();
                        for item in group.split(',') {
                            let mut p = path.clone();
                            p.extend(item.trim().split("::").map(|s| s.trim().to_string()));
                            out.push(p);
                        }
                        j = end;
                        break;
                    }
                    continue;
                }
                break;
            }
            if path.len() > 1 {
                out.push(path);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The modules `path`, named in module `from`, refers to (its longest
/// prefix that is a module of the crate).
fn target(from: &str, path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<String> = match path[0].as_str() {
        "crate" => Vec::new(),
        "super" | "self" => {
            let mut b: Vec<String> = from
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let mut rest = path;
            while rest.first().is_some_and(|p| p == "super") {
                b.pop();
                rest = &rest[1..];
            }
            if rest.first().is_some_and(|p| p == "self") {
                rest = &rest[1..];
            }
            return longest(b, rest, modules);
        }
        // A child module used by name (`entry::run` inside migration).
        _ => from
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    let rest = if path[0] == "crate" { &path[1..] } else { path };
    if path[0] != "crate" && !modules.contains(&join(&base, &rest[..1])) {
        return None;
    }
    longest(std::mem::take(&mut base), rest, modules)
}

fn join(base: &[String], rest: &[String]) -> String {
    base.iter()
        .chain(rest)
        .cloned()
        .collect::<Vec<_>>()
        .join("::")
}

fn longest(base: Vec<String>, rest: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=rest.len())
        .rev()
        .map(|n| join(&base, &rest[..n]))
        .find(|m| modules.contains(m))
}

/// Which library file imports which (a file's use of its own parent's
/// re-exports is not an edge: the parent is the folder's facade).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(&src());
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let mut to = BTreeSet::new();
        for path in named_paths(&code(file)) {
            if let Some(t) = target(&from, &path, &modules) {
                let parent = from.starts_with(&format!("{t}::"));
                if t != from && !t.is_empty() && !parent {
                    to.insert(t);
                }
            }
        }
        graph.insert(from, to);
    }
    graph
}

/// A loop through `start`, if there is one.
fn loop_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in &graph[&at] {
            if next == start {
                let mut found = path.clone();
                found.push(start.to_string());
                return Some(found);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_two_library_files_import_each_other_directly_or_in_a_loop() {
    let graph = import_graph();
    assert!(graph.len() > 50, "the graph found too few files");
    assert!(
        graph["migration::execute"].contains("migration::copy"),
        "the graph misses a plain import"
    );
    for module in graph.keys() {
        if let Some(found) = loop_through(&graph, module) {
            panic!("an import loop: {}", found.join(" -> "));
        }
    }
}

#[test]
fn the_plumbing_never_imports_the_engine() {
    let root = src();
    let mut low: Vec<PathBuf> = ["db", "decode", "connect"]
        .iter()
        .flat_map(|d| sources(&root.join(d)))
        .collect();
    for f in [
        "schema.rs",
        "error.rs",
        "decode.rs",
        "connect.rs",
        "text.rs",
    ] {
        low.push(root.join(f));
    }
    for file in low {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("crate::migration"),
            "{} imports the engine",
            file.display()
        );
    }
}

#[test]
fn the_engine_facade_is_short_and_nothing_takes_too_many_arguments() {
    let facade = std::fs::read_to_string(src().join("migration/mod.rs")).unwrap();
    assert!(
        facade.lines().count() < 150,
        "migration/mod.rs has {} lines",
        facade.lines().count()
    );
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for dir in [
        "memory-storage-turso/src",
        "src",
        "memory-cli/src",
        "bench/src",
    ] {
        for file in sources(&workspace.join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                !text.contains(concat!("too_many", "_arguments")),
                "{} allows too_many_arguments",
                file.display()
            );
        }
    }
}

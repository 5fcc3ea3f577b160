//! Keeps the tree honest: no module of a crate imports, directly or through others, a module
//! that imports it back (issue 19). Read from the source: each file is a module, and a path
//! `crate::a::b` or `super::x` in its code (not its comments, not its test modules) is an edge
//! to the longest module that path names.

// A test: a file it cannot read is a failure, said by the panic.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source roots, relative to the workspace.
const ROOTS: [&str; 5] = [
    "crates/rnn-core/src",
    "crates/weights/src",
    "crates/cli/src",
    "crates/python/src",
    "xtask/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a::b` for `a/b.rs` or `a/b/mod.rs`; `None` for test modules.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    if parts.last().is_some_and(|p| p == "tests") {
        return None;
    }
    Some(parts.join("::"))
}

/// The `crate::…` and `super::…` paths in `source`'s code, before any inline test module.
fn paths(source: &str) -> Vec<Vec<String>> {
    let code = source
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or("");
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let word_start = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
            let rest: String = chars[i..].iter().collect();
            if word_start && (rest.starts_with("crate::") || rest.starts_with("super::")) {
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                i += path.len();
                found.push(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                );
            } else {
                i += 1;
            }
        }
    }
    found
}

fn edges(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .filter_map(|f| module_of(root, &f).map(|m| (m, f)))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let mut to = BTreeSet::new();
        let source = std::fs::read_to_string(file).unwrap();
        for mut path in paths(&source) {
            let mut base: Vec<String> = if path[0] == "crate" {
                Vec::new()
            } else {
                module
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            };
            if path[0] == "crate" {
                path.remove(0);
            }
            while path.first().is_some_and(|p| p == "super") {
                path.remove(0);
                base.pop();
            }
            base.extend(path);
            let target = (1..=base.len())
                .rev()
                .map(|k| base[..k].join("::"))
                .find(|m| modules.contains_key(m));
            if let Some(target) = target {
                let nested = |a: &str, b: &str| a.starts_with(&format!("{b}::"));
                if &target != module && !nested(&target, module) && !nested(module, &target) {
                    to.insert(target);
                }
            }
        }
        graph.insert(module.clone(), to);
    }
    graph
}

/// A cycle through `start`, if there is one (depth-first over the edges).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, trail)) = stack.pop() {
        for next in &graph[&node] {
            if next == start {
                return Some(trail.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = trail.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_back_from_a_module_that_imports_it() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cycles = Vec::new();
    for root in ROOTS {
        let graph = edges(&workspace.join(root));
        assert!(graph.len() > 5, "{root}: read {} modules", graph.len());
        for module in graph.keys() {
            if let Some(cycle) = cycle_from(&graph, module) {
                cycles.push(format!("{root}: {}", cycle.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

/// The check finds a cycle where there is one.
#[test]
fn a_cycle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_string(), to.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycle_from(&graph, "a").unwrap(), ["a", "b", "c"]);
    assert!(cycle_from(&graph, "d").is_none());
    let paths = paths("use crate::x::y;\n// crate::z\nlet v = super::w::f();\n");
    assert_eq!(paths, [vec!["crate", "x", "y"], vec!["super", "w", "f"]]);
}

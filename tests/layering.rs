//! The library's stages (see the table in `src/lib.rs`): no module imports
//! one of a later stage, audience and compose stay independent, and the
//! module graph has no cycle. Read from the source, so a new `use` that
//! breaks the flow fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Stage of a top-level library module; equal stages must not meet unless
/// they are the same module (foundation modules may use each other).
fn stage(top: &str) -> Option<u8> {
    match top {
        "clock" | "config" | "diagnostic" | "input" | "model" => Some(0),
        "audience" | "compose" => Some(1),
        "deliver" => Some(2),
        "preview" | "archive" | "unsubscribe" => Some(3),
        _ => None,
    }
}

/// Module path (`deliver::engine`) of every library source file.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{name}::"), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let m = match name.as_str() {
                    "mod" => prefix.trim_end_matches("::").to_string(),
                    _ => format!("{prefix}{name}"),
                };
                out.insert(m, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut out,
    );
    // The binary is not part of the library's graph.
    out.retain(|m, _| !(m == "main" || m == "lib" || m == "cli" || m.starts_with("cli::")));
    out
}

/// Every `crate::…` path in a file's non-test code, `use crate::{a, b::c}`
/// groups expanded.
fn crate_paths(text: &str) -> Vec<String> {
    let code = text.split("\n#[cfg(test)]").next().unwrap_or(text);
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        expand("", rest, &mut out);
    }
    out
}

fn expand(prefix: &str, text: &str, out: &mut Vec<String>) {
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(prefix, group[start..i].trim(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(prefix, group[start..i].trim(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let path: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let path = path.trim_end_matches(':');
    let next = &text[path.len()..];
    if let Some(after) = next.strip_prefix("::{") {
        expand(&format!("{prefix}{path}::"), &format!("{{{after}"), out);
    } else if !path.is_empty() {
        out.push(format!("{prefix}{path}"));
    }
}

/// The module a path names: its longest prefix that is a module file.
fn resolve<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|p| modules.get_key_value(&p).map(|(k, _)| k.as_str()))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut g = BTreeMap::new();
    for (m, path) in &modules {
        let text = std::fs::read_to_string(path).unwrap();
        let uses: BTreeSet<String> = crate_paths(&text)
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .filter(|u| u != m && !m.starts_with(&format!("{u}::")))
            .map(str::to_string)
            .collect();
        g.insert(m.clone(), uses);
    }
    g
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn no_module_imports_a_later_stage_or_its_sibling() {
    let g = graph();
    assert!(g.contains_key("deliver::engine") && g.contains_key("compose::render"));
    let mut wrong = Vec::new();
    for (m, uses) in &g {
        let own = stage(top(m)).unwrap_or_else(|| panic!("{m}: add it to a stage"));
        for u in uses {
            let theirs = stage(top(u)).unwrap_or_else(|| panic!("{u}: add it to a stage"));
            let sibling = own == theirs && own > 0 && top(m) != top(u);
            if theirs > own || sibling {
                wrong.push(format!("{m} uses {u}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // Depth-first search; a module met again while on the path is a cycle.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for u in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(u, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(cycle) = visit(m, &g, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    let found = crate_paths("use crate::{a, b::{c, d::E}};\nfn f() { crate::x::y(); }");
    assert_eq!(found, ["a", "b::c", "b::d::E", "x::y"]);
}

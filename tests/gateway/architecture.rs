//! The shape of `src/` that docs/architecture.md describes: data flows one way (no module uses,
//! directly or through others, a module that uses it back), no file over 700 lines, no
//! function over 100 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The non-test code of a file, without line comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Top-level module → the top-level modules its non-test code names (`crate::x`, and
/// `use crate::{x, y::z}`).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = src();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = code(&std::fs::read_to_string(&file).unwrap());
        let deps = graph.entry(top.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // Names at depth 1 of a use group.
                let mut depth = 1;
                let mut start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 1 => break,
                        '}' => depth -= 1,
                        ',' if depth == 1 => start = true,
                        c if start && (c.is_ascii_alphanumeric() || c == '_') => {
                            start = false;
                            deps.insert(ident_at(&group[j..]));
                        }
                        _ => {}
                    }
                }
            } else {
                deps.insert(ident_at(rest));
            }
        }
        deps.remove(&top);
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    graph
}

/// A cycle through `start`, if any (depth-first).
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in graph.get(at).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(start.to_string());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = cycle_from(graph, start, next, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_of_src_uses_a_module_that_uses_it_back() {
    let graph = module_graph();
    assert!(
        graph.len() > 20,
        "the scan found too few modules: {graph:?}"
    );
    // The scan sees real edges (a broken scan would pass vacuously).
    assert!(graph["token"].contains("form") && graph["listener"].contains("service"));
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        if let Some(cycle) = cycle_from(&graph, module, module, &mut path, &mut BTreeSet::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn no_file_of_src_is_over_700_lines_and_no_function_over_100() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 700 {
            problems.push(format!("{}: {} lines", file.display(), lines.len()));
        }
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim_start();
            let is_fn = !l.starts_with("//")
                && (l.starts_with("fn ")
                    || l.starts_with("pub fn ")
                    || l.starts_with("pub(crate) fn ")
                    || l.starts_with("pub(super) fn ")
                    || l.starts_with("async fn ")
                    || l.starts_with("pub async fn ")
                    || l.starts_with("pub(crate) async fn ")
                    || l.starts_with("const fn "));
            if !is_fn {
                i += 1;
                continue;
            }
            // Count to the brace that closes the body (braces in strings are rare here and
            // only make a function look longer).
            let (mut depth, mut opened, mut j) = (0i32, false, i);
            while j < lines.len() {
                let line = lines[j].split("//").next().unwrap_or_default();
                if !opened && line.contains(';') && !line.contains('{') {
                    break;
                }
                for c in line.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if opened && depth <= 0 {
                    break;
                }
                j += 1;
            }
            if j - i + 1 > 100 {
                problems.push(format!(
                    "{}:{}: a function of {} lines: {}",
                    file.display(),
                    i + 1,
                    j - i + 1,
                    l
                ));
            }
            i += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

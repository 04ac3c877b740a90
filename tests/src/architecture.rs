//! The house rules Cargo cannot enforce: no module loops inside a crate.
//!
//! Cargo refuses cycles between crates. Inside one, `crate::a` may use
//! `crate::b` while `b` uses `a`; this test reads each host crate's sources,
//! builds the graph of its top-level modules from the paths they name
//! (`crate::x`, `use crate::{x, y}`), and fails on any cycle, printing it.
//! Tests (files named `tests*.rs` or `*_tests.rs`, and everything after a
//! `#[cfg(test)]` line) and comments are not the product's structure and
//! are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of the crate whose sources are in `src`, each with
/// the other top-level modules it names.
pub fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())).flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(name.as_str(), "lib" | "main") {
            continue;
        }
        let files = if path.is_dir() { rust_files(&path) } else { vec![path] };
        modules.entry(name).or_default().extend(files);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(name, files)| {
            let mut uses = BTreeSet::new();
            for file in files.iter().filter(|f| !is_test_file(f)) {
                let text = std::fs::read_to_string(file).unwrap();
                for used in named_modules(&product_code(&text)) {
                    if used != name && names.contains(&used) {
                        uses.insert(used);
                    }
                }
            }
            (name, uses)
        })
        .collect()
}

/// A cycle in `graph`, as the modules along it (first repeated at the end).
pub fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn is_test_file(path: &Path) -> bool {
    let stem = path.file_stem().unwrap().to_string_lossy();
    stem.starts_with("tests") || stem.ends_with("_tests") || stem == "proptests"
}

/// The file without comments and without what follows `#[cfg(test)]`.
fn product_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // `#[cfg(test)] mod tests;` declares a test file (skipped by
            // name); anything else is the inline test module, kept last.
            match lines.next() {
                Some(item) if item.trim_end().ends_with(';') => continue,
                _ => break,
            }
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The first segment after every `crate::` in `code`, including each name
/// of a `crate::{a, b::c}` group.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `rotator_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                out.insert(ident(item.trim()));
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(krate: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../host").join(krate).join("src")
    }

    #[test]
    fn no_host_crate_has_a_module_loop() {
        for krate in ["core", "daemon", "devserver", "plugin-test", "rotator", "cron", "guest-build"] {
            let graph = module_graph(&host(krate));
            if let Some(cycle) = find_cycle(&graph) {
                panic!("module loop in host/{krate}: {}\n{graph:#?}", cycle.join(" -> "));
            }
        }
    }

    /// The core's `lib.rs` lists its modules leaves first; the list must stay
    /// true: no module uses one listed after it.
    #[test]
    fn the_core_modules_are_listed_leaves_first() {
        let lib = std::fs::read_to_string(host("core").join("lib.rs")).unwrap();
        let order: Vec<String> = lib
            .lines()
            .filter_map(|l| l.strip_prefix("//! - [`"))
            .map(|l| l.split('`').next().unwrap().to_owned())
            .collect();
        let graph = module_graph(&host("core"));
        assert_eq!(
            order.iter().cloned().collect::<BTreeSet<_>>(),
            graph.keys().cloned().collect(),
            "lib.rs lists every module once"
        );
        for (i, module) in order.iter().enumerate() {
            for used in &graph[module] {
                let at = order.iter().position(|m| m == used).unwrap();
                assert!(at < i, "`{module}` uses `{used}`, listed after it in host/core/src/lib.rs");
            }
        }
    }

    /// `cargo install` builds the binary's normal and build dependencies:
    /// the crate that builds the hostile fixtures must never be one.
    #[test]
    fn fixtures_are_built_only_for_tests() {
        for krate in ["core", "daemon", "devserver", "plugin-test", "rotator", "cron", "guest-build"] {
            let manifest = std::fs::read_to_string(host(krate).join("../Cargo.toml")).unwrap();
            let table: toml::Table = manifest.parse().unwrap();
            for section in ["dependencies", "build-dependencies"] {
                let deps = table.get(section).and_then(|d| d.as_table());
                for test_only in ["rotator-test-artifacts", "rotator-tests"] {
                    assert!(
                        !deps.is_some_and(|d| d.contains_key(test_only)),
                        "host/{krate} has {test_only} in [{section}]"
                    );
                }
            }
        }
    }

    #[test]
    fn the_checker_sees_a_loop_and_a_grouped_use() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lib.rs"), "pub mod a; pub mod b; pub mod c;").unwrap();
        std::fs::write(dir.path().join("a.rs"), "use crate::{b::X, c};\n// crate::c in a comment\n").unwrap();
        let declared = "#[cfg(test)]\nmod tests;\nfn f() { crate::a::g() }\n";
        std::fs::write(dir.path().join("d.rs"), declared).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/mod.rs"), "fn f() { crate::c::g() }").unwrap();
        std::fs::write(dir.path().join("c.rs"), "pub fn g() {}\n#[cfg(test)]\nuse crate::a;\n").unwrap();
        let graph = module_graph(dir.path());
        assert_eq!(graph["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
        assert_eq!(graph["d"], BTreeSet::from(["a".to_owned()]), "a declared test module hides nothing");
        assert!(find_cycle(&graph).is_none(), "{graph:?}");
        std::fs::write(dir.path().join("c.rs"), "use crate::a::Y;").unwrap();
        let cycle = find_cycle(&module_graph(dir.path())).expect("a -> c -> a");
        assert_eq!(cycle.first(), cycle.last());
        assert!(cycle.len() >= 3, "{cycle:?}");
    }
}

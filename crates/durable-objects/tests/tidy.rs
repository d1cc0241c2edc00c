//! House rules checked on every test run: each Rust file starts with a `//!` doc that says
//! what the module owns; durable-runtime's modules import each other in layers, without a
//! cycle, with the commit path at the bottom; the deterministic core has no threads,
//! channels or clock.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            // Build output, and compile-fail inputs whose exact text is the test.
            if name != "target" && !name.starts_with('.') && !path.ends_with("tests/ui/fail") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "examples", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 20,
        "found only {} files: wrong root?",
        files.len()
    );
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "these files lack a leading `//!` module doc: {missing:#?}"
    );
}

// ----- the runtime's module layering ----------------------------------------------------------

/// The modules of a crate's `src`, by path (`commit::capture`), with their source text
/// (test modules cut off).
fn modules(src: &Path) -> std::collections::BTreeMap<String, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let name = rel.to_string_lossy().replace("/mod", "").replace('/', "::");
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            let code: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (name, code)
        })
        .collect()
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or("").trim();
        return vec![path.to_owned()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .flat_map(expand_use)
        .map(|path| {
            if path == "self" {
                prefix.to_owned()
            } else {
                format!("{prefix}::{path}")
            }
        })
        .collect()
}

/// Every `use` statement of `code` whose path starts with `root` (`crate`, `super`),
/// expanded, without the root.
fn uses(code: &str, root: &str) -> Vec<String> {
    let mut found = Vec::new();
    let needle = format!("use {root}::");
    let mut rest = code;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        let end = after.find(';').unwrap_or(after.len());
        found.extend(expand_use(&after[..end].replace('\n', " ")));
        rest = &after[end..];
    }
    found
}

/// Paths written inline (`crate::turn::current_instance()`), outside `use` statements.
fn inline_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].trim_end();
        let after = &rest[at + "crate::".len()..];
        let len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(after.len());
        if !before.ends_with("use") && !before.ends_with("pub") {
            found.push(after[..len].trim_end_matches(':').to_owned());
        }
        rest = &after[len..];
    }
    found
}

/// The module imports of the runtime crate: module -> modules it uses.
fn runtime_imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../durable-runtime/src");
    let modules = modules(&src);
    // Names a module re-exports from its own children resolve to the child.
    let mut reexports = std::collections::BTreeMap::new();
    for (module, code) in &modules {
        for path in uses(code, "self")
            .into_iter()
            .chain(code.split("use ").skip(1).flat_map(|rest| {
                let end = rest.find(';').unwrap_or(rest.len());
                let stmt = rest[..end].replace('\n', " ");
                let first = stmt.split("::").next().unwrap_or("").to_owned();
                let child = if module == "lib" {
                    first.clone()
                } else {
                    format!("{module}::{first}")
                };
                if modules.contains_key(&child) {
                    expand_use(&stmt)
                } else {
                    Vec::new()
                }
            }))
        {
            let mut parts: Vec<&str> = path.split("::").collect();
            if let Some(name) = parts.pop() {
                let child = parts.join("::");
                let child = if module == "lib" {
                    child
                } else {
                    format!("{module}::{child}")
                };
                if modules.contains_key(&child) {
                    reexports.insert((module.clone(), name.to_owned()), child);
                }
            }
        }
    }
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().find_map(|n| {
            let candidate = parts[..n].join("::");
            let candidate = if candidate.is_empty() {
                "lib".to_owned()
            } else {
                candidate
            };
            modules.contains_key(&candidate).then(|| {
                parts
                    .get(n)
                    .and_then(|name| reexports.get(&(candidate.clone(), (*name).to_owned())))
                    .cloned()
                    .unwrap_or(candidate)
            })
        })
    };
    let mut imports = std::collections::BTreeMap::new();
    for (module, code) in &modules {
        let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
        let targets: std::collections::BTreeSet<String> = uses(code, "crate")
            .into_iter()
            .chain(inline_paths(code))
            .chain(uses(code, "super").into_iter().map(|path| {
                if parent.is_empty() {
                    path
                } else {
                    format!("{parent}::{path}")
                }
            }))
            .filter_map(|path| resolve(&path))
            .filter(|target| target != module && !module.starts_with(&format!("{target}::")))
            .collect();
        imports.insert(module.clone(), targets);
    }
    imports
}

#[test]
fn the_runtime_modules_form_layers_without_cycles() {
    let imports = runtime_imports();
    assert!(imports.len() > 30, "found only {} modules", imports.len());
    assert!(
        imports["instance"].contains("commit") && imports["commit"].contains("alarm::scheduler"),
        "the import scan finds nothing: {imports:#?}"
    );
    // Depth-first search for a cycle; report its path.
    fn visit(
        module: &str,
        imports: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for target in imports.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(target, imports, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for module in imports.keys() {
        let cycle = visit(module, &imports, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "durable-runtime's modules import each other in a circle: {}; see the layers in ARCHITECTURE.md",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
    // The commit path sits below everything that uses it.
    let commit_path = [
        "core",
        "core::admission",
        "core::gate",
        "core::output_queue",
        "core::timetable",
        "commit",
        "commit::capture",
        "commit::signal",
        "history",
        "history::writer",
        "history::reconcile",
        "alarm::scheduler",
        "alarm::index_writer",
        "alarm",
        "batch_writer",
    ];
    for module in commit_path {
        for target in &imports[module] {
            assert!(
                commit_path.contains(&target.as_str()),
                "{module} (on the commit path) imports {target}, which is above it"
            );
        }
    }
}

#[test]
fn the_deterministic_core_has_no_threads_channels_or_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../durable-runtime/src/core");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() >= 5);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for forbidden in [
            "tokio",
            "std::thread",
            "Instant",
            "SystemTime",
            "mpsc",
            "Mutex",
            "Condvar",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}: the core is plain state, with time passed in",
                file.display()
            );
        }
    }
}

#[test]
fn unsafe_code_lives_in_one_module() {
    // The workspace denies `unsafe_code`; one module may allow it, for SQLite's C API.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "examples", "benches", "demo", "bench"] {
        rust_files(&root.join(dir), &mut files);
    }
    let allowing: Vec<String> = files
        .iter()
        .filter(|path| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .contains("allow(unsafe_code)")
        })
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .filter(|path| !path.ends_with("tidy.rs"))
        .collect();
    assert_eq!(allowing, ["crates/durable-storage/src/statement.rs"]);
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("unsafe_code = \"deny\""), "{manifest}");
}

// ----- the conformance table --------------------------------------------------------------

#[test]
fn the_conformance_table_names_every_spec_test_and_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let table = std::fs::read_to_string(root.join("docs/conformance.md")).unwrap();
    let mut files = Vec::new();
    for dir in [
        "crates/durable-objects/tests",
        "crates/durable-server/tests",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut defined = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("fn spec_") {
            let name: String = text[at + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.starts_with("spec_") && name.chars().nth(5).is_some_and(|c| c.is_ascii_digit())
            {
                defined.insert(name);
            }
        }
    }
    assert!(
        defined.len() > 100,
        "found only {} spec tests",
        defined.len()
    );
    let mut named = std::collections::BTreeSet::new();
    for (at, _) in table.match_indices("`spec_") {
        let name: String = table[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        named.insert(name);
    }
    let missing: Vec<_> = defined.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "spec tests not in docs/conformance.md: {missing:?}"
    );
    let unknown: Vec<_> = named.difference(&defined).collect();
    assert!(
        unknown.is_empty(),
        "docs/conformance.md names tests that do not exist: {unknown:?}"
    );
    // Every item of sections 1–12 has its row, in order.
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|line| line.split(' ').next())
        .filter(|id| id.contains('.') && id.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 146, "one row per checklist item");
    for status_line in table
        .lines()
        .filter(|l| l.starts_with("| ") && rows.iter().any(|id| l.starts_with(&format!("| {id} "))))
    {
        assert!(
            [
                "| passes |",
                "| deviation |",
                "| does not apply |",
                "| not yet |"
            ]
            .iter()
            .any(|status| status_line.contains(status)),
            "a row without a status: {status_line}"
        );
    }
}

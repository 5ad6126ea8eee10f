//! Tidy checks over the source tree: every Rust file says what it is for on its first line, no
//! test is switched off, every crate keeps to the workspace's lints, and the layers hold as
//! ARCHITECTURE.md draws them: dependencies point down only, only the binary reads the
//! environment, and `web` does not use the Ethereum client.

use std::path::{Path, PathBuf};

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

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn every_rust_file_opens_with_a_doc_line_and_no_test_is_ignored() {
    let mut files = Vec::new();
    rust_files(&crates_dir(), &mut files);
    assert!(
        files.len() > 20,
        "found the sources ({} files)",
        files.len()
    );
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!(
                "{}: the first line is not a `//!` comment",
                file.display()
            ));
        }
        if text.contains(concat!("#[", "ignore")) {
            problems.push(format!(
                "{}: an ignored test proves nothing",
                file.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            assert!(
                text.contains("[lints]\nworkspace = true"),
                "{} does not inherit the workspace lints",
                manifest.display()
            );
        }
    }
}

/// The crates in ARCHITECTURE.md's layer block, top to bottom.
fn layers() -> Vec<String> {
    let text = std::fs::read_to_string(crates_dir().join("../ARCHITECTURE.md")).unwrap();
    let block = text
        .split("```")
        .nth(1)
        .expect("ARCHITECTURE.md draws the layers in its first code block");
    block
        .lines()
        .filter_map(|l| l.strip_prefix("crates/"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The workspace crates a manifest's `[dependencies]` (not dev-dependencies) name.
fn workspace_dependencies(manifest: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps
            && let Some(name) = line.split(['.', ' ', '=']).next()
            && (name == "medledger" || name.starts_with("medledger-"))
        {
            deps.push(name.trim_start_matches("medledger-").to_string());
        }
        if in_deps && line.starts_with("alloy") {
            deps.push("alloy".into());
        }
    }
    deps
}

/// The layering broken by `deps` of `krate` (its position `rank` among `layers`), as messages.
fn layer_violations(layers: &[String], krate: &str, deps: &[String]) -> Vec<String> {
    let rank = |name: &str| layers.iter().position(|l| l == name);
    let Some(own) = rank(krate) else {
        return vec![format!(
            "crate {krate} is not drawn in ARCHITECTURE.md's layers"
        )];
    };
    let forbidden: &[&str] = match krate {
        "records" => &["chain", "rpc"],
        "web" => &["chain", "rpc", "alloy"],
        _ => &[],
    };
    let mut out = Vec::new();
    for dep in deps {
        if forbidden.contains(&dep.as_str()) {
            out.push(format!("{krate} must not depend on {dep}"));
        } else if dep != "alloy" && rank(dep).is_none_or(|r| r <= own) {
            out.push(format!(
                "{krate} depends on {dep}, which is not drawn below it"
            ));
        }
    }
    out
}

#[test]
fn crate_dependencies_point_down_the_layers_architecture_draws() {
    let layers = layers();
    assert!(layers.len() >= 7, "the layers: {layers:?}");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let krate = dir.file_name().unwrap().to_string_lossy().into_owned();
        problems.extend(layer_violations(
            &layers,
            &krate,
            &workspace_dependencies(&manifest),
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // And the check itself catches what it is for.
    assert_eq!(
        layer_violations(&layers, "records", &["chain".into()]),
        ["records must not depend on chain"]
    );
    assert_eq!(
        layer_violations(&layers, "vault", &["web".into()]),
        ["vault depends on web, which is not drawn below it"]
    );
    assert_eq!(
        layer_violations(&layers, "web", &["alloy".into()]),
        ["web must not depend on alloy"]
    );
}

#[test]
fn only_the_binary_reads_the_environment_and_web_does_not_use_the_ethereum_client() {
    let mut problems = Vec::new();
    for krate in ["chain", "rpc", "vault", "records", "web", "medledger"] {
        let mut files = Vec::new();
        rust_files(&crates_dir().join(krate).join("src"), &mut files);
        // The binary's own files (its entry point, flags and commands) read args and env; its
        // library (the system, keys) is given a `Config` and reads neither.
        files.retain(|f| {
            krate != "medledger" || !["main.rs", "cli.rs", "serve.rs"].contains(&file_name(f))
        });
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Code under test may do what it likes; the library code may not.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for reads in ["env::var", "env::args", "env::vars", "var_os("] {
                if code.contains(reads) {
                    problems.push(format!(
                        "{}: reads the environment ({reads})",
                        file.display()
                    ));
                }
            }
            if krate == "web" && code.contains("alloy") {
                problems.push(format!("{}: uses alloy", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

//! Tidy checks over the source tree: every Rust file says what it is for on its first line, no
//! test is switched off, and every crate keeps to the workspace's lints.

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

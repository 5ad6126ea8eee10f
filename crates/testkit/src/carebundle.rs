//! Synthetic patients' FHIR R4 transaction bundles from PyPI `carebundle` (deterministic for a
//! seed), as `scripts/fhir-deps` installs it into `.tools/fhir-venv`.

use std::path::{Path, PathBuf};

/// The repository's root (this crate is `crates/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the FHIR test tools; fails saying how to install it when it is missing.
pub fn fhir_python() -> PathBuf {
    let python = repo_root().join(".tools/fhir-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/fhir-deps (scripts/test does)",
        python.display()
    );
    python
}

/// Writes `count` bundles of `profile` generated with `seed` into `dir`: their files, in order.
pub fn carebundles(dir: &Path, profile: &str, count: usize, seed: u64) -> Vec<PathBuf> {
    let carebundle = fhir_python().with_file_name("carebundle");
    let out = std::process::Command::new(&carebundle)
        .args([
            "generate",
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--profile", profile, "--out"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", carebundle.display()));
    assert!(
        out.status.success(),
        "carebundle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("{profile}-{seed}-");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the bundles' directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), count, "carebundle wrote {files:?}");
    files
}

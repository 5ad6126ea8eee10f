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

/// A wall inside a crate: text that only some of its files may contain.
struct Wall {
    /// What the wall keeps, as a failure says it.
    what: &'static str,
    /// Whether a line (of code, outside tests) breaks it.
    breaks: fn(&str) -> bool,
    /// Whether a file (its path under the crate's `src/`) may hold such lines.
    allowed: fn(&str) -> bool,
}

/// Whether `line` names `word` as a whole identifier (not inside a longer one).
fn names(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Whether `line` reads the field `path` (not a method of the same name).
fn field(line: &str, path: &str) -> bool {
    line.match_indices(path).any(|(i, _)| {
        let after = line[i + path.len()..].chars().next();
        !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '(')
    })
}

/// A `use medledger_vault::…` that brings in `item`, or a path to it.
fn uses_vault(line: &str, item: &str) -> bool {
    line.contains(&format!("medledger_vault::{item}"))
        || (line.contains("medledger_vault::{") && names(line, item))
}

/// The walls of `records`, each one a rule of DESIGN.md's "Walls inside the domain".
const RECORDS_WALLS: [Wall; 6] = [
    Wall {
        what: "SQL outside the store (store/, db.rs)",
        breaks: |l| l.contains("sqlx::query"),
        allowed: |f| f.starts_with("store/") || f == "db.rs",
    },
    Wall {
        what: "unwrapping a data key or opening sealed bytes outside the keyring",
        breaks: |l| uses_vault(l, "unwrap") || uses_vault(l, "open"),
        // A session's key is sealed under half of the session token, not wrapped: sessions.rs
        // opens that and nothing else.
        allowed: |f| f == "keyring.rs" || f == "sessions.rs",
    },
    Wall {
        what: "a deployment secret (the escrow or research key) outside the keyring",
        breaks: |l| {
            names(l, "Keyring::new") || field(l, "self.escrow") || field(l, "self.research")
        },
        allowed: |f| f == "keyring.rs",
    },
    Wall {
        what: "an access proof made outside access.rs",
        breaks: |l| {
            ["Allowed {", "Participating {", "Own {"].iter().any(|p| {
                l.match_indices(p)
                    .any(|(i, _)| !l[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
            })
        },
        allowed: |f| f == "access.rs",
    },
    Wall {
        what: "a disclosure made outside the read log (disclosure.rs)",
        breaks: |l| l.contains("Disclosed {") || l.contains("Unlogged {"),
        allowed: |f| f == "disclosure.rs",
    },
    Wall {
        what: "a use case extending App (each is a struct of its own parts, built in App::open)",
        breaks: |l| l.starts_with("impl App {") || l.starts_with("impl App<"),
        allowed: |f| f == "app.rs",
    },
];

/// The lines of `code` (a file under `src/`, at `path`) that break one of `walls`.
fn wall_violations(walls: &[Wall], krate: &str, path: &str, code: &str) -> Vec<String> {
    // Code under test may build what it likes; the library may not.
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for wall in walls {
            if (wall.breaks)(line) && !(wall.allowed)(path) {
                out.push(format!(
                    "crates/{krate}/src/{path}:{}: {}",
                    n + 1,
                    wall.what
                ));
            }
        }
    }
    out
}

/// Each file of `krate`'s `src/`, as (its path under `src/`, its text).
fn sources(krate: &str) -> Vec<(String, String)> {
    let src = crates_dir().join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        .map(|f| {
            let path = f
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (path, std::fs::read_to_string(f).unwrap())
        })
        .collect()
}

/// Whether a file is test code only (declared under `#[cfg(test)]` by its parent: a module's
/// `tests.rs`, or the crate's `testing.rs` harness).
fn test_only(path: &str) -> bool {
    path.ends_with("tests.rs") || path == "testing.rs"
}

#[test]
fn the_walls_inside_the_domain_hold() {
    let mut problems = Vec::new();
    for (path, code) in sources("records") {
        if test_only(&path) {
            continue;
        }
        problems.extend(wall_violations(&RECORDS_WALLS, "records", &path, &code));
    }
    // A file skipped as test code is one: its parent declares it under `#[cfg(test)]`.
    let records = sources("records");
    for (path, _) in records.iter().filter(|(p, _)| test_only(p)) {
        let name = path.rsplit('/').next().unwrap().trim_end_matches(".rs");
        let parent = match path.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}.rs"),
            None => "lib.rs".to_string(),
        };
        let declared = records.iter().any(|(p, code)| {
            (p == &parent || p == &parent.replace(".rs", "/mod.rs"))
                && code.contains(&format!("#[cfg(test)]\nmod {name};"))
        });
        if !declared {
            problems.push(format!(
                "crates/records/src/{path}: test code not declared under #[cfg(test)] in {parent}"
            ));
        }
    }
    // The binary builds the keyring from the key files in one place.
    for (path, code) in sources("medledger") {
        if path != "system.rs" && code.contains("Keyring::new") {
            problems.push(format!("crates/medledger/src/{path}: builds a keyring"));
        }
    }
    // Above the domain nobody speaks SQL, unwraps a key or opens sealed bytes.
    for krate in ["web", "medledger"] {
        for (path, code) in sources(krate) {
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                if line.contains("sqlx") {
                    problems.push(format!("crates/{krate}/src/{path}:{}: SQL", n + 1));
                }
                if uses_vault(line, "unwrap") || uses_vault(line, "open") {
                    problems.push(format!(
                        "crates/{krate}/src/{path}:{}: opens sealed data",
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // And each wall catches what it is for: a deliberate breach of each, in a file that may
    // not hold it, is reported; the same line where it belongs is not.
    let breaches = [
        (
            "reports.rs",
            "        let n: i64 = sqlx::query_scalar(\"SELECT 1\").fetch_one(db).await?;",
            "store/records.rs",
            "SQL outside the store",
        ),
        (
            "reports.rs",
            "        let dek = medledger_vault::unwrap(secret, &wrapped, &aad)?;",
            "keyring.rs",
            "unwrapping a data key",
        ),
        (
            "directory.rs",
            "use medledger_vault::{Dek, open, seal};",
            "keyring.rs",
            "unwrapping a data key or opening sealed bytes",
        ),
        (
            "emergency.rs",
            "    unwrap(wraps, &object, Reader::Escrow, &self.escrow).await?",
            "keyring.rs",
            "a deployment secret",
        ),
        (
            "app.rs",
            "            keyring: Keyring::new(options.escrow, options.research),",
            "keyring.rs",
            "a deployment secret",
        ),
        (
            "reports.rs",
            "        let proof = Allowed { patient, reader, object, fields: 0, escrow: true };",
            "access.rs",
            "an access proof made outside access.rs",
        ),
        (
            "sharing.rs",
            "        Ok(Disclosed { value, tx: None, emergency: false })",
            "disclosure.rs",
            "a disclosure made outside the read log",
        ),
        (
            "reports.rs",
            "impl App {",
            "app.rs",
            "a use case extending App",
        ),
    ];
    for (outside, line, inside, what) in breaches {
        let found = wall_violations(&RECORDS_WALLS, "records", outside, line);
        assert!(
            found.iter().any(|f| f.contains(what)),
            "{outside}: {line:?} is not caught: {found:?}"
        );
        let where_it_belongs = wall_violations(&RECORDS_WALLS, "records", inside, line);
        assert!(
            !where_it_belongs.iter().any(|f| f.contains(what)),
            "{inside}: {line:?} is refused where it belongs: {where_it_belongs:?}"
        );
    }
    for harmless in [
        "let x = Unknown { a };",
        "let research = self.research();",
        "wraps.put(&object, Reader::Escrow, &self.keyring().escrow_public(), &dek)",
    ] {
        assert!(
            wall_violations(&RECORDS_WALLS, "records", "reports.rs", harmless).is_empty(),
            "{harmless:?} breaks no wall"
        );
    }
}
/// Whether the code map names `module` of `krate`: by its whole path, or in the bullet that
/// names its folder (`web/src/api/ — mod.rs, auth.rs, …`).
fn in_code_map(map: &str, krate: &str, module: &str) -> bool {
    if map.contains(&format!("{krate}/src/{module}")) {
        return true;
    }
    let Some((dir, file)) = module.rsplit_once('/') else {
        return false;
    };
    let folder = format!("{krate}/src/{dir}/");
    let file = if file.is_empty() { "mod.rs" } else { file };
    map.match_indices(&folder).any(|(i, _)| {
        let rest = &map[i..];
        let bullet = rest.find("\n-").map_or(rest, |end| &rest[..end]);
        names(bullet, file)
    })
}

/// The module files of `krate` (paths under `src/`, `mod.rs` as its folder).
fn modules(krate: &str) -> Vec<String> {
    sources(krate)
        .into_iter()
        .map(|(path, _)| {
            path.strip_suffix("/mod.rs")
                .map(|dir| format!("{dir}/"))
                .unwrap_or(path)
        })
        .filter(|p| p != "lib.rs")
        .collect()
}

#[test]
fn every_module_of_records_and_web_is_in_the_code_map() {
    let map = std::fs::read_to_string(crates_dir().join("../ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for krate in ["records", "web"] {
        for module in modules(krate) {
            if !in_code_map(&map, krate, &module) {
                missing.push(format!("{krate}/src/{module}"));
            }
        }
    }
    // And the check catches what it is for.
    let map = "- `records/src/store/` — one module per table: records.rs,\n  wraps.rs.\n- `records/src/access.rs` — who.";
    assert!(in_code_map(map, "records", "store/wraps.rs"));
    assert!(in_code_map(map, "records", "access.rs"));
    assert!(!in_code_map(map, "records", "store/users.rs"));
    assert!(!in_code_map(map, "records", "keyring.rs"));
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name: {}",
        missing.join(", ")
    );
}

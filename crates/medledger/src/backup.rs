//! `medledger backup` and `restore`: a deployment copied into one directory and brought back.
//!
//! A backup holds the app database as data (`database/TABLE.json`, read in one snapshot), every
//! sealed blob (`blobs/`), the embedded chain when the deployment has one (`chain/`, copied under
//! the chain's lock, so `serve` must be stopped) and, only when asked, the escrow, research and
//! faucet key files (`keys/`); `manifest.json`, written last, says what it holds and names the
//! key files it left out. Nothing is decrypted on the way: a backup without its keys opens nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use medledger_records::{backup as tables, db::Database};
use medledger_vault::{BlobLocation, BlobStore, S3Keys};
use serde_json::json;

use crate::system::DataDir;

/// Where a deployment's parts are (as `serve` is told), for a backup or a restore.
pub struct Deployment {
    pub data_dir: PathBuf,
    /// `None`: the SQLite file in the data directory.
    pub database: Option<Database>,
    /// `None`: the data directory's blob directory.
    pub blob_store: Option<BlobLocation>,
    pub s3_keys: Option<S3Keys>,
    pub escrow_key: PathBuf,
    pub research_key: PathBuf,
    pub faucet_key: PathBuf,
}

impl Deployment {
    fn database(&self) -> Database {
        self.database
            .clone()
            .unwrap_or_else(|| Database::Sqlite(DataDir(&self.data_dir).database()))
    }

    fn blobs(&self) -> anyhow::Result<BlobStore> {
        let location = self
            .blob_store
            .clone()
            .unwrap_or_else(|| BlobLocation::Dir(DataDir(&self.data_dir).blobs()));
        BlobStore::open(&location, self.s3_keys.as_ref())
            .with_context(|| format!("opening the blob store {location}"))
    }
}

/// What a backup holds, as its manifest says.
pub struct Summary {
    pub rows: u64,
    pub blobs: usize,
    pub chain: bool,
    pub keys_copied: bool,
}

const MANIFEST: &str = "manifest.json";

/// A new file only its owner may read (0600), written and synced.
fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Copies `deployment` into `to` (a new or empty directory). With `with_keys`, the key files
/// too (then the backup opens everything: keep it like the keys themselves).
pub async fn backup(
    deployment: &Deployment,
    to: &Path,
    with_keys: bool,
) -> anyhow::Result<Summary> {
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!(
            "{} is not empty: back up into a new directory",
            to.display()
        );
    }
    // Only its owner may enter the backup (0700) from the first byte on: it holds every
    // keystore and password hash, sealed records and, with --with-keys, the keys themselves.
    std::fs::create_dir_all(to)?;
    restrict_dir(to)?;
    std::fs::create_dir_all(to.join("database"))?;
    // The chain first: copying it takes its lock, so a running `serve` stops the backup before
    // anything is read (and nothing changes while the rest is copied).
    let chain_dir = DataDir(&deployment.data_dir).chain();
    let chain = medledger_chain::holds_chain(&chain_dir);
    if chain {
        medledger_chain::copy_chain(&chain_dir, &to.join("chain")).with_context(|| {
            format!(
                "copying the chain in {} (stop `medledger serve` first)",
                chain_dir.display()
            )
        })?;
    }
    let database = deployment.database();
    let dumped = tables::dump(&database)
        .await
        .map_err(|e| anyhow::anyhow!("reading {database}: {}", e.for_operator()))?;
    let mut rows = 0;
    let mut counts = serde_json::Map::new();
    for (table, table_rows) in &dumped {
        rows += table_rows.len() as u64;
        counts.insert(table.clone(), json!(table_rows.len()));
        write_synced(
            &to.join("database").join(format!("{table}.json")),
            &serde_json::to_vec(table_rows)?,
        )?;
    }
    // Blobs after the rows: every row's blob was stored before the row, so it is there.
    let source = deployment.blobs()?;
    let copy = BlobStore::local(&to.join("blobs"))?;
    let names = source.names().await?;
    for name in &names {
        let Some(bytes) = source.get(name).await? else {
            continue; // removed meanwhile (a write that failed)
        };
        copy.put(name, bytes).await?;
    }
    let key_files = [
        ("escrow", &deployment.escrow_key),
        ("research", &deployment.research_key),
        ("faucet", &deployment.faucet_key),
    ];
    let mut keys = serde_json::Map::new();
    for (what, path) in key_files {
        let present = path.exists();
        let copied = with_keys && present;
        if copied {
            std::fs::create_dir_all(to.join("keys"))?;
            let target = to.join("keys").join(format!("{what}.key"));
            std::fs::copy(path, &target)
                .with_context(|| format!("copying the {what} key {}", path.display()))?;
            restrict(&target)?;
        }
        keys.insert(
            what.into(),
            json!({ "file": path.display().to_string(), "present": present, "copied": copied }),
        );
    }
    let manifest = json!({
        "format": 2,
        "database": database.engine().as_str(),
        "tables": counts,
        "blobs": names.len(),
        "chain": if chain { "embedded, copied" } else { "external, not copied" },
        "keys": keys,
    });
    write_synced(&to.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    // And every file in it only its owner's, every directory only theirs to enter (the blob
    // store and the chain write theirs as the process's umask says).
    restrict_tree(to)?;
    Ok(Summary {
        rows,
        blobs: names.len(),
        chain,
        keys_copied: with_keys,
    })
}

#[cfg(unix)]
fn restrict(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

#[cfg(not(unix))]
fn restrict_dir(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Files 0600 and directories 0700, all the way down.
fn restrict_tree(dir: &Path) -> anyhow::Result<()> {
    restrict_dir(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            restrict_tree(&path)?;
        } else {
            restrict(&path)?;
        }
    }
    Ok(())
}

/// Brings the backup in `from` back as `deployment` (whose database, blob store and data
/// directory must hold no deployment yet). Key files the backup holds are put where the
/// deployment expects them; those it does not hold must be put there by the operator (the
/// error of the next `serve` says so).
pub async fn restore(from: &Path, deployment: &Deployment) -> anyhow::Result<Summary> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join(MANIFEST)).with_context(|| {
            format!(
                "{} is not a complete backup (no {MANIFEST})",
                from.display()
            )
        })?)
        .context("the backup's manifest")?;
    // Format 1 had no research tables (studies, exports): they restore empty.
    let format = manifest["format"].as_u64().unwrap_or(0);
    if !(1..=2).contains(&format) {
        bail!(
            "the backup's format {} is not one this version reads",
            manifest["format"]
        );
    }
    let data = DataDir(&deployment.data_dir);
    let chain = from.join("chain");
    if chain.exists() && medledger_chain::holds_chain(&data.chain()) {
        bail!(
            "{} holds a chain already: restore into a new data directory",
            data.chain().display()
        );
    }
    let mut loaded = Vec::new();
    for table in tables::TABLES {
        let path = from.join("database").join(format!("{table}.json"));
        if format == 1 && ["studies", "exports", "export_files"].contains(&table) {
            loaded.push((table.to_string(), Vec::new()));
            continue;
        }
        let rows: Vec<tables::Row> = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a table of a backup", path.display()))?;
        loaded.push((table.to_string(), rows));
    }
    // The keys first: a refusal here leaves nothing half restored.
    let mut keys_copied = false;
    for (what, target) in [
        ("escrow", &deployment.escrow_key),
        ("research", &deployment.research_key),
        ("faucet", &deployment.faucet_key),
    ] {
        let source = from.join("keys").join(format!("{what}.key"));
        if !source.exists() {
            continue;
        }
        if target.exists() {
            if std::fs::read(target)? != std::fs::read(&source)? {
                bail!(
                    "{} exists and is not the backup's {what} key: move it away first",
                    target.display()
                );
            }
        } else {
            if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::copy(&source, target)?;
            restrict(target)?;
        }
        keys_copied = true;
    }
    std::fs::create_dir_all(&deployment.data_dir)?;
    let database = deployment.database();
    let rows = tables::load(&database, &loaded)
        .await
        .map_err(|e| anyhow::anyhow!("restoring into {database}: {}", e.for_operator()))?;
    let source = BlobStore::local(&from.join("blobs"))?;
    let target = deployment.blobs()?;
    let names = source.names().await?;
    for name in &names {
        if let Some(bytes) = source.get(name).await? {
            target.put(name, bytes).await?;
        }
    }
    if chain.exists() {
        medledger_chain::copy_chain(&chain, &data.chain())?;
    }
    Ok(Summary {
        rows,
        blobs: names.len(),
        chain: chain.exists(),
        keys_copied,
    })
}

//! Secret keys kept in files of their own beside the data directory (the emergency escrow key,
//! the embedded chain's faucet key): a copy of the data directory alone holds neither.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use medledger_chain::alloy::primitives::hex;

/// Reads a 32-byte key (64 hex digits, readable by the owner only), or creates it if the file is
/// missing and the deployment is new. `what` names it in messages; `missing` says why an existing
/// deployment needs it.
pub(crate) fn key_file(
    path: &Path,
    new_deployment: bool,
    what: &str,
    missing: &str,
) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("{} is not {what} file (64 hex digits)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !new_deployment => {
            bail!("{what} file {} is missing, but {missing}", path.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            // Written whole beside it, then linked into place: a server starting at the same
            // moment either wins the link or reads the winner's complete file, never half of one.
            let staged = path.with_file_name(format!(
                ".{}.{}.new",
                path.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let written = options.open(&staged).and_then(|mut file| {
                file.write_all(hex::encode(key).as_bytes())?;
                file.sync_all()
            });
            let linked = written.and_then(|()| std::fs::hard_link(&staged, path));
            let _ = std::fs::remove_file(&staged);
            match linked {
                Ok(()) => {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
                    }
                    Ok(key)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    key_file(path, new_deployment, what, missing)
                }
                Err(e) => {
                    Err(e).with_context(|| format!("creating {what} file {}", path.display()))
                }
            }
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `DIR.suffix`, beside the data directory.
pub(crate) fn beside(data_dir: &Path, suffix: &str) -> PathBuf {
    let mut name = data_dir.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

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
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("creating {what} file {}", path.display()))?;
            file.write_all(hex::encode(key).as_bytes())?;
            file.sync_all()?;
            Ok(key)
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

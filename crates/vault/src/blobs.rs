//! The blob store: sealed record bodies by record id, on local disk or in memory.
//!
//! It stores whatever bytes it is given; callers hand it only [`crate::seal`] output. Keys are
//! restricted to `[0-9A-Za-z_-]{1,128}` so a name can never escape the store's directory or
//! collide with a file the store itself uses.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use object_store::{
    ObjectStore, ObjectStoreExt as _, PutPayload, local::LocalFileSystem, memory::InMemory,
    path::Path as ObjectPath,
};

use crate::{Error, Result};

const MAX_KEY_LEN: usize = 128;

/// A handle to the blob store; cheap to clone and share between tasks.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store, so [`BlobStore::check`] can notice it vanishing: the
    /// local backend reports a missing root as "no such object", which looks healthy.
    root: Option<PathBuf>,
}

impl BlobStore {
    /// A store in `dir`, created if missing. Every put is fsynced (file, then directory) before
    /// it returns, and is published by an atomic rename, so a crash never leaves a torn blob.
    pub fn local(dir: &Path) -> Result<BlobStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Store(format!("creating blob directory {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(store_error)?
            .with_fsync(true);
        Ok(BlobStore {
            store: Arc::new(store),
            root: Some(dir.to_path_buf()),
        })
    }

    /// A store that lives and dies with the process, for tests and demos.
    pub fn memory() -> BlobStore {
        BlobStore {
            store: Arc::new(InMemory::new()),
            root: None,
        }
    }

    /// Stores `bytes` under `key`, replacing any previous blob.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let location = location(key)?;
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The blob under `key`, or `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let location = location(key)?;
        match self.store.get(&location).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(store_error)?.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Removes the blob under `key`. Removing a missing blob succeeds, so retries are safe.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let location = location(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// A cheap health probe: the backend answers a lookup, and a local directory still exists.
    pub async fn check(&self) -> Result<()> {
        if let Some(root) = &self.root
            && !root.is_dir()
        {
            return Err(Error::Store(format!(
                "blob directory {} is missing",
                root.display()
            )));
        }
        // A name no valid key can take (keys have no '.'), so the answer is always "not found"
        // unless the backend itself is failing.
        match self.store.head(&ObjectPath::from("health.probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }
}

fn location(key: &str) -> Result<ObjectPath> {
    let valid = (1..=MAX_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(ObjectPath::from(key))
    } else {
        Err(Error::Format(format!(
            "a blob key is 1 to {MAX_KEY_LEN} characters from [0-9A-Za-z_-]"
        )))
    }
}

fn store_error(e: object_store::Error) -> Error {
    Error::Store(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(store: &BlobStore) {
        assert_eq!(store.get("rec-1").await.unwrap(), None);
        store.put("rec-1", b"first".to_vec()).await.unwrap();
        assert_eq!(
            store.get("rec-1").await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
        store.put("rec-1", b"second".to_vec()).await.unwrap();
        assert_eq!(
            store.get("rec-1").await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
        store.put("rec_2", Vec::new()).await.unwrap();
        assert_eq!(store.get("rec_2").await.unwrap(), Some(Vec::new()));
        store.delete("rec-1").await.unwrap();
        assert_eq!(store.get("rec-1").await.unwrap(), None);
        store.delete("rec-1").await.unwrap();
        store.check().await.unwrap();
    }

    #[tokio::test]
    async fn local_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nested").join("blobs");
        let store = BlobStore::local(&root).unwrap();
        round_trip(&store).await;
        // A second handle on the same directory sees the same blobs.
        let again = BlobStore::local(&root).unwrap();
        assert_eq!(again.get("rec_2").await.unwrap(), Some(Vec::new()));
        assert!(root.join("rec_2").is_file());
        // No staging files are left behind.
        let names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["rec_2"]);

        std::fs::remove_dir_all(&root).unwrap();
        assert!(matches!(store.check().await, Err(Error::Store(_))));
    }

    #[tokio::test]
    async fn memory_round_trip() {
        round_trip(&BlobStore::memory()).await;
    }

    #[tokio::test]
    async fn invalid_keys_are_refused() {
        let store = BlobStore::memory();
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for key in [
            "",
            "../etc",
            "a/b",
            "a.b",
            "é",
            "a b",
            "health.probe",
            long.as_str(),
        ] {
            assert!(
                matches!(store.put(key, vec![1]).await, Err(Error::Format(_))),
                "{key:?}"
            );
            assert!(
                matches!(store.get(key).await, Err(Error::Format(_))),
                "{key:?}"
            );
            assert!(
                matches!(store.delete(key).await, Err(Error::Format(_))),
                "{key:?}"
            );
        }
        store.put(&"a".repeat(MAX_KEY_LEN), vec![1]).await.unwrap();
    }
}

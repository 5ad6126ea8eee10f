//! The blob store: sealed record bodies by record id, in a local directory, in an S3-compatible
//! bucket (AWS S3, MinIO, SeaweedFS, Ceph, ...) or in memory.
//!
//! It stores whatever bytes it is given; callers hand it only [`crate::seal`] output. Keys are
//! restricted to `[0-9A-Za-z_-]{1,128}` so a name can never escape the store's directory or
//! collide with a file the store itself uses.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig, aws::AmazonS3Builder,
    local::LocalFileSystem, memory::InMemory, path::Path as ObjectPath, prefix::PrefixStore,
};

use crate::{Error, Result};

const MAX_KEY_LEN: usize = 128;

/// Where a deployment keeps its blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// A local directory.
    Dir(PathBuf),
    /// A bucket of an S3-compatible service, with an optional key prefix (several deployments
    /// can share a bucket). The credentials are never part of it ([`S3Keys`]).
    S3 {
        bucket: String,
        prefix: String,
        /// The service's URL when it is not AWS (`http://127.0.0.1:8333`); plain HTTP is
        /// accepted only for it.
        endpoint: Option<String>,
        /// The region (`us-east-1` when not given).
        region: Option<String>,
    },
}

impl BlobLocation {
    /// Reads `s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]`, or a path for a directory
    /// (also as `file:///path`).
    pub fn parse(text: &str) -> Result<BlobLocation> {
        let text = text.trim();
        if !text.contains("://") {
            if text.is_empty() {
                return Err(Error::Format("the blob store is empty".into()));
            }
            return Ok(BlobLocation::Dir(PathBuf::from(text)));
        }
        let url = url::Url::parse(text).map_err(|e| {
            Error::Format(format!(
                "the blob store {text:?} is not a URL ({e}); expected s3://BUCKET[/PREFIX]?endpoint=URL or a directory"
            ))
        })?;
        match url.scheme() {
            "file" => url
                .to_file_path()
                .map(BlobLocation::Dir)
                .map_err(|()| Error::Format(format!("{text:?} is not a local path"))),
            "s3" => {
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(Error::Format(
                        "the blob store's URL must not hold credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment".into(),
                    ));
                }
                let bucket = url.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() {
                    return Err(Error::Format(format!(
                        "{text:?} names no bucket: expected s3://BUCKET[/PREFIX]"
                    )));
                }
                let prefix = url.path().trim_matches('/').to_string();
                let (mut endpoint, mut region) = (None, None);
                for (key, value) in url.query_pairs() {
                    match &*key {
                        "endpoint" => {
                            let parsed = url::Url::parse(&value).map_err(|e| {
                                Error::Format(format!("the endpoint {value:?} is not a URL: {e}"))
                            })?;
                            if !matches!(parsed.scheme(), "http" | "https") {
                                return Err(Error::Format(format!(
                                    "the endpoint {value:?} is neither http:// nor https://"
                                )));
                            }
                            endpoint = Some(value.trim_end_matches('/').to_string());
                        }
                        "region" => region = Some(value.into_owned()),
                        other => {
                            return Err(Error::Format(format!(
                                "unknown blob store setting {other:?} (known: endpoint, region)"
                            )));
                        }
                    }
                }
                Ok(BlobLocation::S3 {
                    bucket,
                    prefix,
                    endpoint,
                    region,
                })
            }
            other => Err(Error::Format(format!(
                "unknown blob store kind {other:?}: expected s3://BUCKET[/PREFIX] or a directory"
            ))),
        }
    }

    /// `"directory"` or `"s3"`, as `/healthz` reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            BlobLocation::Dir(_) => "directory",
            BlobLocation::S3 { .. } => "s3",
        }
    }
}

impl fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobLocation::Dir(dir) => write!(f, "{}", dir.display()),
            BlobLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                let mut sep = '?';
                if let Some(endpoint) = endpoint {
                    write!(f, "{sep}endpoint={endpoint}")?;
                    sep = '&';
                }
                if let Some(region) = region {
                    write!(f, "{sep}region={region}")?;
                }
                Ok(())
            }
        }
    }
}

/// Access keys for an S3 store (the binary reads them from `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, as every S3 tool does).
#[derive(Clone)]
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A handle to the blob store; cheap to clone and share between tasks.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store, so [`BlobStore::check`] can notice it vanishing: the
    /// local backend reports a missing root as "no such object", which looks healthy.
    root: Option<PathBuf>,
    /// Whether the backend is a bucket, whose existence [`BlobStore::check`] must see (a lookup
    /// in a missing bucket answers "not found" like a missing object).
    bucket: bool,
}

impl BlobStore {
    /// The store at `location`. An S3 store signs with `keys`; without them it asks the
    /// instance metadata service (an EC2 or ECS role). Nothing is contacted until the first
    /// request ([`BlobStore::check`] is the cheap one).
    pub fn open(location: &BlobLocation, keys: Option<&S3Keys>) -> Result<BlobStore> {
        match location {
            BlobLocation::Dir(dir) => BlobStore::local(dir),
            BlobLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_virtual_hosted_style_request(false)
                    // A few quick retries: a request waits seconds for a struggling service,
                    // not the minutes of the default.
                    .with_retry(RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(15),
                        ..RetryConfig::default()
                    })
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(Duration::from_secs(60)),
                    );
                if let Some(keys) = keys {
                    builder = builder
                        .with_access_key_id(&keys.access_key_id)
                        .with_secret_access_key(&keys.secret_access_key);
                    if let Some(token) = &keys.session_token {
                        builder = builder.with_token(token);
                    }
                }
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let region = region.clone().unwrap_or_else(|| "us-east-1".into());
                let s3 = builder
                    .with_region(region)
                    .build()
                    .map_err(|e| Error::Store(format!("the S3 store {location}: {e}")))?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                Ok(BlobStore {
                    store,
                    root: None,
                    bucket: true,
                })
            }
        }
    }

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
            bucket: false,
        })
    }

    /// A store that lives and dies with the process, for tests and demos.
    pub fn memory() -> BlobStore {
        BlobStore {
            store: Arc::new(InMemory::new()),
            root: None,
            bucket: false,
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

    /// The name of every blob in the store, sorted (for backups, checks and tests).
    pub async fn names(&self) -> Result<Vec<String>> {
        use futures_util::TryStreamExt as _;
        let mut names: Vec<String> = self
            .store
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(store_error)?;
        // A local store's staging files, never blobs (keys have no '.').
        names.retain(|name| location(name).is_ok());
        names.sort();
        Ok(names)
    }

    /// `directory`, `s3` or `memory`.
    pub fn kind(&self) -> &'static str {
        match (&self.root, self.bucket) {
            (Some(_), _) => "directory",
            (None, true) => "s3",
            (None, false) => "memory",
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
        if self.bucket {
            // Listing answers "no such bucket" where a lookup would say "not found".
            return match self.store.list_with_delimiter(None).await {
                Ok(_) => Ok(()),
                Err(e) => Err(store_error(e)),
            };
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
        assert_eq!(store.names().await.unwrap(), ["rec-1", "rec_2"]);
        store.delete("rec-1").await.unwrap();
        assert_eq!(store.get("rec-1").await.unwrap(), None);
        store.delete("rec-1").await.unwrap();
        assert_eq!(store.names().await.unwrap(), ["rec_2"]);
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

    fn keys() -> S3Keys {
        S3Keys {
            access_key_id: medledger_testkit::ACCESS_KEY.into(),
            secret_access_key: medledger_testkit::SECRET_KEY.into(),
            session_token: None,
        }
    }

    #[tokio::test]
    async fn s3_round_trip_on_seaweedfs() {
        let s3 = medledger_testkit::Seaweed::start();
        let location = BlobLocation::parse(&s3.new_store()).unwrap();
        let store = BlobStore::open(&location, Some(&keys())).unwrap();
        store.check().await.unwrap();
        round_trip(&store).await;
        // Another deployment's prefix of the same bucket sees none of it.
        let other = BlobLocation::parse(&s3.new_store()).unwrap();
        let other = BlobStore::open(&other, Some(&keys())).unwrap();
        assert_eq!(other.get("rec_2").await.unwrap(), None);

        // A missing bucket and a wrong secret are unhealthy, and say so.
        let missing =
            BlobLocation::parse(&format!("s3://no-such-bucket?endpoint={}", s3.endpoint()))
                .unwrap();
        let missing = BlobStore::open(&missing, Some(&keys())).unwrap();
        assert!(matches!(missing.check().await, Err(Error::Store(_))));
        let wrong = S3Keys {
            secret_access_key: "not-the-secret".into(),
            ..keys()
        };
        let forged = BlobStore::open(&location, Some(&wrong)).unwrap();
        let refused = forged.check().await.unwrap_err().to_string();
        assert!(!refused.contains("not-the-secret"), "{refused}");
        assert!(forged.get("rec_2").await.is_err());
        assert!(forged.put("rec_3", vec![1]).await.is_err());
        assert_eq!(store.get("rec_3").await.unwrap(), None);
    }

    #[test]
    fn blob_locations_are_read_and_shown_without_secrets() {
        assert_eq!(
            BlobLocation::parse("/var/lib/medledger/blobs").unwrap(),
            BlobLocation::Dir("/var/lib/medledger/blobs".into())
        );
        assert_eq!(
            BlobLocation::parse("file:///srv/blobs").unwrap(),
            BlobLocation::Dir("/srv/blobs".into())
        );
        let s3 = BlobLocation::parse(
            "s3://records/hospital-a/?endpoint=http://127.0.0.1:8333/&region=eu-west-3",
        )
        .unwrap();
        assert_eq!(
            s3,
            BlobLocation::S3 {
                bucket: "records".into(),
                prefix: "hospital-a".into(),
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: Some("eu-west-3".into()),
            }
        );
        assert_eq!(
            s3.to_string(),
            "s3://records/hospital-a?endpoint=http://127.0.0.1:8333&region=eu-west-3"
        );
        assert_eq!(s3.kind(), "s3");
        for (bad, says) in [
            ("s3://key:secret@records", "environment"),
            ("s3:///prefix", "no bucket"),
            ("s3://records?endpoint=ftp://x", "neither"),
            ("s3://records?acl=public", "unknown blob store setting"),
            ("gs://records", "unknown blob store kind"),
            ("", "empty"),
        ] {
            let e = BlobLocation::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("secret@"), "{e}");
        }
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

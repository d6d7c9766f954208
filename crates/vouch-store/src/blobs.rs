//! Model bytes, content-addressed: the key is the digest, so a write is idempotent and a read
//! can be checked against its name.

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::Path;
use std::sync::Arc;
use vouch_core::ModelDigest;

use crate::{Result, StoreError};

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

fn key(digest: &ModelDigest) -> ObjectPath {
    ObjectPath::from(format!("models/{}", digest.0.hex()))
}

impl BlobStore {
    pub fn local(dir: &Path) -> Result<Self> {
        crate::create_private_dir(dir)
            .map_err(|e| StoreError::Blob(format!("{}: {e}", dir.display())))?;
        let fs =
            LocalFileSystem::new_with_prefix(dir).map_err(|e| StoreError::Blob(e.to_string()))?;
        Ok(BlobStore {
            inner: Arc::new(fs),
        })
    }

    /// The configured blob store: `<data_dir>/blobs` when `url` is `None`.
    pub async fn open(data_dir: &Path, url: Option<&str>) -> Result<Self> {
        match url {
            None => BlobStore::local(&data_dir.join("blobs")),
            Some(url) => Err(StoreError::Config(format!(
                "[store] blobs = {url:?}: only the local folder is supported yet"
            ))),
        }
    }

    /// Stores `bytes` under their digest (written to a temporary file and renamed, so a crash
    /// never leaves a partial model under a valid name).
    pub async fn put_model(&self, digest: &ModelDigest, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&key(digest), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Blob(e.to_string()))
    }

    /// Reads a model and checks that the bytes still hash to their name.
    pub async fn get_model(&self, digest: &ModelDigest) -> Result<Bytes> {
        let bytes = self
            .inner
            .get(&key(digest))
            .await
            .map_err(|e| StoreError::Blob(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| StoreError::Blob(e.to_string()))?;
        if ModelDigest::of_model_bytes(&bytes) != *digest {
            return Err(StoreError::Corrupt(format!(
                "blob for {digest} no longer matches its digest"
            )));
        }
        Ok(bytes)
    }
}

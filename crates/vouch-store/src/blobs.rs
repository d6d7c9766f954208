//! Model bytes, content-addressed: the key is the digest, so a write is create-only and a read
//! can be checked against its name.
//!
//! Two places hold them, with the same layout (`[<prefix>/]models/<hex digest>`): the local
//! folder `<data_dir>/blobs` (the default), or any S3-compatible store
//! (`[store] blobs = "s3://bucket/prefix"`), which several nodes can share.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, GetOptions, ObjectStore, PutMode, PutPayload};
use std::path::Path;
use std::sync::Arc;
use vouch_core::ModelDigest;

use crate::{Result, StoreError};

/// What `[store] blobs` accepts, for error messages.
const SUPPORTED: &str = "leave it unset for the local folder <data_dir>/blobs, or give \
                         s3://bucket[/prefix] for an S3-compatible store (endpoint, region and \
                         credentials from the AWS_* environment variables)";

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// Keys live under this path: empty for the local folder, the URL's prefix on S3.
    root: ObjectPath,
    /// The largest blob a read accepts; larger ones are refused before their bytes are fetched.
    max_model_bytes: u64,
    /// Where the blobs are, for messages (`local folder …` or the URL).
    location: String,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("location", &self.location)
            .field("max_model_bytes", &self.max_model_bytes)
            .finish()
    }
}

impl BlobStore {
    pub fn local(dir: &Path) -> Result<Self> {
        crate::create_private_dir(dir)
            .map_err(|e| StoreError::Blob(format!("{}: {e}", dir.display())))?;
        let fs =
            LocalFileSystem::new_with_prefix(dir).map_err(|e| StoreError::Blob(e.to_string()))?;
        Ok(BlobStore {
            inner: Arc::new(fs),
            root: ObjectPath::default(),
            max_model_bytes: u64::MAX,
            location: format!("local folder {}", dir.display()),
        })
    }

    /// The configured blob store: `<data_dir>/blobs` when `url` is `None`, otherwise an
    /// `s3://bucket[/prefix]` URL with the rest of its configuration read from the environment
    /// (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …).
    pub async fn open(data_dir: &Path, url: Option<&str>) -> Result<Self> {
        match url {
            None => BlobStore::local(&data_dir.join("blobs")),
            Some(url) => BlobStore::s3(url, std::iter::empty::<(&str, &str)>()),
        }
    }

    /// An S3-compatible store at `url` (`s3://bucket[/prefix]`): the `AWS_*` environment
    /// variables, then `options` over them (object_store's S3 keys, e.g. `aws_endpoint`,
    /// `aws_allow_http`), for callers that configure it in code rather than in the environment.
    pub fn s3<K: AsRef<str>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let (bucket, root) = parse_s3_url(url)?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key = key.as_ref();
            let parsed: AmazonS3ConfigKey = key
                .parse()
                .map_err(|_| StoreError::Config(format!("unknown S3 option {key:?}")))?;
            builder = builder.with_config(parsed, value);
        }
        // reqwest refuses a plain-HTTP endpoint without allow_http, but only when a request is
        // made, with "builder error": say what to set when the store opens.
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v == "true");
        if let Some(endpoint) = endpoint.filter(|e| e.starts_with("http://") && !allow_http) {
            return Err(StoreError::Config(format!(
                "[store] blobs = {url:?}: the endpoint {endpoint} is plain HTTP; set \
                 AWS_ALLOW_HTTP=true to use it (a local test server), or give an https:// one"
            )));
        }
        // Create-only writes need conditional PUT (`If-None-Match: *`), which AWS S3, MinIO, R2
        // and moto answer; set last so that `AWS_CONDITIONAL_PUT=disabled` cannot turn it off
        // (object_store's other choice, `disabled`, would make every write fail).
        let builder = builder.with_conditional_put(S3ConditionalPut::ETagMatch);
        // reqwest is built without a crypto provider (see Cargo.toml): install `ring` first.
        vouch_pay::http::install_tls_provider();
        let s3 = builder
            .build()
            .map_err(|e| StoreError::Config(format!("[store] blobs = {url:?}: {e}")))?;
        Ok(BlobStore {
            inner: Arc::new(s3),
            root,
            max_model_bytes: u64::MAX,
            location: url.to_owned(),
        })
    }

    /// The same store, refusing to read any blob over `limit` bytes (the node passes its
    /// `max_model_bytes`, the largest model it would have accepted in the first place).
    pub fn with_max_model_bytes(mut self, limit: u64) -> Self {
        self.max_model_bytes = limit;
        self
    }

    /// The object key of a model: `[<prefix>/]models/<hex>`.
    pub fn key(&self, digest: &ModelDigest) -> ObjectPath {
        self.root
            .clone()
            .join("models")
            .join(digest.0.hex().as_str())
    }

    /// Stores `bytes` under their digest, create-only: an object already under that name is
    /// never replaced. If one is there, it is read back and must hash to the digest (a corrupt
    /// earlier object is reported, not silently kept). The local folder writes a temporary file
    /// and links it into place, S3 uses a conditional PUT; either way a crash never leaves a
    /// partial model under a valid name.
    pub async fn put_model(&self, digest: &ModelDigest, bytes: Bytes) -> Result<()> {
        if ModelDigest::of_model_bytes(&bytes) != *digest {
            // A caller's bug, caught here because create-only writes could never repair it.
            return Err(StoreError::Blob(format!(
                "refusing to store bytes under {digest}: they hash to something else"
            )));
        }
        let key = self.key(digest);
        let size = bytes.len() as u64;
        // Twice at most: a create that lost a race to another node's create of the same model
        // can hear "exists" (S3 answers 409 to conditional writes in flight together) before
        // that object is readable; the second try then finds it, or writes it.
        for _ in 0..2 {
            match self
                .inner
                .put_opts(
                    &key,
                    PutPayload::from(bytes.clone()),
                    PutMode::Create.into(),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => {
                    return Err(StoreError::Blob(format!(
                        "writing {key} to {}: {e}",
                        self.location
                    )));
                }
            }
            // The same name means the same bytes, unless the stored object went bad: check,
            // holding it to the model's own size.
            match self.fetch(digest, &key, size).await {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => continue,
                Err(StoreError::BlobTooLarge { .. }) => {
                    return Err(StoreError::Corrupt(format!(
                        "{key} in {} already exists and is larger than the model {digest}",
                        self.location
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Blob(format!(
            "writing {key} to {}: the store says it exists but it cannot be read; try again",
            self.location
        )))
    }

    /// Reads a model and checks that the bytes still hash to their name. A blob over the
    /// store's limit ([`BlobStore::with_max_model_bytes`]) is refused before it is downloaded.
    pub async fn get_model(&self, digest: &ModelDigest) -> Result<Bytes> {
        let key = self.key(digest);
        self.fetch(digest, &key, self.max_model_bytes)
            .await?
            .ok_or_else(|| {
                StoreError::Blob(format!(
                    "no blob for model {digest}: {key} is missing from {}",
                    self.location
                ))
            })
    }

    /// The verified bytes under `key`, `None` if there is no such object, `BlobTooLarge` over
    /// `limit`, `Corrupt` if they do not hash to `digest`.
    async fn fetch(
        &self,
        digest: &ModelDigest,
        key: &ObjectPath,
        limit: u64,
    ) -> Result<Option<Bytes>> {
        let got = match self.inner.get_opts(key, GetOptions::default()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(StoreError::Blob(format!(
                    "reading {key} from {}: {e}",
                    self.location
                )));
            }
        };
        // The size comes with the answer's headers (S3) or the file's metadata (local folder):
        // an oversized blob is refused here and its body dropped unread.
        let too_large = |size: u64| StoreError::BlobTooLarge {
            key: key.to_string(),
            size,
            limit,
        };
        if got.meta.size > limit {
            return Err(too_large(got.meta.size));
        }
        // Room for the announced size, but never more than 1 GiB up front on the server's word
        // (the default limit is none).
        let capacity = usize::try_from(got.meta.size.min(1 << 30)).unwrap_or(0);
        let mut buf = BytesMut::with_capacity(capacity);
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                StoreError::Blob(format!("reading {key} from {}: {e}", self.location))
            })?;
            // A body longer than announced is held to the same limit.
            let total = buf.len() as u64 + chunk.len() as u64;
            if total > limit {
                return Err(too_large(total));
            }
            buf.extend_from_slice(&chunk);
        }
        let bytes = buf.freeze();
        if ModelDigest::of_model_bytes(&bytes) != *digest {
            return Err(StoreError::Corrupt(format!(
                "{key} in {} no longer matches its digest {digest}",
                self.location
            )));
        }
        Ok(Some(bytes))
    }
}

/// `s3://bucket[/prefix]` → the bucket and the prefix every key goes under.
fn parse_s3_url(url: &str) -> Result<(&str, ObjectPath)> {
    let refuse =
        |why: &str| StoreError::Config(format!("[store] blobs = {url:?}: {why}; {SUPPORTED}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(refuse("not a URL"));
    };
    if scheme != "s3" {
        return Err(refuse(&format!("scheme {scheme:?} is not supported")));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3 bucket names: 3-63 of lowercase letters, digits, dots and hyphens.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(refuse(&format!("{bucket:?} is not an S3 bucket name")));
    }
    if prefix.contains('?') || prefix.contains('#') {
        return Err(refuse("a query or fragment is not supported"));
    }
    let root = ObjectPath::parse(prefix.trim_end_matches('/'))
        .map_err(|e| refuse(&format!("prefix {prefix:?}: {e}")))?;
    Ok((bucket, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_parse_into_bucket_and_prefix() {
        let (b, p) = parse_s3_url("s3://models-bucket").expect("bucket only");
        assert_eq!((b, p.as_ref()), ("models-bucket", ""));
        let (b, p) = parse_s3_url("s3://models-bucket/vouch/node-a/").expect("prefix");
        assert_eq!((b, p.as_ref()), ("models-bucket", "vouch/node-a"));
    }

    #[test]
    fn other_urls_are_refused_with_what_is_supported() {
        for bad in [
            "gs://bucket/x",
            "file:///tmp/blobs",
            "https://example.com/bucket",
            "/var/lib/blobs",
            "s3://",
            "s3://Upper_Case",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "s3://bucket/x?versionId=1",
        ] {
            match parse_s3_url(bad) {
                Err(StoreError::Config(m)) => assert!(m.contains("s3://bucket"), "{bad}: {m}"),
                other => panic!("{bad}: {:?}", other.map(|(b, p)| (b.to_owned(), p))),
            }
        }
    }
}

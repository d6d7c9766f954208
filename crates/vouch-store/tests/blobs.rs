//! The blob store on both of its homes: the local folder, and a real S3-compatible server (moto,
//! started by `tests/services/s3.sh`, `VOUCH_TEST_S3_ENDPOINT`), a fresh bucket per test. Each
//! test body runs on both and expects the same answers. Without the server the S3 half is
//! skipped with a message, unless `VOUCH_REQUIRE_S3=1` (as `scripts/test.sh` sets), which fails
//! the test instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use vouch_core::ModelDigest;
use vouch_store::{BlobStore, StoreError};

/// One home of the blob store, with a second, raw client on the same objects (to look at them
/// and to tamper with them behind the store's back).
struct Place {
    name: &'static str,
    store: BlobStore,
    raw: Arc<dyn ObjectStore>,
    dir: tempfile::TempDir,
}

impl Place {
    /// An identity for the stored object that changes if it is written again (same bytes or
    /// not): the file's inode locally (a rewrite links a new file into place), a marker in the
    /// object's metadata on S3 (a rewrite by the store carries none).
    async fn identity(&self, digest: &ModelDigest) -> String {
        let key = self.store.key(digest);
        match self.name {
            "local" => {
                let path = self.dir.path().join("blobs").join(key.as_ref());
                std::fs::metadata(path).unwrap().ino().to_string()
            }
            _ => {
                let got = self.raw.get(&key).await.unwrap();
                format!("{:?}", got.attributes.get(&marker()))
            }
        }
    }

    /// Writes `bytes` under the model's key directly, replacing what is there; on S3 with a
    /// metadata marker that [`Place::identity`] sees.
    async fn overwrite(&self, digest: &ModelDigest, bytes: &'static [u8]) {
        let mut opts = PutOptions::from(PutMode::Overwrite);
        if self.name == "s3" {
            let mut attributes = Attributes::new();
            attributes.insert(marker(), "written-by-the-test".into());
            opts.attributes = attributes;
        }
        self.raw
            .put_opts(&self.store.key(digest), bytes.into(), opts)
            .await
            .unwrap();
    }
}

fn marker() -> Attribute {
    Attribute::Metadata("vouch-test".into())
}

const S3_OPTIONS: [(&str, &str); 4] = [
    ("aws_allow_http", "true"),
    ("aws_access_key_id", "vouch-test"),
    ("aws_secret_access_key", "vouch-test"),
    ("aws_region", "us-east-1"),
];

/// moto's endpoint, or `None` (skipping the S3 half) when no server was started.
fn s3_endpoint() -> Option<String> {
    let Ok(endpoint) = std::env::var("VOUCH_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var("VOUCH_REQUIRE_S3").as_deref() != Ok("1"),
            "VOUCH_REQUIRE_S3=1 but VOUCH_TEST_S3_ENDPOINT is unset (tests/services/s3.sh)"
        );
        eprintln!("skipping S3: VOUCH_TEST_S3_ENDPOINT is unset");
        return None;
    };
    Some(endpoint)
}

/// A new, empty bucket on the test server (an unsigned `PUT /<bucket>`, which moto accepts).
async fn fresh_bucket(endpoint: &str, tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let bucket = format!(
        "vouch-{}-{}-{}",
        tag.replace('_', "-"),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let client = vouch_pay::http::client_builder().build().unwrap();
    let answer = client
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "create bucket: {answer:?}");
    bucket
}

/// The local folder, then S3 when the test server is there.
async fn places(tag: &str) -> Vec<Place> {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), None).await.unwrap();
    let raw = Arc::new(LocalFileSystem::new_with_prefix(dir.path().join("blobs")).unwrap());
    let mut out = vec![Place {
        name: "local",
        store,
        raw,
        dir,
    }];
    if let Some(endpoint) = s3_endpoint() {
        let bucket = fresh_bucket(&endpoint, tag).await;
        let options = S3_OPTIONS
            .into_iter()
            .chain([("aws_endpoint", endpoint.as_str())]);
        // Keys under a prefix, as a bucket shared with other data would have them.
        let store = BlobStore::s3(&format!("s3://{bucket}/cluster-a/blobs"), options).unwrap();
        let mut raw = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_endpoint(&endpoint);
        for (k, v) in S3_OPTIONS {
            raw = raw.with_config(k.parse().unwrap(), v);
        }
        out.push(Place {
            name: "s3",
            store,
            raw: Arc::new(raw.build().unwrap()),
            dir: tempfile::tempdir().unwrap(),
        });
    }
    out
}

fn model(bytes: &'static [u8]) -> (ModelDigest, Bytes) {
    (
        ModelDigest::of_model_bytes(bytes),
        Bytes::from_static(bytes),
    )
}

#[tokio::test]
async fn a_model_round_trips_under_its_digest_and_prefix() {
    for p in places("round-trip").await {
        let (digest, bytes) = model(b"an onnx model, say");
        p.store.put_model(&digest, bytes.clone()).await.unwrap();
        assert_eq!(
            p.store.get_model(&digest).await.unwrap(),
            bytes,
            "{}",
            p.name
        );
        let key = p.store.key(&digest);
        let expected = match p.name {
            "local" => format!("models/{}", digest.0.hex()),
            _ => format!("cluster-a/blobs/models/{}", digest.0.hex()),
        };
        assert_eq!(key.as_ref(), expected, "{}", p.name);
        let meta = p.raw.head(&key).await.unwrap();
        assert_eq!(meta.size, bytes.len() as u64, "{}", p.name);
    }
}

#[tokio::test]
async fn a_second_put_of_the_same_digest_succeeds_without_rewriting() {
    for p in places("second-put").await {
        let (digest, bytes) = model(b"the same model twice");
        // The first copy is written behind the store's back, so that a rewrite would show.
        p.overwrite(&digest, b"the same model twice").await;
        let before = p.identity(&digest).await;
        p.store.put_model(&digest, bytes.clone()).await.unwrap();
        p.store.put_model(&digest, bytes.clone()).await.unwrap();
        assert_eq!(p.identity(&digest).await, before, "{}: rewritten", p.name);
        assert_eq!(
            p.store.get_model(&digest).await.unwrap(),
            bytes,
            "{}",
            p.name
        );
    }
}

#[tokio::test]
async fn puts_of_the_same_model_at_once_all_succeed() {
    // Nodes sharing a bucket register the same model together: one write wins, the others
    // hear "exists" and check the winner's bytes.
    for p in places("racing-puts").await {
        let (digest, bytes) = model(b"registered by every node at once");
        let put = |s: BlobStore| {
            let bytes = bytes.clone();
            async move { s.put_model(&digest, bytes).await }
        };
        let (a, b, c, d) = tokio::join!(
            put(p.store.clone()),
            put(p.store.clone()),
            put(p.store.clone()),
            put(p.store.clone())
        );
        for r in [a, b, c, d] {
            r.unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        assert_eq!(
            p.store.get_model(&digest).await.unwrap(),
            bytes,
            "{}",
            p.name
        );
    }
}

#[tokio::test]
async fn a_put_over_a_corrupt_object_reports_it_and_replaces_nothing() {
    for p in places("put-corrupt").await {
        let (digest, bytes) = model(b"the real model");
        p.overwrite(&digest, b"bit rot").await;
        let key = p.store.key(&digest);
        match p.store.put_model(&digest, bytes).await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains(key.as_ref()), "{}: {m}", p.name),
            other => panic!("{}: {other:?}", p.name),
        }
        let kept = p.raw.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&kept[..], b"bit rot", "{}: replaced", p.name);
        // Larger than the model it should be: reported the same way, not as "too large".
        p.overwrite(&digest, b"the real model, and then some").await;
        let (_, bytes) = model(b"the real model");
        assert!(
            matches!(
                p.store.put_model(&digest, bytes).await,
                Err(StoreError::Corrupt(_))
            ),
            "{}",
            p.name
        );
    }
}

#[tokio::test]
async fn a_tampered_object_is_refused_on_read() {
    for p in places("tampered").await {
        let (digest, bytes) = model(b"weights as uploaded");
        p.store.put_model(&digest, bytes).await.unwrap();
        p.overwrite(&digest, b"weights swapped").await;
        let key = p.store.key(&digest);
        match p.store.get_model(&digest).await {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains(key.as_ref()), "{}: {m}", p.name);
                assert!(m.contains(&digest.to_string()), "{}: {m}", p.name);
            }
            other => panic!("{}: {other:?}", p.name),
        }
    }
}

#[tokio::test]
async fn a_missing_blob_is_an_error_naming_the_digest() {
    for p in places("missing").await {
        let (digest, _) = model(b"never stored");
        match p.store.get_model(&digest).await {
            Err(StoreError::Blob(m)) => {
                assert!(m.contains(&digest.to_string()), "{}: {m}", p.name);
                assert!(m.contains("missing"), "{}: {m}", p.name);
            }
            other => panic!("{}: {other:?}", p.name),
        }
    }
}

#[tokio::test]
async fn a_blob_over_the_limit_is_refused() {
    for p in places("over-limit").await {
        let (digest, bytes) = model(&[7u8; 4096]);
        p.store.put_model(&digest, bytes.clone()).await.unwrap();
        let small = p.store.clone().with_max_model_bytes(4095);
        match small.get_model(&digest).await {
            Err(StoreError::BlobTooLarge { key, size, limit }) => {
                assert_eq!((size, limit), (4096, 4095), "{}", p.name);
                assert_eq!(key, p.store.key(&digest).to_string(), "{}", p.name);
            }
            other => panic!("{}: {other:?}", p.name),
        }
        // At the limit exactly, it is read.
        let exact = p.store.clone().with_max_model_bytes(4096);
        assert_eq!(exact.get_model(&digest).await.unwrap(), bytes, "{}", p.name);
    }
}

#[tokio::test]
async fn bytes_that_do_not_hash_to_the_digest_are_not_stored() {
    for p in places("wrong-digest").await {
        let (digest, _) = model(b"one model");
        let err = p
            .store
            .put_model(&digest, Bytes::from_static(b"another"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Blob(_)), "{}: {err:?}", p.name);
        let missing = p.raw.head(&p.store.key(&digest)).await.unwrap_err();
        assert!(
            matches!(missing, object_store::Error::NotFound { .. }),
            "{}: {missing:?}",
            p.name
        );
    }
}

#[tokio::test]
async fn a_plain_http_endpoint_needs_allow_http() {
    let options = [
        ("aws_endpoint", "http://127.0.0.1:9"),
        ("aws_allow_http", "false"),
    ];
    match BlobStore::s3("s3://bucket/models", options) {
        Err(StoreError::Config(m)) => assert!(m.contains("AWS_ALLOW_HTTP=true"), "{m}"),
        other => panic!("{other:?}"),
    }
    let options = [
        ("aws_endpoint", "http://127.0.0.1:9"),
        ("aws_allow_http", "true"),
    ];
    BlobStore::s3("s3://bucket/models", options).unwrap();
}

#[tokio::test]
async fn an_unsupported_blobs_url_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "gs://bucket/models",
        "az://container",
        "file:///var/lib/vouch",
        "https://example.com/bucket",
        "s3://",
        "s3://No_Such_Bucket_Name",
        "s3://bucket/a//b",
        "bucket/models",
    ] {
        match BlobStore::open(dir.path(), Some(url)).await {
            Err(StoreError::Config(m)) => {
                assert!(m.contains(url), "{url}: {m}");
                assert!(m.contains("s3://bucket[/prefix]"), "{url}: {m}");
            }
            Err(other) => panic!("{url}: {other:?}"),
            Ok(store) => panic!("{url}: opened {store:?}"),
        }
    }
}

/// What the child process stores, and where (under the bucket the parent made).
const CHILD_MODEL: &[u8] = b"stored by a node configured from its environment";

#[tokio::test]
async fn open_reads_the_endpoint_and_credentials_from_the_environment() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = fresh_bucket(&endpoint, "from-env").await;
    // A process of its own, because the environment is the configuration under test (and this
    // process's environment is shared by every test in it).
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "open_from_the_environment_child", "--ignored"])
        .env("VOUCH_BLOBS_CHILD_URL", format!("s3://{bucket}/from-env"))
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "vouch-test")
        .env("AWS_SECRET_ACCESS_KEY", "vouch-test")
        .env("AWS_REGION", "us-east-1");
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("AWS_")) {
        if !matches!(
            name.as_str(),
            "AWS_ENDPOINT_URL"
                | "AWS_ALLOW_HTTP"
                | "AWS_ACCESS_KEY_ID"
                | "AWS_SECRET_ACCESS_KEY"
                | "AWS_REGION"
        ) {
            child.env_remove(name);
        }
    }
    let out = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child's write landed where the URL said, on the server the environment named.
    let mut raw = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint);
    for (k, v) in S3_OPTIONS {
        raw = raw.with_config(k.parse().unwrap(), v);
    }
    let digest = ModelDigest::of_model_bytes(CHILD_MODEL);
    let key = format!("from-env/models/{}", digest.0.hex());
    let stored = raw
        .build()
        .unwrap()
        .get(&key.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&stored[..], CHILD_MODEL);
}

/// The child of the test above: opens `[store] blobs` the way a node does, from the
/// environment it was given. On its own (no `VOUCH_BLOBS_CHILD_URL`) it does nothing; the
/// parent checks the object it stores.
#[tokio::test]
#[ignore = "run in a child process by open_reads_the_endpoint_and_credentials_from_the_environment"]
async fn open_from_the_environment_child() {
    let Ok(url) = std::env::var("VOUCH_BLOBS_CHILD_URL") else {
        eprintln!("nothing to do: run by its parent test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path(), Some(&url)).await.unwrap();
    let (digest, bytes) = model(CHILD_MODEL);
    store.put_model(&digest, bytes.clone()).await.unwrap();
    assert_eq!(store.get_model(&digest).await.unwrap(), bytes);
}

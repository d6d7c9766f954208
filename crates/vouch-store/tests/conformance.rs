//! The store's conformance suite: every test runs on each backend (SQLite, and PostgreSQL when
//! the test server is up; `tests/common`), and expects the same answers from both — the way
//! trillian-tessera runs one suite per storage driver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use vouch_core::{DType, Digest, Dim, ModelDigest, ModelSignature, TensorSpec, Tier};
use vouch_store::{LogOutbox, NameChange, NewModel, StoreError};

fn sig() -> ModelSignature {
    let spec = |n: &str| TensorSpec {
        name: n.into(),
        dtype: DType::Float32,
        shape: vec![Dim::Free(None), Dim::Fixed(4)],
    };
    ModelSignature {
        inputs: vec![spec("x")],
        outputs: vec![spec("y")],
    }
}

fn new_model(digest: ModelDigest) -> NewModel {
    NewModel {
        digest,
        size_bytes: 1,
        engine: "tract".into(),
        signature: sig(),
        llm_facts: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_round_trip_idempotence_and_conflicts() {
    for b in common::backends("registry").await {
        let store = b.open().await;
        let a = ModelDigest::of_model_bytes(b"a");
        let bb = ModelDigest::of_model_bytes(b"b");
        for d in [a, bb] {
            let mut m = new_model(d);
            m.llm_facts = (d == bb).then(|| r#"{"arch":"llama"}"#.to_owned());
            assert!(store.insert_model(&m).await.unwrap(), "{}", b.name);
            assert!(
                !store.insert_model(&m).await.unwrap(),
                "{}: idempotent",
                b.name
            );
        }
        assert_eq!(
            store.set_name("m", "1", &a, false).await.unwrap(),
            NameChange::Created
        );
        assert_eq!(
            store.set_name("m", "1", &a, false).await.unwrap(),
            NameChange::Unchanged
        );
        assert!(matches!(
            store.set_name("m", "1", &bb, false).await,
            Err(StoreError::VersionConflict { .. })
        ));
        assert_eq!(
            store.set_name("m", "2", &bb, false).await.unwrap(),
            NameChange::Created
        );
        assert_eq!(
            store.resolve_name("m", None).await.unwrap().unwrap().digest,
            bb
        );
        assert_eq!(
            store
                .resolve_name("m", Some("1"))
                .await
                .unwrap()
                .unwrap()
                .digest,
            a
        );
        assert_eq!(
            store.set_name("m", "1", &bb, true).await.unwrap(),
            NameChange::Moved { from: a }
        );
        let latest = store.resolve_name("m", None).await.unwrap().unwrap();
        assert_eq!(
            latest.version, "1",
            "{}: latest follows the last change",
            b.name
        );
        let rec = store.model(&bb).await.unwrap().unwrap();
        assert_eq!(rec.names.len(), 2);
        assert_eq!(rec.signature, sig());
        assert_eq!(rec.llm_facts.as_deref(), Some(r#"{"arch":"llama"}"#));
        assert!(
            store
                .model(&ModelDigest::of_model_bytes(b"c"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.count_models().await.unwrap(), 2);
        let listed = store.list_models(1, 1).await.unwrap();
        assert_eq!(listed.len(), 1, "{}: paginated", b.name);
        assert!(store.resolve_name("nope", None).await.unwrap().is_none());
        // Reopened (another node, or a restart): the same answers.
        drop(store);
        let store = b.open().await;
        assert_eq!(
            store.resolve_name("m", None).await.unwrap().unwrap().digest,
            bb
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pointer_move_is_stored_with_the_move_for_the_log() {
    for b in common::backends("pointer_moves").await {
        let store = b.open().await;
        let a = ModelDigest::of_model_bytes(b"a");
        let bb = ModelDigest::of_model_bytes(b"b");
        for d in [a, bb] {
            store.insert_model(&new_model(d)).await.unwrap();
        }
        store.set_name("m", "1", &a, false).await.unwrap();
        store.set_name("m", "1", &a, false).await.unwrap(); // unchanged: nothing stored
        store.set_name("m", "2", &bb, false).await.unwrap();
        store.set_name("m", "1", &bb, true).await.unwrap(); // moved; latest stays b
        let moves: Vec<_> = store
            .unlogged_pointer_changes(100)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.version, c.from, c.to))
            .collect();
        assert_eq!(
            moves,
            vec![
                (Some("1".into()), None, a),
                (None, None, a),
                (Some("2".into()), None, bb),
                (None, Some(a), bb),
                (Some("1".into()), Some(a), bb),
            ],
            "{}",
            b.name
        );
        let first = store.unlogged_pointer_changes(1).await.unwrap();
        store
            .mark_logged(LogOutbox::Pointer, first[0].seq, 0)
            .await
            .unwrap();
        // Once: a row already marked keeps its index.
        store
            .mark_logged(LogOutbox::Pointer, first[0].seq, 9)
            .await
            .unwrap();
        assert_eq!(store.unlogged_pointer_changes(100).await.unwrap().len(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_are_recorded_once_each_and_survive_reopen() {
    for b in common::backends("policies").await {
        let store = b.open().await;
        let c = store
            .set_policy("mlp", Some(Tier::Tee))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.min_tier, c.previous), (Some(Tier::Tee), None));
        assert!(
            store
                .set_policy("mlp", Some(Tier::Tee))
                .await
                .unwrap()
                .is_none()
        );
        let c = store
            .set_policy("mlp", Some(Tier::Zk))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.min_tier, c.previous), (Some(Tier::Zk), Some(Tier::Tee)));
        store
            .set_policy("sha256:ab", Some(Tier::Signed))
            .await
            .unwrap();
        let p = store
            .policies_for(&["other".into(), "sha256:ab".into(), "mlp".into()])
            .await
            .unwrap();
        let got: Vec<_> = p.iter().map(|p| (p.subject.as_str(), p.min_tier)).collect();
        assert_eq!(
            got,
            [("sha256:ab", Tier::Signed), ("mlp", Tier::Zk)],
            "{}",
            b.name
        );
        let c = store.set_policy("mlp", None).await.unwrap().unwrap();
        assert_eq!((c.min_tier, c.previous), (None, Some(Tier::Zk)));
        assert!(
            store
                .policies_for(&["mlp".into()])
                .await
                .unwrap()
                .is_empty()
        );
        drop(store);

        let store = b.open().await;
        let all = store.policy_changes(0, 100).await.unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            store.policy_changes(all[1].seq, 100).await.unwrap().len(),
            2
        );
        assert_eq!(store.unlogged_policy_changes(100).await.unwrap().len(), 4);
        store
            .mark_logged(LogOutbox::Policy, all[0].seq, 41)
            .await
            .unwrap();
        assert_eq!(store.unlogged_policy_changes(100).await.unwrap().len(), 3);
        assert_eq!(
            store.policy_changes(0, 1).await.unwrap()[0].log_index,
            Some(41)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_is_recorded_once_and_drained_once() {
    for b in common::backends("configs").await {
        let store = b.open().await;
        let m = ModelDigest(Digest::of(b"model"));
        let cfg = r#"{"system_prompt":"be brief"}"#;
        let d = Digest::of(cfg.as_bytes());
        let c = store.set_model_config(&m, cfg, &d).await.unwrap().unwrap();
        assert_eq!(c.config_digest, d);
        assert!(store.set_model_config(&m, cfg, &d).await.unwrap().is_none());
        let now = store.model_config(&m).await.unwrap().unwrap();
        assert_eq!(
            (now.config_digest, now.config["system_prompt"].as_str()),
            (d, Some("be brief"))
        );
        assert_eq!(store.unlogged_config_changes(10).await.unwrap().len(), 1);
        store
            .mark_logged(LogOutbox::Config, c.seq, 7)
            .await
            .unwrap();
        assert!(store.unlogged_config_changes(10).await.unwrap().is_empty());
        let cfg2 = r#"{"system_prompt":"be verbose"}"#;
        let d2 = Digest::of(cfg2.as_bytes());
        store
            .set_model_config(&m, cfg2, &d2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.model_config(&m).await.unwrap().unwrap().config_digest,
            d2
        );
        assert_eq!(
            store.unlogged_config_changes(10).await.unwrap().len(),
            1,
            "{}",
            b.name
        );
        assert!(
            store
                .model_config(&ModelDigest(Digest::of(b"x")))
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// Two handles on one database (two nodes, or two pools of one): moves of one name made at once
/// are serialised — every move is stored with the pointer it really moved from, and what the
/// name resolves to at the end is the last move's target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_moves_of_one_name_from_two_handles_each_record_what_they_moved() {
    for b in common::backends("concurrent_moves").await {
        let (one, two) = (b.open().await, b.open().await);
        let digests: Vec<_> = (0..8u8)
            .map(|i| ModelDigest::of_model_bytes(&[i]))
            .collect();
        for d in &digests {
            one.insert_model(&new_model(*d)).await.unwrap();
        }
        let mut tasks = Vec::new();
        for (i, d) in digests.iter().enumerate() {
            let s = if i % 2 == 0 { one.clone() } else { two.clone() };
            let d = *d;
            tasks.push(tokio::spawn(
                async move { s.set_name("m", "1", &d, true).await },
            ));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let moves: Vec<_> = one
            .unlogged_pointer_changes(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.version.is_some())
            .collect();
        assert_eq!(moves.len(), 8, "{}", b.name);
        // A chain: each move starts where the one before ended.
        assert_eq!(moves[0].from, None);
        for w in moves.windows(2) {
            assert_eq!(w[1].from, Some(w[0].to), "{}: {moves:?}", b.name);
        }
        let end = two.resolve_name("m", Some("1")).await.unwrap().unwrap();
        assert_eq!(end.digest, moves[7].to);
    }
}

#[tokio::test]
async fn a_blob_reads_back_and_a_tampered_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = vouch_store::Store::open(dir.path()).await.unwrap();
    let a = ModelDigest::of_model_bytes(b"a");
    store
        .blobs
        .put_model(&a, bytes::Bytes::from_static(b"a"))
        .await
        .unwrap();
    assert_eq!(&store.blobs.get_model(&a).await.unwrap()[..], b"a");
    std::fs::write(dir.path().join("blobs/models").join(a.0.hex()), b"tampered").unwrap();
    assert!(matches!(
        store.blobs.get_model(&a).await,
        Err(StoreError::Corrupt(_))
    ));
}

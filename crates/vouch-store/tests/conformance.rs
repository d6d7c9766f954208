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
        // What the explorer lists: policies in force by subject, changes newest first.
        store.set_policy("cnn", Some(Tier::Tee)).await.unwrap();
        let all = store.all_policies(10).await.unwrap();
        let got: Vec<_> = all
            .iter()
            .map(|p| (p.subject.as_str(), p.min_tier))
            .collect();
        assert_eq!(
            got,
            [("cnn", Tier::Tee), ("sha256:ab", Tier::Signed)],
            "{}",
            b.name
        );
        assert_eq!(store.all_policies(1).await.unwrap().len(), 1);
        let recent = store.recent_policy_changes(2).await.unwrap();
        let got: Vec<_> = recent
            .iter()
            .map(|c| (c.subject.as_str(), c.min_tier))
            .collect();
        assert_eq!(got, [("cnn", Some(Tier::Tee)), ("mlp", None)], "{}", b.name);
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
        // The history, newest first, with the log index of what was logged; another
        // model's changes are not in it.
        let other = ModelDigest(Digest::of(b"other"));
        store.set_model_config(&other, cfg, &d).await.unwrap();
        let h = store.config_history(&m, 10).await.unwrap();
        let got: Vec<_> = h.iter().map(|c| (c.config_digest, c.log_index)).collect();
        assert_eq!(got, [(d2, None), (d, Some(7))], "{}", b.name);
        assert_eq!(store.config_history(&m, 1).await.unwrap().len(), 1);
        assert!(
            store
                .config_history(&ModelDigest(Digest::of(b"x")), 10)
                .await
                .unwrap()
                .is_empty()
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

async fn zk_store(b: &common::Backend) -> vouch_store::Store {
    let store = b.open().await;
    vouch_store::proof_store::migrate(&store).await.unwrap();
    store
}

fn job(id: &str, model: ModelDigest) -> vouch_store::proof_store::NewZkJob<'_> {
    vouch_store::proof_store::NewZkJob {
        id,
        model,
        receipt_hash: Digest::of(b"receipt"),
        receipt: "{}",
        inputs: "{}",
        cancel_hash: Digest::of(b"t"),
        estimate_ms: 5,
    }
}

const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_jobs_move_through_their_states_and_are_purged_once_ended() {
    for b in common::backends("zk_jobs").await {
        let store = zk_store(&b).await;
        let d = ModelDigest::of_model_bytes(b"m");
        store.insert_model(&new_model(d)).await.unwrap();
        assert_eq!(store.models_without_zk().await.unwrap(), vec![d]);
        store
            .put_zk_model(&d, "unavailable", Some("operator Softmax"), None, None)
            .await
            .unwrap();
        assert!(store.models_without_zk().await.unwrap().is_empty());
        assert_eq!(store.zk_models().await.unwrap()[0].status, "unavailable");
        for id in ["a", "b", "c"] {
            store.insert_zk_job(&job(id, d)).await.unwrap();
        }
        // Claimed oldest first, each once.
        let a = store.claim_zk_job("w1", LEASE, 3).await.unwrap().unwrap();
        let bj = store.claim_zk_job("w1", LEASE, 3).await.unwrap().unwrap();
        assert_eq!((a.id.as_str(), bj.id.as_str()), ("a", "b"), "{}", b.name);
        assert_eq!(a.status, "running");
        assert!(
            store
                .renew_zk_job("a", "w1", "prove", 0.5, LEASE)
                .await
                .unwrap()
        );
        assert!(
            !store
                .renew_zk_job("a", "w2", "prove", 0.5, LEASE)
                .await
                .unwrap(),
            "not w2's"
        );
        assert!(
            !store.finish_zk_job("b", "w2", "{}", 1).await.unwrap(),
            "not w2's"
        );
        assert!(
            store
                .finish_zk_job("b", "w1", "{\"p\":1}", 7)
                .await
                .unwrap()
        );
        assert!(
            store
                .end_zk_job("c", "cancelled", "cancelled", "by admin", None)
                .await
                .unwrap()
        );
        assert!(
            !store
                .end_zk_job("b", "failed", "x", "y", None)
                .await
                .unwrap(),
            "done stays done"
        );
        let done = store.zk_job("b").await.unwrap().unwrap();
        assert_eq!(
            (
                done.status.as_str(),
                done.evidence.as_deref(),
                done.prove_ms
            ),
            ("done", Some("{\"p\":1}"), Some(7))
        );
        let a_now = store.zk_job("a").await.unwrap().unwrap();
        assert_eq!((a_now.stage.as_str(), a_now.progress), ("prove", 0.5));
        assert!(
            store.claim_zk_job("w1", LEASE, 3).await.unwrap().is_none(),
            "nothing left"
        );
        assert!(store.zk_job("nope").await.unwrap().is_none());
        // Retention: ended jobs (b done, c cancelled) go, the open one stays.
        let hour = std::time::Duration::from_secs(3600);
        let past = std::time::SystemTime::now() - hour;
        assert_eq!(store.purge_ended_zk_jobs(past).await.unwrap(), 0);
        let future = std::time::SystemTime::now() + hour;
        assert_eq!(
            store.purge_ended_zk_jobs(future).await.unwrap(),
            2,
            "{}",
            b.name
        );
        assert!(store.zk_job("c").await.unwrap().is_none());
        assert_eq!(store.zk_job("a").await.unwrap().unwrap().status, "running");
    }
}

/// Provers on several handles (nodes and workers): each job goes to one prover; a prover that
/// stops renewing loses its job to another, which is told; after `max_attempts` lost provers
/// the job fails; a job that ended without a proof is handed to exactly one taker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_jobs_survive_lost_provers_and_every_failure_is_handed_over_once() {
    for b in common::backends("zk_leases").await {
        let (one, two) = (zk_store(&b).await, zk_store(&b).await);
        let d = ModelDigest::of_model_bytes(b"m");
        one.insert_model(&new_model(d)).await.unwrap();
        let ids: Vec<String> = (0..12).map(|i| format!("job-{i:02}")).collect();
        for id in &ids {
            one.insert_zk_job(&job(id, d)).await.unwrap();
        }
        // Twelve claims at once from two handles: twelve different jobs.
        let mut tasks = Vec::new();
        for i in 0..12 {
            let s = if i % 2 == 0 { one.clone() } else { two.clone() };
            tasks.push(tokio::spawn(async move {
                let w = format!("w{i}");
                let id = s.claim_zk_job(&w, LEASE, 2).await.unwrap().unwrap().id;
                (id, w)
            }));
        }
        let mut claims = Vec::new();
        for t in tasks {
            claims.push(t.await.unwrap());
        }
        claims.sort();
        let holder_of_00 = claims[0].1.clone();
        let got: Vec<String> = claims.into_iter().map(|c| c.0).collect();
        assert_eq!(got, ids, "{}", b.name);

        // A prover that dies: a short lease runs out and another claims the job.
        one.insert_zk_job(&job("lost", d)).await.unwrap();
        let short = std::time::Duration::from_millis(1);
        let first = one.claim_zk_job("dead", short, 2).await.unwrap().unwrap();
        assert_eq!(first.id, "lost");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let again = two.claim_zk_job("alive", short, 2).await.unwrap().unwrap();
        assert_eq!(again.id, "lost", "{}: taken over", b.name);
        assert!(
            !one.renew_zk_job("lost", "dead", "x", 0.1, LEASE)
                .await
                .unwrap()
        );
        assert!(!one.finish_zk_job("lost", "dead", "{}", 1).await.unwrap());
        // The second prover dies too: two attempts made, so the job fails instead.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(two.claim_zk_job("third", LEASE, 2).await.unwrap().is_none());
        assert_eq!(two.fail_exhausted_zk_jobs(2).await.unwrap(), 1);
        let lost = one.zk_job("lost").await.unwrap().unwrap();
        assert_eq!(lost.status, "failed", "{}", b.name);

        // A prover failing a job it no longer holds changes nothing.
        assert!(
            !one.end_zk_job("job-00", "failed", "x", "y", Some("w-other"))
                .await
                .unwrap()
        );
        assert!(
            one.end_zk_job("job-00", "failed", "x", "y", Some(&holder_of_00))
                .await
                .unwrap()
        );
        // Failures are handed over once: two takers at once, each row to one of them.
        let (x, y) = tokio::join!(
            one.take_zk_failures(None, 100),
            two.take_zk_failures(None, 100)
        );
        let mut taken: Vec<String> = x
            .unwrap()
            .into_iter()
            .chain(y.unwrap())
            .map(|r| r.id)
            .collect();
        taken.sort();
        assert_eq!(taken, ["job-00", "lost"], "{}", b.name);
        assert!(one.take_zk_failures(None, 100).await.unwrap().is_empty());
    }
}

//! The running log over the in-memory store: concurrent group-commit appends, checkpoints,
//! offline bundle verification, witnesses, the monitor, history, restarts and failures.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use vouch_core::{
    BUNDLE_FORMAT, Bundle, Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, RECEIPT_VERSION,
    Receipt, Tier,
};
use vouch_log::audit::{AuditError, Monitor};
use vouch_log::checkpoint::LogSigner;
use vouch_log::cosign::Cosigner;
use vouch_log::entry::{LogEntry, ModelRegistered, PointerMoved};
use vouch_log::evidence::{OfflineError, TrustPolicy, verify_bundle_log};
use vouch_log::log::{Log, LogConfig, LogError};
use vouch_log::merkle::{ProofError, verify_consistency, verify_inclusion};
use vouch_log::store::{MemoryStore, StoreError};
use vouch_log::tiles::Tile;
use vouch_log::witness::{
    AddCheckpoint, Witness, WitnessClientError, parse_add_checkpoint_response,
};

const ORIGIN: &str = "vouch.test/log";

fn receipt(i: u64) -> Receipt {
    Receipt {
        version: RECEIPT_VERSION,
        request_id: format!("req-{i}"),
        model: ModelDigest(Digest::of(b"model")),
        model_ref: Some("mnist-cnn@1".into()),
        input_digest: Digest::of(&i.to_be_bytes()),
        output_digest: Digest::of(b"out"),
        engine: EngineInfo {
            name: "tract".into(),
            version: "0.23.9".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 1,
            },
        },
        config_digest: None,
        tiers: vec![Tier::Signed],
        node_key: NodeKey([7; 32]),
        issued_at: "2026-11-25T12:00:00.000Z".into(),
        payment: None,
    }
}

fn signer(seed: u8) -> LogSigner {
    LogSigner::from_signing_key(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

fn witness(name: &str, seed: u8) -> Witness {
    let c = Cosigner::from_signing_key(name, SigningKey::from_bytes(&[seed; 32])).unwrap();
    Witness::new(c, vec![signer(1).key().clone()])
}

async fn open(store: Arc<MemoryStore>, config: LogConfig) -> Log<Arc<MemoryStore>> {
    let (log, committer) = Log::open(store, signer(1), config).await.unwrap();
    tokio::spawn(committer.run());
    log
}

fn bundle(r: Receipt, ev: serde_json::Value) -> Bundle {
    Bundle {
        format: BUNDLE_FORMAT.into(),
        receipt: r,
        signature: None,
        outputs: None,
        evidence: BTreeMap::from([("log".to_string(), ev)]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_durable_distinct_and_provable_offline() {
    let store = Arc::new(MemoryStore::new());
    let log = open(
        store.clone(),
        LogConfig {
            checkpoint_every_entries: 100,
            ..Default::default()
        },
    )
    .await;
    // A new log publishes the empty checkpoint at open.
    assert_eq!(log.latest_checkpoint().unwrap().size, 0);

    let mut tasks = Vec::new();
    for i in 0..600u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            (i, log.append_receipt(&receipt(i)).await.unwrap())
        }));
    }
    let mut seen = vec![None; 600];
    for t in tasks {
        let (i, a) = t.await.unwrap();
        assert!(
            seen[a.index as usize].is_none(),
            "index {} given twice",
            a.index
        );
        seen[a.index as usize] = Some(i);
        // Acknowledged means stored: the entry is readable right away.
        assert_eq!(
            log.entry(a.index).await.unwrap(),
            vouch_log::entry::receipt_entry_bytes(&receipt(i))
        );
    }
    assert_eq!(log.size(), 600);
    let cp = log.publish_checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.size, 600);

    let policy = TrustPolicy {
        log: signer(1).key().clone(),
        witnesses: vec![],
        threshold: 0,
    };
    for idx in [0u64, 1, 255, 256, 599] {
        let i = seen[idx as usize].unwrap();
        let ev = log.evidence(idx).await.unwrap();
        let b = bundle(receipt(i), ev.to_json());
        let v = verify_bundle_log(&b, &policy).unwrap();
        assert_eq!(
            (v.index, v.tree_size, v.origin.as_str()),
            (idx, 600, ORIGIN)
        );

        // The same proof cannot vouch for a different receipt...
        let mut other = receipt(i);
        other.output_digest = Digest::of(b"forged output");
        assert!(matches!(
            verify_bundle_log(&bundle(other, ev.to_json()), &policy),
            Err(OfflineError::Inclusion(
                ProofError::InclusionMismatch { .. }
            ))
        ));
        // ...nor pass under another log's key.
        let other_key = TrustPolicy {
            log: signer(2).key().clone(),
            witnesses: vec![],
            threshold: 0,
        };
        assert!(verify_bundle_log(&b, &other_key).is_err());
    }
    assert!(matches!(
        verify_bundle_log(&bundle(receipt(0), serde_json::json!({})), &policy),
        Err(OfflineError::Evidence(_))
    ));
    let mut no_ev = bundle(receipt(0), serde_json::json!(null));
    no_ev.evidence.clear();
    assert_eq!(
        verify_bundle_log(&no_ev, &policy),
        Err(OfflineError::Missing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnesses_cosign_and_verifiers_demand_a_threshold() {
    let store = Arc::new(MemoryStore::new());
    let mut w1 = witness("w1.test/witness", 11);
    let w2 = witness("w2.test/witness", 12);
    let config = LogConfig {
        witnesses: vec![w1.key().clone(), w2.key().clone()],
        ..Default::default()
    };
    let log = open(store.clone(), config).await;
    let a = log.append_receipt(&receipt(1)).await.unwrap();
    let cp = log.publish_checkpoint().await.unwrap().unwrap();

    // Witness protocol round trip, starting from old size 0.
    let req = log.witness_request(0).await.unwrap();
    let body = req.to_body();
    let resp = w1.add_checkpoint(&body, 1_700_000_000).unwrap();
    let cosig = parse_add_checkpoint_response(w1.key(), &req.checkpoint, 200, &resp).unwrap();
    assert_eq!(cosig.timestamp, 1_700_000_000);
    let seen = log
        .add_cosignature(cp.size, &cosig.to_line())
        .await
        .unwrap();
    assert_eq!(seen.witness, "w1.test/witness");
    assert_eq!(log.latest_checkpoint().unwrap().cosignatures.len(), 1);

    let ev = log.evidence(a.index).await.unwrap();
    let b = bundle(receipt(1), ev.to_json());
    let one = TrustPolicy {
        log: signer(1).key().clone(),
        witnesses: vec![w1.key().clone(), w2.key().clone()],
        threshold: 1,
    };
    let v = verify_bundle_log(&b, &one).unwrap();
    assert_eq!(v.witnesses.len(), 1);
    let two = TrustPolicy {
        threshold: 2,
        ..one.clone()
    };
    let err = verify_bundle_log(&b, &two).unwrap_err();
    assert!(
        matches!(
            err,
            OfflineError::Threshold {
                need: 2,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("w1.test/witness"));
    let impossible = TrustPolicy {
        threshold: 3,
        ..one.clone()
    };
    assert!(matches!(
        verify_bundle_log(&b, &impossible),
        Err(OfflineError::ImpossibleThreshold { .. })
    ));

    // A forged cosignature line is refused by the log, and by verifiers if it got in anyway.
    let mut forged = cosig.clone();
    forged.signature[5] ^= 1;
    assert!(matches!(
        log.add_cosignature(cp.size, &forged.to_line()).await,
        Err(LogError::Cosignature(_))
    ));
    // A witness following another log answers 404; one with another key for this origin, 403.
    let c = Cosigner::from_signing_key("stranger.test", SigningKey::from_bytes(&[99; 32])).unwrap();
    let other_log =
        LogSigner::from_signing_key("other.test/log", SigningKey::from_bytes(&[1; 32])).unwrap();
    let mut stranger = Witness::new(c.clone(), vec![other_log.key().clone()]);
    assert_eq!(
        stranger
            .add_checkpoint(&body, 1_700_000_001)
            .unwrap_err()
            .status,
        404
    );
    let mut rekeyed = Witness::new(c, vec![signer(2).key().clone()]);
    assert_eq!(
        rekeyed
            .add_checkpoint(&body, 1_700_000_001)
            .unwrap_err()
            .status,
        403
    );

    // Next round: the witness needs a consistency proof from its size 1.
    log.append_receipt(&receipt(2)).await.unwrap();
    log.append_receipt(&receipt(3)).await.unwrap();
    log.publish_checkpoint().await.unwrap();
    let stale = log.witness_request(0).await.unwrap();
    let refusal = w1
        .add_checkpoint(&stale.to_body(), 1_700_000_100)
        .unwrap_err();
    assert_eq!((refusal.status, refusal.size), (409, Some(1)));
    let client = parse_add_checkpoint_response(w1.key(), &stale.checkpoint, 409, &refusal.body())
        .unwrap_err();
    assert_eq!(
        client,
        WitnessClientError::Conflict {
            witness: "w1.test/witness".into(),
            witness_size: 1
        }
    );
    let req = log.witness_request(1).await.unwrap();
    assert!(!req.proof.is_empty());
    w1.add_checkpoint(&req.to_body(), 1_700_000_100).unwrap();

    // A forked log under the same key (split view) is refused with 422.
    let fork = Arc::new(MemoryStore::new());
    let fork_log = open(fork, LogConfig::default()).await;
    for i in [1u64, 20, 30, 40] {
        fork_log.append_receipt(&receipt(i)).await.unwrap();
    }
    fork_log.publish_checkpoint().await.unwrap();
    let fork_req = fork_log.witness_request(3).await.unwrap();
    assert_eq!(
        w1.add_checkpoint(&fork_req.to_body(), 1_700_000_200)
            .unwrap_err()
            .status,
        422
    );
    // Malformed bodies are 400, bad signatures 403.
    assert_eq!(w1.add_checkpoint(b"nonsense", 1).unwrap_err().status, 400);
    let mut tampered = req.clone();
    let n = tampered.checkpoint.len();
    tampered.checkpoint[n - 10] ^= 1;
    let status = w1
        .add_checkpoint(&tampered.to_body(), 1)
        .unwrap_err()
        .status;
    assert!(status == 403 || status == 400, "{status}");
    assert_eq!(AddCheckpoint::parse(&req.to_body()).unwrap(), req);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_rederives_tiles_and_flags_rewrites_and_forks() {
    let store = Arc::new(MemoryStore::new());
    let log = open(store.clone(), LogConfig::default()).await;
    for i in 0..300u64 {
        log.append_receipt(&receipt(i)).await.unwrap();
    }
    let cp = log.publish_checkpoint().await.unwrap().unwrap();
    let key = signer(1).key().clone();

    let run = |state: Option<vouch_log::audit::MonitorState>,
               log: Log<Arc<MemoryStore>>,
               key: vouch_log::LogKey| async move {
        let mut m = Monitor::new(key, state).unwrap();
        let note = log.latest_checkpoint().unwrap().signed_note();
        let size = log.latest_checkpoint().unwrap().size;
        let proof = if m.known_size() == 0 {
            vec![]
        } else {
            log.consistency_proof(m.known_size(), size).await.unwrap()
        };
        let vc = m.check_checkpoint(&note, &proof)?;
        for t in m.bundles_needed(size) {
            let bundle = log.tile(t).await.unwrap();
            let tile0 = log.tile(Tile::hashes(0, t.n, t.width)).await.unwrap();
            m.feed_bundle(t, &bundle, Some(&tile0))?;
        }
        m.finish(&vc)
    };
    let (report, state) = run(None, log.clone(), key.clone()).await.unwrap();
    assert_eq!((report.size, report.entries_checked), (300, 300));
    assert_eq!(report.root, cp.root);

    for i in 300..700u64 {
        log.append_receipt(&receipt(i)).await.unwrap();
    }
    log.publish_checkpoint().await.unwrap();
    let (report, state) = run(Some(state), log.clone(), key.clone()).await.unwrap();
    assert_eq!(
        (report.previous_size, report.size, report.entries_checked),
        (300, 700, 400)
    );

    // A fork signed with the log's key: same size 700, different entry 500.
    let fork_store = Arc::new(MemoryStore::new());
    let fork = open(fork_store, LogConfig::default()).await;
    for i in 0..800u64 {
        fork.append_receipt(&receipt(if i == 500 { 9999 } else { i }))
            .await
            .unwrap();
    }
    fork.publish_checkpoint().await.unwrap();
    let m = Monitor::new(key.clone(), Some(state.clone())).unwrap();
    let note = fork.latest_checkpoint().unwrap().signed_note();
    let proof = fork.consistency_proof(700, 800).await.unwrap();
    let err = m.check_checkpoint(&note, &proof).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::Inconsistent {
                old_size: 700,
                new_size: 800,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("SPLIT VIEW"));

    // A log that serves entries that do not hash to its checkpoint (rewritten bundle).
    let mut m = Monitor::new(key.clone(), None).unwrap();
    let honest_note = log.latest_checkpoint().unwrap().signed_note();
    let vc = m.check_checkpoint(&honest_note, &[]).unwrap();
    for t in m.bundles_needed(700) {
        let mut entries =
            vouch_log::tiles::decode_entry_bundle(&log.tile(t).await.unwrap()).unwrap();
        if t.n == 1 {
            entries[10] = vouch_log::entry::receipt_entry_bytes(&receipt(4242));
        }
        let b = vouch_log::tiles::encode_entry_bundle(entries.iter().map(Vec::as_slice)).unwrap();
        m.feed_bundle(t, &b, None).unwrap();
    }
    assert!(matches!(
        m.finish(&vc),
        Err(AuditError::RootMismatch { size: 700, .. })
    ));
    // With the level-0 tile fetched too, the bad entry is pinned to its index.
    let mut m = Monitor::new(key.clone(), None).unwrap();
    m.check_checkpoint(&honest_note, &[]).unwrap();
    let t = m.bundles_needed(700)[0];
    let mut entries = vouch_log::tiles::decode_entry_bundle(&log.tile(t).await.unwrap()).unwrap();
    entries[3] = b"vouch-log/v1 receipt\n{}".to_vec();
    let b = vouch_log::tiles::encode_entry_bundle(entries.iter().map(Vec::as_slice)).unwrap();
    let tile0 = log.tile(Tile::hashes(0, 0, 256)).await.unwrap();
    assert_eq!(
        m.feed_bundle(t, &b, Some(&tile0)),
        Err(AuditError::TileMismatch {
            path: "tile/0/000".into(),
            index: 3
        })
    );
    // Garbage that the log itself hashed is still caught as a bad entry.
    let garbage_store = Arc::new(MemoryStore::new());
    let garbage = open(garbage_store.clone(), LogConfig::default()).await;
    garbage.append_receipt(&receipt(1)).await.unwrap();
    let ok_entry = vouch_log::entry::receipt_entry_bytes(&receipt(2));
    let junk = b"vouch-log/v1 receipt\n{\"not\":\"a receipt\"}".to_vec();
    let junk_bundle =
        vouch_log::tiles::encode_entry_bundle([ok_entry.as_slice(), junk.as_slice()]).unwrap();
    let mut m = Monitor::new(key, None).unwrap();
    let e = m
        .feed_bundle(Tile::entries(0, 2), &junk_bundle, None)
        .unwrap_err();
    assert!(matches!(e, AuditError::BadEntry { index: 1, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_pointer_moves_with_times_and_flags_gaps() {
    let log = open(Arc::new(MemoryStore::new()), LogConfig::default()).await;
    let d = |s: &[u8]| ModelDigest(Digest::of(s));
    let mv = |from: Option<ModelDigest>, to: ModelDigest, at: &str| {
        LogEntry::PointerMoved(PointerMoved {
            name: "mnist-cnn".into(),
            version: None,
            from,
            to: Some(to),
            at: at.into(),
        })
    };
    log.append(&LogEntry::ModelRegistered(ModelRegistered {
        model: d(b"v1"),
        size: 10,
        format: "onnx".into(),
        at: "2026-01-01T00:00:00.000Z".into(),
    }))
    .await
    .unwrap();
    log.append(&mv(None, d(b"v1"), "2026-01-01T00:00:01.000Z"))
        .await
        .unwrap();
    log.append_receipt(&receipt(5)).await.unwrap();
    log.append(&LogEntry::PointerMoved(PointerMoved {
        name: "other".into(),
        version: None,
        from: None,
        to: Some(d(b"x")),
        at: "2026-01-02T00:00:00.000Z".into(),
    }))
    .await
    .unwrap();
    log.append(&mv(Some(d(b"v1")), d(b"v2"), "2026-02-01T00:00:00.000Z"))
        .await
        .unwrap();
    // The pointer went v2 -> v3 without a log entry; this entry claims it moved from v3.
    log.append(&mv(Some(d(b"v3")), d(b"v4"), "2026-03-01T00:00:00.000Z"))
        .await
        .unwrap();
    let h = log.history("mnist-cnn").await.unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h.iter().map(|c| c.index).collect::<Vec<_>>(), vec![1, 4, 5]);
    assert_eq!(h[1].at, "2026-02-01T00:00:00.000Z");
    assert_eq!(
        h.iter().map(|c| c.unlogged_move_before).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    assert!(log.history("nobody").await.unwrap().is_empty());
    // Receipts are found by request id (whichever way they were appended), never by history.
    let canonical = receipt(6).canonical_bytes();
    let a = log
        .append_receipt_canonical(&canonical, "req-6")
        .await
        .unwrap();
    let (i, bytes) = log.receipt_entry("req-5").await.unwrap().unwrap();
    assert_eq!(i, 2);
    assert_eq!(
        LogEntry::decode(&bytes).unwrap(),
        LogEntry::Receipt(Box::new(receipt(5)))
    );
    assert_eq!(
        log.receipt_entry("req-6").await.unwrap().unwrap().0,
        a.index
    );
    assert!(log.receipt_entry("req-7").await.unwrap().is_none());
    assert!(log.receipt_entry("mnist-cnn").await.unwrap().is_none());
    assert!(log.history("request:req-5").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_restarts_and_bad_requests() {
    let store = Arc::new(MemoryStore::new());
    let log = open(
        store.clone(),
        LogConfig {
            checkpoint_every_entries: 0,
            ..Default::default()
        },
    )
    .await;
    for i in 0..10u64 {
        log.append_receipt(&receipt(i)).await.unwrap();
    }
    // A failed commit is reported, and the next append lands right after the last good one.
    store.fail_next_commits(1);
    assert!(matches!(
        log.append_receipt(&receipt(10)).await,
        Err(LogError::Store(StoreError::Backend(_)))
    ));
    assert_eq!(log.append_receipt(&receipt(11)).await.unwrap().index, 10);

    // Waiting for a checkpoint: pending until one is published.
    let waiter = tokio::spawn({
        let log = log.clone();
        async move { log.wait_for_checkpoint(10).await.unwrap().size }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    let cp = log.publish_checkpoint().await.unwrap().unwrap();
    assert_eq!(waiter.await.unwrap(), 11);
    let old_root = cp.root;

    // Bad requests get clear errors.
    assert!(matches!(
        log.inclusion_proof(3, 12).await,
        Err(LogError::BeyondLog {
            size: 12,
            committed: 11
        })
    ));
    assert!(matches!(
        log.inclusion_proof(11, 11).await,
        Err(LogError::Proof(ProofError::IndexOutOfRange { .. }))
    ));
    assert!(matches!(
        log.consistency_proof(0, 5).await,
        Err(LogError::Proof(ProofError::EmptyOldTree))
    ));
    assert!(matches!(
        log.consistency_proof(6, 5).await,
        Err(LogError::Proof(ProofError::SizeDecreased { .. }))
    ));
    assert!(matches!(
        log.tile(Tile::hashes(0, 0, 12)).await,
        Err(LogError::Tile(_))
    ));
    assert!(matches!(log.entry(11).await, Err(LogError::Proof(_))));
    let mut bad_time = receipt(1);
    bad_time.issued_at = "yesterday".into();
    assert!(matches!(
        log.append_receipt(&bad_time).await,
        Err(LogError::Entry(_))
    ));
    assert!(matches!(
        log.checkpoint_at(5).await,
        Err(LogError::NoSuchCheckpoint(5))
    ));
    assert!(log.add_cosignature(11, "— nobody AAAA").await.is_err());

    // Restart over the same storage: same tree, and the new checkpoints extend the old ones.
    drop(log);
    let log = open(store.clone(), LogConfig::default()).await;
    assert_eq!(log.size(), 11);
    assert_eq!(log.latest_checkpoint().unwrap().root, old_root);
    let a = log.append_receipt(&receipt(50)).await.unwrap();
    assert_eq!(a.index, 11);
    let cp2 = log.publish_checkpoint().await.unwrap().unwrap();
    let proof = log.consistency_proof(11, 12).await.unwrap();
    verify_consistency(11, 12, old_root, cp2.root, &proof).unwrap();
    let ip = log.inclusion_proof(11, 12).await.unwrap();
    verify_inclusion(a.leaf_hash, 11, 12, &ip, cp2.root).unwrap();

    // Reopening with another key re-signs the latest checkpoint under it.
    drop(log);
    let (log2, c) = Log::open(store.clone(), signer(3), LogConfig::default())
        .await
        .unwrap();
    tokio::spawn(c.run());
    let note = log2.latest_checkpoint().unwrap().signed_note();
    vouch_log::checkpoint::verify_checkpoint(&note, signer(3).key()).unwrap();
}

/// The server awaits these inside axum handlers and spawned tasks: their futures must be `Send`.
#[test]
fn log_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn check(log: &Log<Arc<MemoryStore>>, e: &LogEntry, r: &Receipt) {
        send(&log.append(e));
        send(&log.append_receipt(r));
        send(&log.publish_checkpoint());
        send(&log.wait_for_checkpoint(0));
        send(&log.inclusion_proof(0, 1));
        send(&log.consistency_proof(1, 2));
        send(&log.tile(Tile::entries(0, 1)));
        send(&log.evidence(0));
        send(&log.history("x"));
        send(&log.witness_request(0));
        send(&log.add_cosignature(1, ""));
        send(&log.checkpoint_at(1));
        send(&log.entry(0));
    }
    let _ = check;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_that_panicked_serves_again_from_the_stored_tree() {
    let store = Arc::new(MemoryStore::new());
    let (log, committer) = Log::open(store.clone(), signer(1), LogConfig::default())
        .await
        .unwrap();
    let committer = Arc::new(tokio::sync::Mutex::new(committer));
    let start = |c: Arc<tokio::sync::Mutex<vouch_log::log::Committer<Arc<MemoryStore>>>>| {
        tokio::spawn(async move { c.lock().await.serve().await })
    };
    let first = start(committer.clone());
    for i in 0..3u64 {
        assert_eq!(log.append_receipt(&receipt(i)).await.unwrap().index, i);
    }
    // The batch reaches the store, then the committer panics: its caller hears the log closed.
    store.panic_after_next_commits(1);
    assert!(matches!(
        log.append_receipt(&receipt(3)).await,
        Err(LogError::Closed)
    ));
    assert!(first.await.unwrap_err().is_panic());
    // An append queued while no committer runs waits for the next one.
    let queued = tokio::spawn({
        let log = log.clone();
        async move { log.append_receipt(&receipt(4)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!queued.is_finished());
    // Started again, the committer re-reads the tree (4 entries stored, not the 3 it knew),
    // so the next entry lands after the interrupted one instead of conflicting with it.
    let _second = start(committer.clone());
    assert_eq!(queued.await.unwrap().unwrap().index, 4);
    assert_eq!(log.append_receipt(&receipt(5)).await.unwrap().index, 5);
    let cp = log.publish_checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.size, 6);
    for i in 0..6u64 {
        let entry = log.entry(i).await.unwrap();
        assert_eq!(entry, vouch_log::entry::receipt_entry_bytes(&receipt(i)));
        let proof = log.inclusion_proof(i, 6).await.unwrap();
        verify_inclusion(vouch_log::merkle::leaf_hash(&entry), i, 6, &proof, cp.root).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_receipts_are_logged_and_provable_offline() {
    use vouch_core::{CHAT_BUNDLE_FORMAT, ChatBundle, ChatReceipt};
    use vouch_log::evidence::verify_chat_bundle_log;
    let store = Arc::new(MemoryStore::new());
    let log = open(store, LogConfig::default()).await;
    // The published chat vector (docs/receipt.md).
    let chat: ChatReceipt = serde_json::from_str(include_str!(
        "../../vouch-verify/tests/vectors/chat1.canonical.json"
    ))
    .unwrap();
    log.append_receipt(&receipt(0)).await.unwrap();
    let a = log.append_chat_receipt(&chat).await.unwrap();
    assert_eq!(
        LogEntry::decode(&log.entry(a.index).await.unwrap()).unwrap(),
        LogEntry::ChatReceipt(Box::new(chat.clone()))
    );
    log.publish_checkpoint().await.unwrap().unwrap();
    let policy = TrustPolicy {
        log: signer(1).key().clone(),
        witnesses: vec![],
        threshold: 0,
    };
    let chat_bundle = |r: ChatReceipt, ev: serde_json::Value| ChatBundle {
        format: CHAT_BUNDLE_FORMAT.into(),
        receipt: r,
        signature: None,
        prompt_tokens: None,
        completion_tokens: None,
        evidence: BTreeMap::from([("log".to_string(), ev)]),
    };
    let ev = log.evidence(a.index).await.unwrap().to_json();
    let v = verify_chat_bundle_log(&chat_bundle(chat.clone(), ev.clone()), &policy).unwrap();
    assert_eq!((v.index, v.tree_size), (1, 2));
    let mut altered = chat.clone();
    altered.usage.completion_tokens += 1;
    assert!(verify_chat_bundle_log(&chat_bundle(altered, ev), &policy).is_err());
    // The ONNX receipt's proof does not vouch for a chat receipt, nor the reverse.
    let ev0 = log.evidence(0).await.unwrap().to_json();
    assert!(verify_chat_bundle_log(&chat_bundle(chat, ev0), &policy).is_err());
}

//! What a verifier or monitor reads from a log (`vouch-log`): C2SP `tlog-proof@v1` files and
//! their inclusion check, the bundle's `evidence.log` JSON, log entries, tile paths, hash tiles
//! and entry bundles. Each parse survives its own encoding; strict formats print back to the
//! exact input; an inclusion proof that verifies is for the trusted log and the given entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_core::Tier;
use vouch_fuzz::{LOG_ORIGIN, sample_proof, sample_receipt, trust_policy, write_seeds_if_asked};
use vouch_log::entry::{LogEntry, receipt_entry_bytes};
use vouch_log::merkle::leaf_hash;
use vouch_log::tiles::{
    Tile, decode_entry_bundle, decode_hash_tile, encode_entry_bundle, encode_hash_tile,
};
use vouch_log::{LogEvidence, TlogProof, verify_inclusion_offline};

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let entry = receipt_entry_bytes(&sample_receipt(vec![Tier::Signed]));
            let proof = sample_proof(&entry);
            verify_inclusion_offline(&proof, &entry, &trust_policy()).expect("the sample proof verifies");
            let mut with_extra = proof.clone();
            with_extra.extra = Some(b"opaque".to_vec());
            let bundle = encode_entry_bundle([entry.as_slice(), b"vouch-log/v1 other\n".as_slice()])
                .expect("small entries");
            vec![
                ("tlog-proof".into(), proof.to_text().into_bytes()),
                ("tlog-proof-extra".into(), with_extra.to_text().into_bytes()),
                ("evidence.json".into(), serde_json::to_vec(&LogEvidence::new(&proof).to_json()).expect("json")),
                ("evidence-pending.json".into(), br#"{"format":"vouch.log.v1","index":42}"#.to_vec()),
                ("entry-receipt".into(), entry),
                ("entry-bundle".into(), bundle),
                ("tile-path".into(), b"tile/0/x001/x234/067.p/8".to_vec()),
                ("tile-entries-path".into(), b"/tile/entries/000".to_vec()),
            ]
        });
    },
    |data: &[u8]| {
        let entry = receipt_entry_bytes(&sample_receipt(vec![Tier::Signed]));
        if let Ok(p) = TlogProof::parse(data) {
            assert_eq!(TlogProof::parse(p.to_text().as_bytes()).as_ref(), Ok(&p));
            if let Ok(v) = verify_inclusion_offline(&p, &entry, &trust_policy()) {
                assert_eq!(v.origin, LOG_ORIGIN);
                assert_eq!(v.index, p.index);
                assert!(v.index < v.tree_size);
                assert_eq!(v.leaf_hash, leaf_hash(&entry));
                assert_eq!(v.witnesses.len(), 1);
            }
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
            && let Ok(e) = LogEvidence::from_json(&v)
        {
            assert_eq!(LogEvidence::from_json(&e.to_json()).as_ref(), Ok(&e));
        }
        if let Ok(e) = LogEntry::decode(data) {
            assert_eq!(e.encode().as_deref(), Ok(data), "decode accepts canonical bytes only");
            assert_eq!(e.leaf_hash(), Ok(leaf_hash(data)));
        }
        if let Ok(entries) = decode_entry_bundle(data) {
            let again = encode_entry_bundle(entries.iter().map(Vec::as_slice));
            assert_eq!(again.as_deref(), Ok(data));
        }
        if !data.is_empty() && data.len() % 32 == 0 && data.len() <= 255 * 32 {
            let hashes = decode_hash_tile(data, (data.len() / 32) as u16).expect("whole hashes");
            assert_eq!(encode_hash_tile(&hashes), data);
        }
        if let Ok(path) = std::str::from_utf8(data)
            && let Ok(t) = Tile::parse_path(path)
        {
            assert_eq!(t.path(), path.strip_prefix('/').unwrap_or(path));
            assert_eq!(Tile::parse_path(&t.path()), Ok(t));
            for size in [0, 1, 256, 65_536, u64::MAX] {
                if let Ok(ix) = t.hash_indexes(size) {
                    assert_eq!(ix.len(), usize::from(t.width));
                }
                if let Ok((start, end)) = t.entry_range(size) {
                    assert!(start < end && end <= size);
                }
            }
        }
    }
);

//! The C2SP `tlog-witness` exchange (`vouch-log` `witness.rs`), both sides: a witness
//! (`vouch witness`) handling an `add-checkpoint` body from anyone, and a log reading a witness's
//! answer. A witness that cosigns returns a cosignature that verifies on that checkpoint and
//! moves its state forward only; a log accepts only a cosignature that verifies.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::{
    AT_UNIX, LOG_ORIGIN, cosigned_checkpoint, cosigner, log_signer, write_seeds_if_asked,
};
use vouch_log::checkpoint::{Checkpoint, SignedNote};
use vouch_log::cosign::Cosignature;
use vouch_log::merkle::{Hash, leaf_hash, node_hash};
use vouch_log::witness::{AddCheckpoint, Witness, WitnessedTree, parse_add_checkpoint_response};

/// Leaves of the log the witness has seen up to size 2, and the root at size 3.
fn tree() -> ([Hash; 3], Hash, Hash) {
    let l = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")];
    let r2 = node_hash(l[0], l[1]);
    (l, r2, node_hash(r2, l[2]))
}

fn witnesses() -> [Witness; 2] {
    let fresh = Witness::new(cosigner(), vec![log_signer().key().clone()]);
    let mut seen = Witness::new(cosigner(), vec![log_signer().key().clone()]);
    let (_, r2, _) = tree();
    seen.restore(BTreeMap::from([(
        LOG_ORIGIN.to_string(),
        WitnessedTree { size: 2, root: r2 },
    )]));
    [fresh, seen]
}

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let (l, _, r3) = tree();
            let note3 = log_signer().sign(3, r3);
            let from0 = AddCheckpoint { old_size: 0, proof: vec![], checkpoint: note3.clone() };
            let from2 = AddCheckpoint { old_size: 2, proof: vec![l[2]], checkpoint: note3.clone() };
            let [mut fresh, mut seen] = witnesses();
            let cosig = fresh.add_checkpoint(&from0.to_body(), AT_UNIX).expect("the witness cosigns");
            seen.add_checkpoint(&from2.to_body(), AT_UNIX).expect("a consistent checkpoint is cosigned");
            vec![
                ("add-from-0".into(), from0.to_body()),
                ("add-from-2".into(), from2.to_body()),
                ("add-cosigned-note".into(), AddCheckpoint { old_size: 2, proof: vec![l[2]], checkpoint: cosigned_checkpoint(3, r3) }.to_body()),
                ("response-200".into(), cosig),
                ("response-409".into(), b"2\n".to_vec()),
            ]
        });
    },
    |data: &[u8]| {
        if let Ok(req) = AddCheckpoint::parse(data) {
            assert_eq!(AddCheckpoint::parse(&req.to_body()).as_ref(), Ok(&req));
        }
        for mut w in witnesses() {
            let before = w.state().get(LOG_ORIGIN).cloned();
            match w.add_checkpoint(data, AT_UNIX) {
                Ok(line) => {
                    let req = AddCheckpoint::parse(data).expect("an accepted body parses");
                    let note = SignedNote::parse(&req.checkpoint).expect("an accepted note parses");
                    let cp = Checkpoint::parse_text(&note.text).expect("an accepted checkpoint parses");
                    let text = std::str::from_utf8(&line).expect("a cosignature line is text");
                    let c = Cosignature::parse_line(text.trim_end_matches('\n')).expect("own line parses");
                    let sig = c.to_note_signature();
                    assert_eq!(cosigner().key().verify(&note.text, &sig), Ok(c));
                    let after = &w.state()[LOG_ORIGIN];
                    assert_eq!((after.size, after.root), (cp.size, cp.root));
                    assert_eq!(req.old_size, before.as_ref().map_or(0, |b| b.size));
                    assert!(before.is_none_or(|b| b.size <= cp.size), "a witness never goes back");
                }
                Err(e) => {
                    assert_eq!(w.state().get(LOG_ORIGIN), before.as_ref(), "a refusal changes nothing");
                    assert_eq!(e.size.is_some(), e.status == 409);
                }
            }
        }
        let (_, _, r3) = tree();
        let note = log_signer().sign(3, r3);
        let text = &note[..note.windows(2).position(|w| w == b"\n\n").expect("blank line") + 1];
        for status in [200, 409] {
            if let Ok(c) = parse_add_checkpoint_response(cosigner().key(), &note, status, data) {
                assert_eq!(status, 200);
                assert!(cosigner().key().verify(text, &c.to_note_signature()).is_ok());
            }
        }
    }
);

//! Signed notes and what travels in them (`vouch-log`): a signed note, the checkpoint body, its
//! verification under the log key, witness cosignatures, single signature lines, and verifier
//! keys (`--log-key`, `--witness`). Every parse survives its own encoding; a checkpoint body is
//! strict (it prints back to exactly its text); a verified checkpoint is the trusted log's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::{LOG_ORIGIN, cosigned_checkpoint, cosigner, log_signer, write_seeds_if_asked};
use vouch_log::checkpoint::{Checkpoint, LogKey, NoteSignature, SignedNote, verify_checkpoint};
use vouch_log::cosign::{Cosignature, WitnessKey, verify_cosignatures};
use vouch_log::merkle::{EMPTY_ROOT, Hash};

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let note = cosigned_checkpoint(3, Hash([7; 32]));
            let mut ext = b"fuzz.vouch.invalid/log\n18446744073709551615\n".to_vec();
            ext.extend_from_slice(format!("{}\nextension line\n", Hash([1; 32])).as_bytes());
            let line = std::str::from_utf8(&note).expect("UTF-8").lines().last().expect("a line");
            vec![
                ("checkpoint-cosigned".into(), note.clone()),
                ("checkpoint-empty".into(), log_signer().sign(0, EMPTY_ROOT)),
                ("checkpoint-extension".into(), log_signer().sign_text(&ext)),
                ("log-vkey".into(), log_signer().key().to_vkey().into_bytes()),
                ("witness-vkey".into(), cosigner().key().to_vkey().into_bytes()),
                ("cosignature-line".into(), line.as_bytes().to_vec()),
            ]
        });
    },
    |data: &[u8]| {
        let log = log_signer().key().clone();
        let witness = cosigner().key().clone();
        if let Ok(note) = SignedNote::parse(data) {
            assert_eq!(SignedNote::parse(&note.to_bytes()).as_ref(), Ok(&note));
            if let Ok(cp) = Checkpoint::parse_text(&note.text) {
                assert_eq!(cp.to_text().as_bytes(), note.text.as_slice(), "strict body");
            }
            if let Ok(seen) = verify_cosignatures(&note, std::slice::from_ref(&witness)) {
                assert!(seen.len() <= 1);
                for w in &seen {
                    assert_eq!(w.witness, witness.name());
                    assert!(w.timestamp <= i64::MAX as u64);
                }
            }
        }
        if let Ok(v) = verify_checkpoint(data, &log) {
            assert_eq!(v.checkpoint.origin, LOG_ORIGIN);
            assert!(v.note.signatures.iter().any(|s| s.name == LOG_ORIGIN));
            assert_eq!(v.note.text, v.checkpoint.to_text().into_bytes());
        }
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        for line in text.lines().take(8) {
            if let Ok(sig) = NoteSignature::parse_line(line) {
                let again = sig.to_line();
                assert_eq!(NoteSignature::parse_line(again.trim_end_matches('\n')).as_ref(), Ok(&sig));
            }
            if let Ok(c) = Cosignature::parse_line(line) {
                let again = c.to_line();
                assert_eq!(Cosignature::parse_line(again.trim_end_matches('\n')).as_ref(), Ok(&c));
            }
        }
        if let Ok(k) = LogKey::parse(text) {
            assert_eq!(LogKey::parse(&k.to_vkey()).as_ref(), Ok(&k));
        }
        if let Ok(k) = WitnessKey::parse(text) {
            assert_eq!(WitnessKey::parse(&k.to_vkey()).as_ref(), Ok(&k));
        }
    }
);

//! Offline bundle verification (`vouch-verify`) on arbitrary bytes, as `vouch verify` runs it:
//! parse a bundle, then check signature, simulated `tee` evidence and the log inclusion proof
//! against the fixed node key, log key and witness, at a fixed time. A bundle that verifies was
//! signed by the trusted key, proves only tiers it claims, and verifies again after its own
//! wire form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_core::{Bundle, Tier};
use vouch_fuzz::{at, node_signer, sample_bundle, trust_policy, write_seeds_if_asked};
use vouch_verify::{Evidence, verify_bundle};

fn evidence() -> Evidence<'static> {
    Evidence {
        trusted_key: Some(node_signer().public_key()),
        allow_simulated: true,
        at_time: Some(at()),
        log_trust: Some(trust_policy()),
        ..Evidence::default()
    }
}

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let ev = evidence();
            let mut seeds = Vec::new();
            for (name, tiers) in [
                ("signed-tee", vec![Tier::Signed, Tier::Tee]),
                ("signed", vec![Tier::Signed]),
                ("tee", vec![Tier::Tee]),
            ] {
                let b = sample_bundle(tiers);
                verify_bundle(&b, &ev).expect("the sample bundle verifies");
                seeds.push((name.to_string(), serde_json::to_vec(&b).expect("json")));
            }
            let mut zk = sample_bundle(vec![Tier::Signed, Tier::Zk]);
            zk.evidence.insert(
                "zk_job".into(),
                serde_json::json!({"id": "019ab1c2-0000-7000-8000-00000000f023", "status": "queued"}),
            );
            zk.signature = Some(node_signer().sign_receipt(&zk.receipt));
            seeds.push(("zk-pending".into(), serde_json::to_vec(&zk).expect("json")));
            seeds
        });
    },
    |data: &[u8]| {
        let Ok(bundle) = serde_json::from_slice::<Bundle>(data) else {
            return;
        };
        let _ = verify_bundle(&bundle, &Evidence::default());
        let ev = evidence();
        let Ok(report) = verify_bundle(&bundle, &ev) else {
            return;
        };
        let r = &bundle.receipt;
        if bundle.signature.is_some() {
            assert_eq!(r.node_key, node_signer().public_key(), "only the pinned key verifies");
        }
        assert!(bundle.evidence.contains_key("log"), "log trust given: a proof was checked");
        for t in &report.tiers {
            assert!(r.tiers.contains(&t.tier), "a tier the receipt does not claim was reported");
        }
        for t in [Tier::Signed, Tier::Tee] {
            assert_eq!(
                r.tiers.contains(&t),
                report.tiers.iter().any(|x| x.tier == t),
                "claimed tier {t} neither proven nor refused"
            );
        }
        let again: Bundle =
            serde_json::from_slice(&serde_json::to_vec(&bundle).expect("serialises")).expect("parses");
        let report2 = verify_bundle(&again, &ev).expect("a verified bundle verifies after its wire form");
        assert_eq!(report2.tiers, report.tiers);
        assert_eq!(report2.summary, report.summary);
    }
);

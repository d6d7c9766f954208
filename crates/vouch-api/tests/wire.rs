//! The shapes whose serde is not plain structs: tagged and untagged enums, and `Amount`'s
//! check. Field-by-field agreement with the node is checked end to end (the CLI reads every
//! answer of the e2e tests into these types).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;
use vouch_api::{Amount, InclusionProof, JobStatus, ModelZk, NameChange, NameResult};

#[test]
fn amounts_hold_decimal_digits_only() {
    assert_eq!("1000".parse::<Amount>().unwrap().as_str(), "1000");
    let max = "9".repeat(78);
    assert!(max.parse::<Amount>().is_ok());
    for bad in ["", "1.5", "-1", "0x10", " 1", &"9".repeat(79)] {
        assert!(bad.parse::<Amount>().is_err(), "{bad:?}");
        assert!(
            serde_json::from_value::<Amount>(json!(bad)).is_err(),
            "{bad:?}"
        );
    }
    assert!(serde_json::from_value::<Amount>(json!(1000)).is_err());
}

#[test]
fn a_models_zk_tier_is_tagged_by_status() {
    assert_eq!(
        serde_json::to_value(ModelZk::Analysing).unwrap(),
        json!({"status": "analysing"})
    );
    let unavailable = json!({
        "status": "unavailable",
        "reason": "zk: unavailable: operator Softmax is not supported by the zk tier",
        "circuit_estimate": null,
    });
    let zk: ModelZk = serde_json::from_value(unavailable.clone()).unwrap();
    assert!(matches!(&zk, ModelZk::Unavailable { reason, .. } if reason.contains("Softmax")));
    assert_eq!(serde_json::to_value(&zk).unwrap(), unavailable);
    assert!(serde_json::from_value::<ModelZk>(json!({"status": "proven"})).is_err());
}

#[test]
fn an_inclusion_proof_is_hashes_or_bundle_evidence() {
    let hashes: InclusionProof =
        serde_json::from_value(json!({"index": 3, "size": 8, "hashes": ["AAAA"]})).unwrap();
    assert!(matches!(hashes, InclusionProof::Hashes { size: 8, .. }));
    let evidence: InclusionProof = serde_json::from_value(json!({
        "index": 3,
        "evidence": {"format": "vouch.log.v1", "index": 3},
    }))
    .unwrap();
    match evidence {
        InclusionProof::Evidence { evidence, .. } => {
            assert_eq!(evidence.index, 3);
            assert_eq!(evidence.proof, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn statuses_are_closed_sets() {
    for s in ["queued", "running", "done", "failed", "cancelled"] {
        let st: JobStatus = serde_json::from_value(json!(s)).unwrap();
        assert_eq!(st.as_str(), s);
        assert_eq!(
            st.is_terminal(),
            ["done", "failed", "cancelled"].contains(&s)
        );
    }
    assert!(serde_json::from_value::<JobStatus>(json!("Done")).is_err());
    let moved: NameResult = serde_json::from_value(json!({
        "name": "m", "version": "2", "change": "moved",
        "from": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    }))
    .unwrap();
    assert_eq!(moved.change, NameChange::Moved);
    assert!(moved.from.is_some());
}

//! x402 on the wire (`vouch-pay` `wire.rs`, `verify.rs`): the payment headers a node reads
//! (`PAYMENT-SIGNATURE` v2, `X-PAYMENT` v1) and checks with EIP-3009 verification, the
//! facilitator's request body, and what a paying client reads back (`PAYMENT-REQUIRED`, a v1
//! 402 body, `PAYMENT-RESPONSE`). Each decode survives its own encoding; a payment that
//! verifies pays exactly the requirement, from the address its signature recovers to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::write_seeds_if_asked;
use vouch_pay::verify::{parse_address, recover_signer};
use vouch_pay::wire::{
    ExactEvmPayload, FacilitatorRequest, PaymentPayload, PaymentRequired, PaymentRequirements,
    PaymentRequirementsV1, SettleResponse, decode_header, encode_header,
};
use vouch_pay::{parse_amount, verify_exact};

/// The example headers of coinbase/x402 `specs/transports-v2/http.md` and `-v1/http.md`: real
/// signatures by 0x857b…6b66 over Base Sepolia USDC, valid at [`SPEC_NOW`].
const SPEC_V2_HEADER: &str = "eyJ4NDAyVmVyc2lvbiI6MiwicmVzb3VyY2UiOnsidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwiZGVzY3JpcHRpb24iOiJBY2Nlc3MgdG8gcHJlbWl1bSBtYXJrZXQgZGF0YSIsIm1pbWVUeXBlIjoiYXBwbGljYXRpb24vanNvbiJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJhbW91bnQiOiIxMDAwMCIsImFzc2V0IjoiMHgwMzZDYkQ1Mzg0MmM1NDI2NjM0ZTc5Mjk1NDFlQzIzMThmM2RDRjdlIiwicGF5VG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJtYXhUaW1lb3V0U2Vjb25kcyI6NjAsImV4dHJhIjp7Im5hbWUiOiJVU0RDIiwidmVyc2lvbiI6IjIifX0sInBheWxvYWQiOnsic2lnbmF0dXJlIjoiMHgyZDZhNzU4OGQ2YWNjYTUwNWNiZjBkOWE0YTIyN2UwYzUyYzZjMzQwMDhjOGU4OTg2YTEyODMyNTk3NjQxNzM2MDhhMmNlNjQ5NjY0MmUzNzdkNmRhOGRiYmY1ODM2ZTliZDE1MDkyZjllY2FiMDVkZWQzZDYyOTNhZjE0OGI1NzFjIiwiYXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJ2YWx1ZSI6IjEwMDAwIiwidmFsaWRBZnRlciI6IjE3NDA2NzIwODkiLCJ2YWxpZEJlZm9yZSI6IjE3NDA2NzIxNTQiLCJub25jZSI6IjB4ZjM3NDY2MTNjMmQ5MjBiNWZkYWJjMDg1NmYyYWViMmQ0Zjg4ZWU2MDM3YjhjYzVkMDRhNzFhNDQ2MmYxMzQ4MCJ9fX0=";
const SPEC_V1_HEADER: &str = "eyJ4NDAyVmVyc2lvbiI6MSwic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiYmFzZS1zZXBvbGlhIiwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweDJkNmE3NTg4ZDZhY2NhNTA1Y2JmMGQ5YTRhMjI3ZTBjNTJjNmMzNDAwOGM4ZTg5ODZhMTI4MzI1OTc2NDE3MzYwOGEyY2U2NDk2NjQyZTM3N2Q2ZGE4ZGJiZjU4MzZlOWJkMTUwOTJmOWVjYWIwNWRlZDNkNjI5M2FmMTQ4YjU3MWMiLCJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweDg1N2IwNjUxOUU5MWUzQTU0NTM4NzkxYkRiYjBFMjIzNzNlMzZiNjYiLCJ0byI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsInZhbHVlIjoiMTAwMDAiLCJ2YWxpZEFmdGVyIjoiMTc0MDY3MjA4OSIsInZhbGlkQmVmb3JlIjoiMTc0MDY3MjE1NCIsIm5vbmNlIjoiMHhmMzc0NjYxM2MyZDkyMGI1ZmRhYmMwODU2ZjJhZWIyZDRmODhlZTYwMzdiOGNjNWQwNGE3MWE0NDYyZjEzNDgwIn19fQ==";
const SPEC_NOW: u64 = 1_740_672_100;

/// What a node asks v1 payers for: the requirement the spec's v1 example pays.
fn v1_requirements() -> PaymentRequirements {
    PaymentRequirements::V1(PaymentRequirementsV1 {
        scheme: "exact".into(),
        network: "base-sepolia".into(),
        max_amount_required: "10000".into(),
        resource: "https://api.example.com/premium-data".into(),
        description: String::new(),
        mime_type: "application/json".into(),
        output_schema: None,
        pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
        max_timeout_seconds: 60,
        asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
        extra: Some(serde_json::json!({"name": "USDC", "version": "2"})),
    })
}

/// The requirement a payment is checked against: the one it says it accepted (v2), else the v1 one.
fn requirements_for(p: &PaymentPayload) -> PaymentRequirements {
    match p {
        PaymentPayload::V2(v2) => PaymentRequirements::V2(v2.accepted.clone()),
        PaymentPayload::V1(_) => v1_requirements(),
    }
}

fn check_payment(p: &PaymentPayload) {
    assert_eq!(
        PaymentPayload::decode_header(&p.encode_header()).as_ref(),
        Ok(p)
    );
    let req = requirements_for(p);
    assert_eq!(
        FacilitatorRequest::new(p, &req).parts(),
        Ok((p.clone(), req.clone())),
        "the facilitator reads what the node sends"
    );
    if let Ok(v) = verify_exact(p, &req, Some(SPEC_NOW)) {
        let evm: ExactEvmPayload =
            serde_json::from_value(p.inner().clone()).expect("verified payload");
        assert_eq!(Some(v.payer), parse_address(&evm.authorization.from));
        assert_eq!(recover_signer(&evm.signature, &v.digest), Ok(v.payer));
        assert_eq!(Ok(v.amount), parse_amount(req.amount()));
        assert_eq!(Some(v.pay_to), parse_address(req.pay_to()));
        assert_eq!(v.version, p.version());
        assert!(v.valid_after <= SPEC_NOW && SPEC_NOW < v.valid_before);
        assert_eq!(
            verify_exact(p, &req, None),
            Ok(v),
            "the time window is the only time check"
        );
    }
}

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            let (signer, _) = vouch_pay::payer::generate_key();
            let mut seeds = vec![
                ("spec-v2-header".to_string(), SPEC_V2_HEADER.as_bytes().to_vec()),
                ("spec-v1-header".to_string(), SPEC_V1_HEADER.as_bytes().to_vec()),
            ];
            let PaymentPayload::V2(spec) = PaymentPayload::decode_header(SPEC_V2_HEADER).expect("spec header") else {
                unreachable!("the v2 example is v2")
            };
            let required = PaymentRequired::V2(vouch_pay::wire::PaymentRequiredV2 {
                x402_version: 2,
                error: Some("payment_required".into()),
                resource: spec.resource.clone(),
                accepts: vec![spec.accepted.clone()],
                extensions: None,
            });
            let PaymentRequired::V2(r2) = &required else { unreachable!() };
            seeds.push(("payment-required-v2".into(), encode_header(r2).into_bytes()));
            for (name, req) in [("v2", PaymentRequirements::V2(spec.accepted.clone())), ("v1", v1_requirements())] {
                let p = vouch_pay::payer::sign_payment(&signer, &required, &req, SPEC_NOW).expect("signs");
                verify_exact(&p, &req, Some(SPEC_NOW)).expect("own payment verifies");
                seeds.push((format!("signed-{name}-header"), p.encode_header().into_bytes()));
                seeds.push((
                    format!("facilitator-{name}.json"),
                    serde_json::to_vec(&FacilitatorRequest::new(&p, &req)).expect("json"),
                ));
            }
            let v1_body = serde_json::json!({"x402Version": 1, "error": "X-PAYMENT header is required", "accepts": [v1_requirements().to_json()]});
            seeds.push(("payment-required-v1.json".into(), serde_json::to_vec(&v1_body).expect("json")));
            let settle = SettleResponse {
                success: true,
                error_reason: None,
                error_message: None,
                payer: Some("0x857b06519E91e3A54538791bDbb0E22373e36b66".into()),
                transaction: "ledger:1".into(),
                network: "eip155:84532".into(),
                amount: Some("10000".into()),
            };
            seeds.push(("settle-response".into(), encode_header(&settle).into_bytes()));
            seeds
        });
    },
    |data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(p) = PaymentPayload::decode_header(text) {
                check_payment(&p);
            }
            if let Ok(PaymentRequired::V2(r)) = PaymentRequired::from_response(Some(text), b"") {
                assert_eq!(decode_header(&encode_header(&r)).as_ref(), Ok(&r));
            }
            if let Ok(s) = decode_header::<SettleResponse>(text) {
                assert_eq!(decode_header(&encode_header(&s)).as_ref(), Ok(&s));
            }
        }
        if let Ok(req) = serde_json::from_slice::<FacilitatorRequest>(data)
            && let Ok((p, r)) = req.parts()
        {
            assert_eq!(FacilitatorRequest::new(&p, &r).parts(), Ok((p.clone(), r)));
            assert_eq!(PaymentPayload::decode_header(&p.encode_header()), Ok(p));
        }
        match PaymentRequired::from_response(None, data) {
            Ok(PaymentRequired::V1(r)) => {
                let again = PaymentRequired::from_response(None, &serde_json::to_vec(&r).expect("json"));
                assert_eq!(again, Ok(PaymentRequired::V1(r)));
            }
            Ok(PaymentRequired::V2(r)) => {
                let again = PaymentRequired::from_response(None, &serde_json::to_vec(&r).expect("json"));
                assert_eq!(again, Ok(PaymentRequired::V2(r)));
            }
            Err(_) => {}
        }
    }
);

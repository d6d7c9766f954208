//! x402 wire types, v1 and v2, and the header codec (standard base64 of compact JSON).
//!
//! Field names follow the specification (coinbase/x402 `specs/x402-specification-v2.md`,
//! `specs/transports-v2/http.md`, `specs/transports-v1/http.md`). Absent optional fields are
//! omitted, never `null`: the legacy JS client rejects `outputSchema: null`. Unknown fields are
//! tolerated on input (clients add `extensions`), and numeric authorization fields are accepted as
//! strings or numbers, but the values themselves are checked strictly by [`crate::verify`].

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Header a v2 server answers a 402 with.
pub const PAYMENT_REQUIRED_HEADER: &str = "PAYMENT-REQUIRED";
/// Header a v2 client pays with.
pub const PAYMENT_SIGNATURE_HEADER: &str = "PAYMENT-SIGNATURE";
/// Header a v2 server reports settlement in.
pub const PAYMENT_RESPONSE_HEADER: &str = "PAYMENT-RESPONSE";
/// Header a v1 client pays with.
pub const X_PAYMENT_HEADER: &str = "X-PAYMENT";
/// Header a v1 server reports settlement in.
pub const X_PAYMENT_RESPONSE_HEADER: &str = "X-PAYMENT-RESPONSE";
/// Pay exactly the stated amount (EIP-3009 `transferWithAuthorization`).
pub const SCHEME_EXACT: &str = "exact";
/// Authorise a maximum, settle what was used (Permit2 `permitWitnessTransferFrom`; v2 only).
pub const SCHEME_UPTO: &str = "upto";
/// A payment header larger than this is refused before decoding (a real one is ~1.3 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What is being paid for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// One way to pay (v2). A client echoes the one it chose, verbatim, as `accepted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV2 {
    pub scheme: String,
    pub network: String,
    pub asset: String,
    /// Smallest units, decimal string.
    pub amount: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// The 402 answer (v2), sent base64-encoded in `PAYMENT-REQUIRED`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV2 {
    pub x402_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    pub accepts: Vec<PaymentRequirementsV2>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

/// The payment (v2), sent base64-encoded in `PAYMENT-SIGNATURE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV2 {
    pub x402_version: u32,
    /// Scheme-specific; for `exact` on EVM an [`ExactEvmPayload`]. Kept raw so an unknown scheme
    /// is reported as `unsupported_scheme`, not as a parse error.
    pub payload: Value,
    pub accepted: PaymentRequirementsV2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

/// One way to pay (v1, legacy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV1 {
    pub scheme: String,
    pub network: String,
    pub max_amount_required: String,
    pub resource: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub asset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// The 402 answer (v1), sent as the JSON response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1 {
    pub x402_version: u32,
    #[serde(default)]
    pub error: String,
    pub accepts: Vec<PaymentRequirementsV1>,
}

/// The payment (v1), sent base64-encoded in `X-PAYMENT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV1 {
    pub x402_version: u32,
    pub scheme: String,
    pub network: String,
    pub payload: Value,
}

/// The `exact` EVM payload: an EIP-3009 authorization and its 65-byte signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEvmPayload {
    pub signature: String,
    pub authorization: AuthorizationWire,
}

/// The `upto` EVM payload: a Permit2 `PermitWitnessTransferFrom` and its 65-byte signature
/// (coinbase/x402 `specs/schemes/upto/scheme_upto_evm.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UptoEvmPayload {
    pub signature: String,
    pub permit2_authorization: Permit2AuthorizationWire,
}

/// Permit2 authorization fields as sent (strings; parsed by [`crate::upto`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permit2AuthorizationWire {
    pub from: String,
    pub permitted: Permit2TokenWire,
    pub spender: String,
    /// A uint256: decimal (what the official clients send) or `0x` hex.
    #[serde(deserialize_with = "string_or_number")]
    pub nonce: String,
    #[serde(deserialize_with = "string_or_number")]
    pub deadline: String,
    pub witness: UptoWitnessWire,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permit2TokenWire {
    pub token: String,
    /// The maximum the payer authorises.
    #[serde(deserialize_with = "string_or_number")]
    pub amount: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UptoWitnessWire {
    pub to: String,
    pub facilitator: String,
    #[serde(deserialize_with = "string_or_number")]
    pub valid_after: String,
}

/// EIP-3009 `TransferWithAuthorization` fields as sent (strings; parsed by [`crate::verify`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationWire {
    pub from: String,
    pub to: String,
    #[serde(deserialize_with = "string_or_number")]
    pub value: String,
    #[serde(deserialize_with = "string_or_number")]
    pub valid_after: String,
    #[serde(deserialize_with = "string_or_number")]
    pub valid_before: String,
    pub nonce: String,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a decimal string, got {other}"
        ))),
    }
}

/// Facilitator `/settle` answer, and (base64) the `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE` header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(default)]
    pub transaction: String,
    #[serde(default)]
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

/// Facilitator `/verify` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub is_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// One `(version, scheme, network)` a facilitator handles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    pub x402_version: u32,
    pub scheme: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// Facilitator `/supported` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedResponse {
    pub kinds: Vec<SupportedKind>,
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub signers: BTreeMap<String, Vec<String>>,
}

/// Facilitator `/verify` and `/settle` request body. Payload and requirements stay raw JSON
/// here: their shape depends on `x402Version` — see [`FacilitatorRequest::parts`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FacilitatorRequest {
    pub x402_version: u32,
    pub payment_payload: Value,
    pub payment_requirements: Value,
}

/// A payment of either version.
// One per request, moved rarely: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentPayload {
    V1(PaymentPayloadV1),
    V2(PaymentPayloadV2),
}

/// Requirements of either version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentRequirements {
    V1(PaymentRequirementsV1),
    V2(PaymentRequirementsV2),
}

/// A 402 answer of either version (client side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentRequired {
    V1(PaymentRequiredV1),
    V2(PaymentRequiredV2),
}

/// Why a header or body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("payment header is larger than {MAX_HEADER_BYTES} bytes")]
    TooLarge,
    #[error("payment header is not standard base64")]
    Base64,
    #[error("payment header is not JSON: {0}")]
    Json(String),
    #[error("unsupported x402Version {0:?}: expected 1 or 2")]
    Version(Option<u64>),
}

/// Standard base64 (with padding) of compact JSON: the header encoding of every x402 header.
pub fn encode_header<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no floats.
    let json = serde_json::to_vec(value).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// Decodes a base64-JSON header into `T`; padding is optional, surrounding whitespace ignored.
pub fn decode_header<T: DeserializeOwned>(header: &str) -> Result<T, DecodeError> {
    let value = decode_header_json(header)?;
    serde_json::from_value(value).map_err(|e| DecodeError::Json(e.to_string()))
}

fn decode_header_json(header: &str) -> Result<Value, DecodeError> {
    let header = header.trim();
    if header.len() > MAX_HEADER_BYTES {
        return Err(DecodeError::TooLarge);
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(header).map_err(|_| DecodeError::Base64)?;
    serde_json::from_slice(&bytes).map_err(|e| DecodeError::Json(e.to_string()))
}

fn version_of(v: &Value) -> Result<u32, DecodeError> {
    match v.get("x402Version").map(Value::as_u64) {
        Some(Some(1)) => Ok(1),
        Some(Some(2)) => Ok(2),
        Some(other) => Err(DecodeError::Version(other)),
        None => Err(DecodeError::Version(None)),
    }
}

impl PaymentPayload {
    /// Decodes a `PAYMENT-SIGNATURE` or `X-PAYMENT` header; the version comes from the content.
    pub fn decode_header(header: &str) -> Result<Self, DecodeError> {
        Self::from_json(decode_header_json(header)?)
    }

    pub fn from_json(value: Value) -> Result<Self, DecodeError> {
        let de = |e: serde_json::Error| DecodeError::Json(e.to_string());
        match version_of(&value)? {
            1 => serde_json::from_value(value)
                .map(PaymentPayload::V1)
                .map_err(de),
            _ => serde_json::from_value(value)
                .map(PaymentPayload::V2)
                .map_err(de),
        }
    }

    pub fn encode_header(&self) -> String {
        match self {
            PaymentPayload::V1(p) => encode_header(p),
            PaymentPayload::V2(p) => encode_header(p),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            PaymentPayload::V1(p) => serde_json::to_value(p),
            PaymentPayload::V2(p) => serde_json::to_value(p),
        }
        .unwrap_or(Value::Null)
    }

    pub fn version(&self) -> u32 {
        match self {
            PaymentPayload::V1(_) => 1,
            PaymentPayload::V2(_) => 2,
        }
    }

    /// The request header this payment travels in.
    pub fn header_name(&self) -> &'static str {
        match self {
            PaymentPayload::V1(_) => X_PAYMENT_HEADER,
            PaymentPayload::V2(_) => PAYMENT_SIGNATURE_HEADER,
        }
    }

    /// The response header its settlement is reported in.
    pub fn response_header_name(&self) -> &'static str {
        match self {
            PaymentPayload::V1(_) => X_PAYMENT_RESPONSE_HEADER,
            PaymentPayload::V2(_) => PAYMENT_RESPONSE_HEADER,
        }
    }

    /// The scheme the payer chose.
    pub fn scheme(&self) -> &str {
        match self {
            PaymentPayload::V1(p) => &p.scheme,
            PaymentPayload::V2(p) => &p.accepted.scheme,
        }
    }

    /// The network the payer chose.
    pub fn network(&self) -> &str {
        match self {
            PaymentPayload::V1(p) => &p.network,
            PaymentPayload::V2(p) => &p.accepted.network,
        }
    }

    /// The scheme-specific payload.
    pub fn inner(&self) -> &Value {
        match self {
            PaymentPayload::V1(p) => &p.payload,
            PaymentPayload::V2(p) => &p.payload,
        }
    }
}

impl PaymentRequirements {
    pub fn from_json(version: u32, value: Value) -> Result<Self, DecodeError> {
        let de = |e: serde_json::Error| DecodeError::Json(e.to_string());
        match version {
            1 => serde_json::from_value(value)
                .map(PaymentRequirements::V1)
                .map_err(de),
            2 => serde_json::from_value(value)
                .map(PaymentRequirements::V2)
                .map_err(de),
            v => Err(DecodeError::Version(Some(u64::from(v)))),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            PaymentRequirements::V1(r) => serde_json::to_value(r),
            PaymentRequirements::V2(r) => serde_json::to_value(r),
        }
        .unwrap_or(Value::Null)
    }

    pub fn version(&self) -> u32 {
        match self {
            PaymentRequirements::V1(_) => 1,
            PaymentRequirements::V2(_) => 2,
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            PaymentRequirements::V1(r) => &r.scheme,
            PaymentRequirements::V2(r) => &r.scheme,
        }
    }

    pub fn network(&self) -> &str {
        match self {
            PaymentRequirements::V1(r) => &r.network,
            PaymentRequirements::V2(r) => &r.network,
        }
    }

    pub fn asset(&self) -> &str {
        match self {
            PaymentRequirements::V1(r) => &r.asset,
            PaymentRequirements::V2(r) => &r.asset,
        }
    }

    pub fn pay_to(&self) -> &str {
        match self {
            PaymentRequirements::V1(r) => &r.pay_to,
            PaymentRequirements::V2(r) => &r.pay_to,
        }
    }

    /// The same requirements asking for `amount`: an `upto` settlement names the amount used
    /// this way (the x402 `/settle` call carries it in `amount`).
    pub fn with_amount(&self, amount: &str) -> Self {
        match self {
            PaymentRequirements::V1(r) => PaymentRequirements::V1(PaymentRequirementsV1 {
                max_amount_required: amount.to_owned(),
                ..r.clone()
            }),
            PaymentRequirements::V2(r) => PaymentRequirements::V2(PaymentRequirementsV2 {
                amount: amount.to_owned(),
                ..r.clone()
            }),
        }
    }

    /// The amount to pay (`amount` in v2, `maxAmountRequired` in v1): exact, or for `upto` the
    /// maximum when offered and the amount used when settled.
    pub fn amount(&self) -> &str {
        match self {
            PaymentRequirements::V1(r) => &r.max_amount_required,
            PaymentRequirements::V2(r) => &r.amount,
        }
    }

    pub fn max_timeout_seconds(&self) -> u64 {
        match self {
            PaymentRequirements::V1(r) => r.max_timeout_seconds,
            PaymentRequirements::V2(r) => r.max_timeout_seconds,
        }
    }

    /// A string field of `extra` (v1 clients may send `extra` as a JSON-encoded string).
    pub fn extra_str(&self, key: &str) -> Option<String> {
        let get = |m: &Map<String, Value>| m.get(key).and_then(Value::as_str).map(str::to_owned);
        match self {
            PaymentRequirements::V2(r) => get(&r.extra),
            PaymentRequirements::V1(r) => match &r.extra {
                Some(Value::Object(m)) => get(m),
                Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Object(m)) => get(&m),
                    _ => None,
                },
                _ => None,
            },
        }
    }
}

impl FacilitatorRequest {
    pub fn new(payment: &PaymentPayload, requirements: &PaymentRequirements) -> Self {
        FacilitatorRequest {
            x402_version: payment.version(),
            payment_payload: payment.to_json(),
            payment_requirements: requirements.to_json(),
        }
    }

    /// Typed payload and requirements, both read at the request's `x402Version`.
    pub fn parts(&self) -> Result<(PaymentPayload, PaymentRequirements), DecodeError> {
        let payload = PaymentPayload::from_json(self.payment_payload.clone())?;
        if payload.version() != self.x402_version {
            return Err(DecodeError::Version(Some(u64::from(payload.version()))));
        }
        let requirements =
            PaymentRequirements::from_json(self.x402_version, self.payment_requirements.clone())?;
        Ok((payload, requirements))
    }
}

impl PaymentRequired {
    /// Reads a 402 answer as a client: the v2 header if present, else a v1 JSON body.
    pub fn from_response(
        payment_required_header: Option<&str>,
        body: &[u8],
    ) -> Result<Self, DecodeError> {
        if let Some(h) = payment_required_header {
            return decode_header(h).map(PaymentRequired::V2);
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
        match version_of(&value)? {
            1 => serde_json::from_value(value).map(PaymentRequired::V1),
            _ => serde_json::from_value(value).map(PaymentRequired::V2),
        }
        .map_err(|e| DecodeError::Json(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // The example PAYMENT-SIGNATURE header from coinbase/x402 `specs/transports-v2/http.md`.
    const SPEC_V2_HEADER: &str = "eyJ4NDAyVmVyc2lvbiI6MiwicmVzb3VyY2UiOnsidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwiZGVzY3JpcHRpb24iOiJBY2Nlc3MgdG8gcHJlbWl1bSBtYXJrZXQgZGF0YSIsIm1pbWVUeXBlIjoiYXBwbGljYXRpb24vanNvbiJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJhbW91bnQiOiIxMDAwMCIsImFzc2V0IjoiMHgwMzZDYkQ1Mzg0MmM1NDI2NjM0ZTc5Mjk1NDFlQzIzMThmM2RDRjdlIiwicGF5VG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJtYXhUaW1lb3V0U2Vjb25kcyI6NjAsImV4dHJhIjp7Im5hbWUiOiJVU0RDIiwidmVyc2lvbiI6IjIifX0sInBheWxvYWQiOnsic2lnbmF0dXJlIjoiMHgyZDZhNzU4OGQ2YWNjYTUwNWNiZjBkOWE0YTIyN2UwYzUyYzZjMzQwMDhjOGU4OTg2YTEyODMyNTk3NjQxNzM2MDhhMmNlNjQ5NjY0MmUzNzdkNmRhOGRiYmY1ODM2ZTliZDE1MDkyZjllY2FiMDVkZWQzZDYyOTNhZjE0OGI1NzFjIiwiYXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJ2YWx1ZSI6IjEwMDAwIiwidmFsaWRBZnRlciI6IjE3NDA2NzIwODkiLCJ2YWxpZEJlZm9yZSI6IjE3NDA2NzIxNTQiLCJub25jZSI6IjB4ZjM3NDY2MTNjMmQ5MjBiNWZkYWJjMDg1NmYyYWViMmQ0Zjg4ZWU2MDM3YjhjYzVkMDRhNzFhNDQ2MmYxMzQ4MCJ9fX0=";
    // The example X-PAYMENT header from coinbase/x402 `specs/transports-v1/http.md`.
    const SPEC_V1_HEADER: &str = "eyJ4NDAyVmVyc2lvbiI6MSwic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiYmFzZS1zZXBvbGlhIiwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweDJkNmE3NTg4ZDZhY2NhNTA1Y2JmMGQ5YTRhMjI3ZTBjNTJjNmMzNDAwOGM4ZTg5ODZhMTI4MzI1OTc2NDE3MzYwOGEyY2U2NDk2NjQyZTM3N2Q2ZGE4ZGJiZjU4MzZlOWJkMTUwOTJmOWVjYWIwNWRlZDNkNjI5M2FmMTQ4YjU3MWMiLCJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweDg1N2IwNjUxOUU5MWUzQTU0NTM4NzkxYkRiYjBFMjIzNzNlMzZiNjYiLCJ0byI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsInZhbHVlIjoiMTAwMDAiLCJ2YWxpZEFmdGVyIjoiMTc0MDY3MjA4OSIsInZhbGlkQmVmb3JlIjoiMTc0MDY3MjE1NCIsIm5vbmNlIjoiMHhmMzc0NjYxM2MyZDkyMGI1ZmRhYmMwODU2ZjJhZWIyZDRmODhlZTYwMzdiOGNjNWQwNGE3MWE0NDYyZjEzNDgwIn19fQ==";

    pub(crate) fn spec_v2_header() -> &'static str {
        SPEC_V2_HEADER
    }

    #[test]
    fn spec_v2_header_decodes_and_round_trips() {
        let p = PaymentPayload::decode_header(SPEC_V2_HEADER).unwrap();
        let PaymentPayload::V2(v2) = &p else {
            panic!("expected v2")
        };
        assert_eq!(v2.accepted.network, "eip155:84532");
        assert_eq!(v2.accepted.amount, "10000");
        assert_eq!(v2.accepted.extra.get("name"), Some(&Value::from("USDC")));
        let auth: ExactEvmPayload = serde_json::from_value(v2.payload.clone()).unwrap();
        assert_eq!(auth.authorization.valid_before, "1740672154");
        // Re-encoding yields the same JSON value (field order aside).
        let again = PaymentPayload::decode_header(&p.encode_header()).unwrap();
        assert_eq!(again, p);
        assert_eq!(p.response_header_name(), "PAYMENT-RESPONSE");
    }

    #[test]
    fn spec_v1_header_decodes() {
        let p = PaymentPayload::decode_header(SPEC_V1_HEADER).unwrap();
        let PaymentPayload::V1(v1) = &p else {
            panic!("expected v1")
        };
        assert_eq!(v1.network, "base-sepolia");
        assert_eq!(p.scheme(), "exact");
        assert_eq!(p.response_header_name(), "X-PAYMENT-RESPONSE");
    }

    #[test]
    fn malformed_headers_are_clear_errors() {
        assert_eq!(
            PaymentPayload::decode_header("%%%not base64"),
            Err(DecodeError::Base64)
        );
        let not_json = base64::engine::general_purpose::STANDARD.encode(b"{oops");
        assert!(matches!(
            PaymentPayload::decode_header(&not_json),
            Err(DecodeError::Json(_))
        ));
        let no_version = base64::engine::general_purpose::STANDARD.encode(br#"{"payload":{}}"#);
        assert_eq!(
            PaymentPayload::decode_header(&no_version),
            Err(DecodeError::Version(None))
        );
        let v3 = base64::engine::general_purpose::STANDARD.encode(br#"{"x402Version":3}"#);
        assert_eq!(
            PaymentPayload::decode_header(&v3),
            Err(DecodeError::Version(Some(3)))
        );
        let missing_accepted =
            base64::engine::general_purpose::STANDARD.encode(br#"{"x402Version":2,"payload":{}}"#);
        assert!(matches!(
            PaymentPayload::decode_header(&missing_accepted),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            PaymentPayload::decode_header(&"A".repeat(MAX_HEADER_BYTES + 4)),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let unpadded = SPEC_V2_HEADER.trim_end_matches('=');
        assert!(PaymentPayload::decode_header(unpadded).is_ok());
    }

    #[test]
    fn optional_fields_are_omitted_not_null() {
        let r = PaymentRequirementsV1 {
            scheme: "exact".into(),
            network: "base-sepolia".into(),
            max_amount_required: "1".into(),
            resource: "http://x/".into(),
            description: String::new(),
            mime_type: "application/json".into(),
            output_schema: None,
            pay_to: "0x0".into(),
            max_timeout_seconds: 60,
            asset: "0x0".into(),
            extra: None,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(!s.contains("null"), "{s}");
        assert!(!s.contains("outputSchema"), "{s}");
        assert!(s.contains("\"maxAmountRequired\":\"1\""), "{s}");
        let resp = SettleResponse {
            success: true,
            error_reason: None,
            error_message: None,
            payer: None,
            transaction: "t".into(),
            network: "eip155:1".into(),
            amount: None,
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"success":true,"transaction":"t","network":"eip155:1"}"#
        );
    }

    #[test]
    fn authorization_numbers_may_be_json_numbers() {
        let a: AuthorizationWire = serde_json::from_str(
            r#"{"from":"0x1","to":"0x2","value":10,"validAfter":"0","validBefore":99,"nonce":"0x3"}"#,
        )
        .unwrap();
        assert_eq!(a.value, "10");
        assert_eq!(a.valid_before, "99");
        assert!(serde_json::from_str::<AuthorizationWire>(
            r#"{"from":"0x1","to":"0x2","value":-1,"validAfter":"0","validBefore":99,"nonce":"0x3"}"#
        )
        .is_err());
    }
}

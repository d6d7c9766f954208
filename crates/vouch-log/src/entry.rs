//! Log entries and their one canonical byte form, which is what the Merkle leaf hashes.
//!
//! An entry is a header line naming its kind, then the RFC 8785 (JCS) JSON of its payload:
//!
//! ```text
//! vouch-log/v1 receipt\n{"engine":{...},...}
//! ```
//!
//! The header domain-separates kinds (a receipt can never be read as a pointer change) and keeps
//! tile entry bundles readable with `strings`. For a receipt the payload is exactly
//! `Receipt::canonical_bytes()`, so anyone holding a receipt recomputes its leaf. Decoding is
//! strict: unknown kinds, unknown fields, non-canonical JSON or a trailing newline are errors,
//! so every entry has exactly one encoding. Byte layouts and test vectors: `docs/log.md`.

use serde::{Deserialize, Serialize};
use vouch_core::{ChatReceipt, Digest, ModelDigest, Receipt};

use crate::merkle::{Hash, leaf_hash};

/// Entries travel in tlog-tiles entry bundles with a 16-bit length prefix.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// The lookup key of a receipt entry: `request:` and the request id. A colon is outside the
/// model-name alphabet, so it never collides with a name's history key.
pub fn request_key(request_id: &str) -> String {
    format!("request:{request_id}")
}

const MAGIC: &str = "vouch-log/v1 ";

/// The kinds of entry, with their header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// An inference receipt.
    Receipt,
    /// A chat completion's receipt (`kind: "chat"`, `docs/receipt.md`).
    ChatReceipt,
    /// A model's bytes entered the registry.
    ModelRegistered,
    /// A `name` or `name@version` pointer moved to another model (or was created/removed).
    PointerMoved,
    /// A model's serving policy (minimum tiers, price, limits) changed.
    PolicyChanged,
    /// A model's system prompt or generation configuration changed.
    ConfigChanged,
}

impl EntryKind {
    pub const ALL: [EntryKind; 6] = [
        EntryKind::Receipt,
        EntryKind::ChatReceipt,
        EntryKind::ModelRegistered,
        EntryKind::PointerMoved,
        EntryKind::PolicyChanged,
        EntryKind::ConfigChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Receipt => "receipt",
            EntryKind::ChatReceipt => "chat-receipt",
            EntryKind::ModelRegistered => "model-registered",
            EntryKind::PointerMoved => "pointer-moved",
            EntryKind::PolicyChanged => "policy-changed",
            EntryKind::ConfigChanged => "config-changed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model's bytes were registered: from now on its digest may be served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRegistered {
    pub model: ModelDigest,
    /// Size of the stored model file in bytes.
    pub size: u64,
    /// Container format, e.g. `onnx`.
    pub format: String,
    /// RFC 3339 UTC with milliseconds, like receipts' `issued_at`.
    pub at: String,
}

/// A mutable name moved. `version: None` is the name's default ("latest") pointer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointerMoved {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the pointer pointed before; absent when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ModelDigest>,
    /// Where it points now; absent when it was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ModelDigest>,
    pub at: String,
}

/// A model's policy changed. The policy object is the server's (tiers, price, limits); the log
/// only fixes its canonical form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChanged {
    pub model: ModelDigest,
    pub policy: serde_json::Value,
    pub at: String,
}

/// A model's system prompt / generation configuration changed. Receipts carry `config_digest`;
/// this entry is where that digest is bound to a model and a time. The configuration itself is
/// included when the operator publishes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigChanged {
    pub model: ModelDigest,
    pub config_digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    pub at: String,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq)]
pub enum LogEntry {
    Receipt(Box<Receipt>),
    ChatReceipt(Box<ChatReceipt>),
    ModelRegistered(ModelRegistered),
    PointerMoved(PointerMoved),
    PolicyChanged(PolicyChanged),
    ConfigChanged(ConfigChanged),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("log entry does not start with \"vouch-log/v1 <kind>\\n\"")]
    BadHeader,
    #[error("unknown log entry kind {0:?}")]
    UnknownKind(String),
    #[error("log entry of kind {kind} has an invalid payload: {reason}")]
    BadPayload { kind: EntryKind, reason: String },
    #[error("log entry of kind {kind} is valid JSON but not in canonical (RFC 8785) form")]
    NotCanonical { kind: EntryKind },
    #[error("log entry is {len} bytes; entries are at most {MAX_ENTRY_BYTES} bytes")]
    TooLarge { len: usize },
    #[error(
        "invalid time {0:?}: expected RFC 3339 UTC with milliseconds, e.g. 2026-11-25T12:00:00.000Z"
    )]
    BadTime(String),
    #[error("invalid name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
}

impl LogEntry {
    pub fn kind(&self) -> EntryKind {
        match self {
            LogEntry::Receipt(_) => EntryKind::Receipt,
            LogEntry::ChatReceipt(_) => EntryKind::ChatReceipt,
            LogEntry::ModelRegistered(_) => EntryKind::ModelRegistered,
            LogEntry::PointerMoved(_) => EntryKind::PointerMoved,
            LogEntry::PolicyChanged(_) => EntryKind::PolicyChanged,
            LogEntry::ConfigChanged(_) => EntryKind::ConfigChanged,
        }
    }

    /// The model name this entry is about, for `vouch log history NAME` lookups.
    pub fn name(&self) -> Option<&str> {
        match self {
            LogEntry::PointerMoved(p) => Some(&p.name),
            _ => None,
        }
    }

    /// The key the store indexes this entry under: a pointer entry's model name (history),
    /// a receipt's [`request_key`] (lookup by request id).
    pub fn lookup_key(&self) -> Option<String> {
        match self {
            LogEntry::PointerMoved(p) => Some(p.name.clone()),
            LogEntry::Receipt(r) => Some(request_key(&r.request_id)),
            LogEntry::ChatReceipt(r) => Some(request_key(&r.request_id)),
            _ => None,
        }
    }

    /// The time the entry states (`issued_at` for receipts).
    pub fn time(&self) -> &str {
        match self {
            LogEntry::Receipt(r) => &r.issued_at,
            LogEntry::ChatReceipt(r) => &r.issued_at,
            LogEntry::ModelRegistered(e) => &e.at,
            LogEntry::PointerMoved(e) => &e.at,
            LogEntry::PolicyChanged(e) => &e.at,
            LogEntry::ConfigChanged(e) => &e.at,
        }
    }

    /// The canonical bytes: header line, then the JCS payload. Checks the fields a log must not
    /// accept in any form (times, names, size) so a bad entry is refused before it is appended.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        let kind = self.kind();
        let payload = match self {
            LogEntry::Receipt(r) => Ok(r.canonical_bytes()),
            LogEntry::ChatReceipt(r) => Ok(r.canonical_bytes()),
            LogEntry::ModelRegistered(e) => serde_jcs::to_vec(e),
            LogEntry::PointerMoved(e) => serde_jcs::to_vec(e),
            LogEntry::PolicyChanged(e) => serde_jcs::to_vec(e),
            LogEntry::ConfigChanged(e) => serde_jcs::to_vec(e),
        }
        .map_err(|e| EntryError::BadPayload {
            kind,
            reason: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(MAGIC.len() + 20 + payload.len());
        out.extend_from_slice(MAGIC.as_bytes());
        out.extend_from_slice(kind.as_str().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&payload);
        if out.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge { len: out.len() });
        }
        Ok(out)
    }

    /// Parses canonical bytes; anything that would not re-encode to exactly `bytes` is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge { len: bytes.len() });
        }
        let rest = bytes
            .strip_prefix(MAGIC.as_bytes())
            .ok_or(EntryError::BadHeader)?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(EntryError::BadHeader)?;
        let kind_str = std::str::from_utf8(&rest[..nl]).map_err(|_| EntryError::BadHeader)?;
        let kind = EntryKind::parse(kind_str)
            .ok_or_else(|| EntryError::UnknownKind(kind_str.chars().take(40).collect()))?;
        let payload = &rest[nl + 1..];
        let bad = |e: serde_json::Error| EntryError::BadPayload {
            kind,
            reason: e.to_string(),
        };
        let entry = match kind {
            EntryKind::Receipt => {
                LogEntry::Receipt(Box::new(serde_json::from_slice(payload).map_err(bad)?))
            }
            EntryKind::ChatReceipt => {
                LogEntry::ChatReceipt(Box::new(serde_json::from_slice(payload).map_err(bad)?))
            }
            EntryKind::ModelRegistered => {
                LogEntry::ModelRegistered(serde_json::from_slice(payload).map_err(bad)?)
            }
            EntryKind::PointerMoved => {
                LogEntry::PointerMoved(serde_json::from_slice(payload).map_err(bad)?)
            }
            EntryKind::PolicyChanged => {
                LogEntry::PolicyChanged(serde_json::from_slice(payload).map_err(bad)?)
            }
            EntryKind::ConfigChanged => {
                LogEntry::ConfigChanged(serde_json::from_slice(payload).map_err(bad)?)
            }
        };
        if entry.encode()? != bytes {
            return Err(EntryError::NotCanonical { kind });
        }
        Ok(entry)
    }

    /// RFC 6962 leaf hash of the canonical bytes.
    pub fn leaf_hash(&self) -> Result<Hash, EntryError> {
        Ok(leaf_hash(&self.encode()?))
    }

    fn validate(&self) -> Result<(), EntryError> {
        check_time(self.time())?;
        match self {
            LogEntry::PointerMoved(p) => {
                check_name(&p.name)?;
                if let Some(v) = &p.version {
                    check_name(v)?;
                }
                if p.from.is_none() && p.to.is_none() {
                    return Err(EntryError::BadPayload {
                        kind: EntryKind::PointerMoved,
                        reason: "a pointer change needs `from`, `to` or both".into(),
                    });
                }
            }
            LogEntry::ModelRegistered(m) if m.format.is_empty() || m.format.len() > 32 => {
                return Err(EntryError::BadPayload {
                    kind: EntryKind::ModelRegistered,
                    reason: "format is 1 to 32 characters".into(),
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// The receipt's leaf bytes without cloning it into a `LogEntry`.
pub fn receipt_entry_bytes(receipt: &Receipt) -> Vec<u8> {
    receipt_entry_from_canonical(&receipt.canonical_bytes())
}

/// The leaf bytes of a chat receipt: `"vouch-log/v1 chat-receipt\n" ‖ ChatReceipt::canonical_bytes()`.
/// Its own header, so a chat receipt's leaf is never an ONNX receipt's (`docs/receipt.md`).
pub fn chat_receipt_entry_bytes(receipt: &ChatReceipt) -> Vec<u8> {
    let canonical = receipt.canonical_bytes();
    let kind = EntryKind::ChatReceipt.as_str();
    let mut out = Vec::with_capacity(MAGIC.len() + kind.len() + 1 + canonical.len());
    out.extend_from_slice(MAGIC.as_bytes());
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&canonical);
    out
}

/// The receipt entry for already-computed `Receipt::canonical_bytes()`.
pub fn receipt_entry_from_canonical(canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + canonical.len());
    out.extend_from_slice(MAGIC.as_bytes());
    out.extend_from_slice(b"receipt\n");
    out.extend_from_slice(canonical);
    out
}

fn check_name(name: &str) -> Result<(), EntryError> {
    vouch_core::model::validate_name(name).map_err(|reason| EntryError::BadName {
        name: name.chars().take(140).collect(),
        reason,
    })
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the one time format receipts use, so times sort as strings.
pub fn check_time(t: &str) -> Result<(), EntryError> {
    let b = t.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().unwrap_or(u32::MAX);
    if !shape_ok
        || !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return Err(EntryError::BadTime(t.chars().take(40).collect()));
    }
    Ok(())
}

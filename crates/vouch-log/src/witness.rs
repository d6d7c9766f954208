//! The C2SP `tlog-witness` protocol (`POST <prefix>/add-checkpoint`): request bodies and response
//! handling for the log side, and a small witness state machine that implements the witness side
//! (used by tests and usable by an operator who wants Vouch to witness another log).
//!
//! Request body: `old <size>\n`, consistency proof hashes (base64, one per line), a blank line,
//! then the signed checkpoint. A 200 response is one or more cosignature lines; 409 carries the
//! witness's current size as `<decimal>\n` with `Content-Type: text/x.tlog.size`.

use std::collections::BTreeMap;

use crate::checkpoint::{LogKey, NoteError, verify_checkpoint};
use crate::cosign::{Cosignature, Cosigner, WitnessKey};
use crate::merkle::{EMPTY_ROOT, Hash, verify_consistency};

/// Content type of a 409 response body.
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

const MAX_PROOF_LINES: usize = 63;

/// An `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// Signed checkpoint note.
    pub checkpoint: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed add-checkpoint body: {0}")]
pub struct BodyError(pub &'static str);

impl AddCheckpoint {
    pub fn to_body(&self) -> Vec<u8> {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&h.to_string());
            s.push('\n');
        }
        s.push('\n');
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.checkpoint);
        b
    }

    pub fn parse(body: &[u8]) -> Result<Self, BodyError> {
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or(BodyError("no blank line before the checkpoint"))?;
        let head =
            std::str::from_utf8(&body[..split]).map_err(|_| BodyError("header is not UTF-8"))?;
        let checkpoint = body[split + 2..].to_vec();
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or(BodyError("first line must be `old N`"))?;
        let old_size: u64 = old
            .parse()
            .map_err(|_| BodyError("old size is not a decimal number"))?;
        if old_size.to_string() != old {
            return Err(BodyError("old size has leading zeroes"));
        }
        let mut proof = Vec::new();
        for l in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(BodyError("more than 63 consistency proof lines"));
            }
            proof.push(
                Hash::from_base64(l).map_err(|_| BodyError("proof line is not a base64 hash"))?,
            );
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint,
        })
    }
}

/// What a log makes of a witness's answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WitnessClientError {
    /// The witness has a different latest size for this log; retry with `old_size` = this.
    #[error("witness {witness} is at size {witness_size}; resend with that old size")]
    Conflict { witness: String, witness_size: u64 },
    #[error("witness {witness} refused the checkpoint: HTTP {status}: {message}")]
    Refused {
        witness: String,
        status: u16,
        message: String,
    },
    #[error("witness {witness} answered 200 without a valid cosignature from its key")]
    NoCosignature { witness: String },
    #[error("witness {witness} returned a cosignature that does not verify")]
    BadCosignature { witness: String },
}

/// Interprets an `add-checkpoint` response from `witness` for the checkpoint note `note`.
pub fn parse_add_checkpoint_response(
    witness: &WitnessKey,
    note: &[u8],
    status: u16,
    body: &[u8],
) -> Result<Cosignature, WitnessClientError> {
    let name = witness.name().to_string();
    let text = String::from_utf8_lossy(body);
    match status {
        200 => {}
        409 => {
            let size = text
                .strip_suffix('\n')
                .unwrap_or(&text)
                .trim()
                .parse::<u64>();
            return match size {
                Ok(witness_size) => Err(WitnessClientError::Conflict {
                    witness: name,
                    witness_size,
                }),
                Err(_) => Err(WitnessClientError::Refused {
                    witness: name,
                    status,
                    message: "409 without a tree size body".into(),
                }),
            };
        }
        _ => {
            return Err(WitnessClientError::Refused {
                witness: name,
                status,
                message: text.chars().take(200).collect(),
            });
        }
    }
    let parsed = crate::checkpoint::SignedNote::parse(note).map_err(|_| {
        WitnessClientError::NoCosignature {
            witness: name.clone(),
        }
    })?;
    let mut found = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let Ok(sig) = crate::checkpoint::NoteSignature::parse_line(line) else {
            continue;
        };
        if !witness.claims(&sig) {
            continue; // lines from keys we do not know are ignored, per the spec
        }
        match witness.verify(&parsed.text, &sig) {
            Ok(c) => found = Some(c),
            Err(_) => return Err(WitnessClientError::BadCosignature { witness: name }),
        }
    }
    found.ok_or(WitnessClientError::NoCosignature { witness: name })
}

/// A refusal from [`Witness::add_checkpoint`]: the HTTP status the spec assigns, and a body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("HTTP {status}: {message}")]
pub struct WitnessRefusal {
    pub status: u16,
    pub message: String,
    /// For 409: the witness's size, to be sent as `text/x.tlog.size`.
    pub size: Option<u64>,
}

impl WitnessRefusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        WitnessRefusal {
            status,
            message: message.into(),
            size: None,
        }
    }

    /// The response body the spec requires for this refusal.
    pub fn body(&self) -> Vec<u8> {
        match self.size {
            Some(s) => format!("{s}\n").into_bytes(),
            None => format!("{}\n", self.message).into_bytes(),
        }
    }
}

/// What a witness remembers per log: the latest checkpoint it cosigned.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WitnessedTree {
    pub size: u64,
    pub root: Hash,
}

/// A witness: its cosigning key, the logs it follows, and their latest cosigned trees. The
/// caller persists `state()` (and must do so before answering, as the spec requires) and
/// serialises calls (the check-and-update must be atomic).
pub struct Witness {
    cosigner: Cosigner,
    logs: BTreeMap<String, LogKey>,
    state: BTreeMap<String, WitnessedTree>,
}

impl Witness {
    pub fn new(cosigner: Cosigner, logs: Vec<LogKey>) -> Self {
        let logs = logs
            .into_iter()
            .map(|k| (k.origin().to_string(), k))
            .collect();
        Witness {
            cosigner,
            logs,
            state: BTreeMap::new(),
        }
    }

    pub fn key(&self) -> &WitnessKey {
        self.cosigner.key()
    }

    pub fn state(&self) -> &BTreeMap<String, WitnessedTree> {
        &self.state
    }

    pub fn restore(&mut self, state: BTreeMap<String, WitnessedTree>) {
        self.state = state;
    }

    /// Handles one `add-checkpoint` body at time `now` (POSIX seconds). On success returns the
    /// response body: this witness's cosignature line.
    pub fn add_checkpoint(&mut self, body: &[u8], now: u64) -> Result<Vec<u8>, WitnessRefusal> {
        let req =
            AddCheckpoint::parse(body).map_err(|e| WitnessRefusal::new(400, e.to_string()))?;
        let note = crate::checkpoint::SignedNote::parse(&req.checkpoint)
            .map_err(|e| WitnessRefusal::new(400, e.to_string()))?;
        let cp = crate::checkpoint::Checkpoint::parse_text(&note.text)
            .map_err(|e| WitnessRefusal::new(400, e.to_string()))?;
        let log = self
            .logs
            .get(&cp.origin)
            .ok_or_else(|| WitnessRefusal::new(404, "unknown log origin"))?;
        verify_checkpoint(&req.checkpoint, log)
            .map_err(|e: NoteError| WitnessRefusal::new(403, e.to_string()))?;
        if req.old_size > cp.size {
            return Err(WitnessRefusal::new(
                400,
                "old size is larger than the checkpoint size",
            ));
        }
        let known = self.state.get(&cp.origin).cloned();
        let known_size = known.as_ref().map_or(0, |k| k.size);
        if req.old_size != known_size {
            return Err(WitnessRefusal {
                status: 409,
                message: "old size mismatch".into(),
                size: Some(known_size),
            });
        }
        if cp.size == 0 && cp.root != EMPTY_ROOT {
            return Err(WitnessRefusal::new(
                422,
                "a tree of size 0 must have the empty root",
            ));
        }
        match known {
            None => {
                if !req.proof.is_empty() {
                    return Err(WitnessRefusal::new(
                        422,
                        "a proof from size 0 must be empty",
                    ));
                }
            }
            Some(k) if k.size == 0 => {
                if !req.proof.is_empty() {
                    return Err(WitnessRefusal::new(
                        422,
                        "a proof from size 0 must be empty",
                    ));
                }
            }
            Some(k) => verify_consistency(k.size, cp.size, k.root, cp.root, &req.proof)
                .map_err(|e| WitnessRefusal::new(422, e.to_string()))?,
        }
        let cosig = self
            .cosigner
            .cosign(&note.text, now)
            .map_err(|e| WitnessRefusal::new(500, e.to_string()))?;
        self.state.insert(
            cp.origin.clone(),
            WitnessedTree {
                size: cp.size,
                root: cp.root,
            },
        );
        Ok(cosig.to_line().into_bytes())
    }
}

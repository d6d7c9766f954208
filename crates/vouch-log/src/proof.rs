//! The offline proof file for one entry, C2SP `tlog-proof@v1`:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional)
//! index <n>
//! <inclusion proof hash, base64, one per line>
//!
//! <signed checkpoint note, verbatim, with any cosignatures>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::checkpoint::MAX_NOTE_BYTES;
use crate::merkle::Hash;

pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A tree has at most 64 levels, so no inclusion proof has more than 63 hashes.
const MAX_PROOF_HASHES: usize = 63;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated application data.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note (log signature and cosignatures).
    pub checkpoint: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlogProofError {
    #[error("not a tlog-proof: first line must be {TLOG_PROOF_HEADER:?}")]
    Header,
    #[error("tlog-proof extra line is not base64")]
    Extra,
    #[error("tlog-proof has no valid `index N` line (decimal, no leading zeroes)")]
    Index,
    #[error("tlog-proof line {line} is not a base64 SHA-256 hash")]
    Hash { line: usize },
    #[error("tlog-proof has more than {MAX_PROOF_HASHES} proof hashes")]
    TooManyHashes,
    #[error("tlog-proof has no blank line before the checkpoint")]
    NoCheckpoint,
    #[error("tlog-proof is larger than the {MAX_NOTE_BYTES}-byte limit")]
    TooLarge,
    #[error("tlog-proof is not UTF-8 text")]
    NotText,
}

impl TlogProof {
    pub fn to_text(&self) -> String {
        let mut s = String::from(TLOG_PROOF_HEADER);
        s.push('\n');
        if let Some(extra) = &self.extra {
            s.push_str("extra ");
            s.push_str(&B64.encode(extra));
            s.push('\n');
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            s.push_str(&h.to_string());
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&String::from_utf8_lossy(&self.checkpoint));
        s
    }

    pub fn parse(text: &[u8]) -> Result<Self, TlogProofError> {
        if text.len() > MAX_NOTE_BYTES + 4096 {
            return Err(TlogProofError::TooLarge);
        }
        let s = std::str::from_utf8(text).map_err(|_| TlogProofError::NotText)?;
        let (head, checkpoint) = s.split_once("\n\n").ok_or(TlogProofError::NoCheckpoint)?;
        let mut lines = head.split('\n').enumerate();
        match lines.next() {
            Some((_, l)) if l == TLOG_PROOF_HEADER => {}
            _ => return Err(TlogProofError::Header),
        }
        let mut next = lines.next();
        let mut extra = None;
        if let Some((_, l)) = next
            && let Some(b) = l.strip_prefix("extra ")
        {
            extra = Some(B64.decode(b).map_err(|_| TlogProofError::Extra)?);
            next = lines.next();
        }
        let index = match next {
            Some((_, l)) => {
                let n = l.strip_prefix("index ").ok_or(TlogProofError::Index)?;
                let v: u64 = n.parse().map_err(|_| TlogProofError::Index)?;
                if v.to_string() != n {
                    return Err(TlogProofError::Index);
                }
                v
            }
            None => return Err(TlogProofError::Index),
        };
        let mut hashes = Vec::new();
        for (i, l) in lines {
            if hashes.len() == MAX_PROOF_HASHES {
                return Err(TlogProofError::TooManyHashes);
            }
            hashes.push(Hash::from_base64(l).map_err(|_| TlogProofError::Hash { line: i + 1 })?);
        }
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }
}

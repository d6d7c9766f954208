//! The monitor behind `vouch log audit --server URL`, as pure logic over data the CLI fetched.
//!
//! A run: verify the new checkpoint's signature; check it is consistent with the checkpoint
//! stored from the previous run (a failed proof means the log showed two incompatible
//! histories: a split view or a rewrite); fetch the entry bundles (and level-0 tiles) past what
//! was already re-derived, re-hash every entry, check each decodes as a Vouch entry and each
//! tile matches, and check that the re-derived root equals the checkpoint's root. Only then is
//! the new state saved. Every failure is an [`AuditError`]; the CLI prints it and exits non-zero.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{LogKey, NoteError, VerifiedCheckpoint, verify_checkpoint};
use crate::entry::{EntryError, LogEntry};
use crate::merkle::{Frontier, Hash, ProofError, leaf_hash, verify_consistency};
use crate::tiles::{TILE_WIDTH, Tile, TileError, TileKind, decode_entry_bundle, decode_hash_tile};

/// What the monitor keeps between runs (the CLI stores it as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    pub origin: String,
    /// The last checkpoint verified and fully re-derived, as served (signed note text).
    pub checkpoint: String,
    pub size: u64,
    pub root: Hash,
    /// Compact range of the re-derived tree at `size`, so the next run hashes only new entries.
    pub frontier: Frontier,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditError {
    #[error("checkpoint signature: {0}")]
    Checkpoint(#[from] NoteError),
    #[error(
        "SPLIT VIEW / HISTORY REWRITE: checkpoint {new_size} ({new_root}) is not consistent with \
         the checkpoint {old_size} ({old_root}) seen before: {reason}"
    )]
    Inconsistent {
        old_size: u64,
        old_root: Hash,
        new_size: u64,
        new_root: Hash,
        reason: String,
    },
    #[error("ROLLBACK: the log now shows size {new_size}, smaller than the {old_size} seen before")]
    Rollback { old_size: u64, new_size: u64 },
    #[error(
        "REWRITE: the served entries 0..{size} hash to root {derived}, but the signed checkpoint \
         says {claimed}"
    )]
    RootMismatch {
        size: u64,
        derived: Hash,
        claimed: Hash,
    },
    #[error("TILE MISMATCH: {path} disagrees with the entries at index {index}")]
    TileMismatch { path: String, index: u64 },
    #[error("entry {index} is not a valid Vouch log entry: {error}")]
    BadEntry { index: u64, error: EntryError },
    #[error("{path}: {error}")]
    Tile { path: String, error: TileError },
    #[error("monitor state is for log {state:?}, but the trusted key is for {key:?}")]
    StateMismatch { state: String, key: String },
    #[error("entry data out of order: expected entries from index {expected}, got {path}")]
    Sequence { expected: u64, path: String },
}

/// Progress of one audit run.
pub struct Monitor {
    key: LogKey,
    state: Option<MonitorState>,
    /// Re-derivation in progress.
    frontier: Frontier,
    entries_checked: u64,
}

/// What a successful run established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub origin: String,
    pub previous_size: u64,
    pub size: u64,
    pub root: Hash,
    /// Entries re-hashed and decoded in this run.
    pub entries_checked: u64,
}

impl Monitor {
    pub fn new(key: LogKey, state: Option<MonitorState>) -> Result<Self, AuditError> {
        if let Some(s) = &state
            && s.origin != key.origin()
        {
            return Err(AuditError::StateMismatch {
                state: s.origin.clone(),
                key: key.origin().to_string(),
            });
        }
        let frontier = state
            .as_ref()
            .map(|s| s.frontier.clone())
            .unwrap_or_default();
        Ok(Monitor {
            key,
            state,
            frontier,
            entries_checked: 0,
        })
    }

    /// Size the previous run ended at (0 on the first run): the old size of the consistency
    /// proof to fetch.
    pub fn known_size(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.size)
    }

    /// Verifies the newly fetched checkpoint and its consistency with the stored one (`proof`
    /// from `known_size()` to the new size; empty on a first run or when sizes are equal).
    pub fn check_checkpoint(
        &self,
        note: &[u8],
        proof: &[Hash],
    ) -> Result<VerifiedCheckpoint, AuditError> {
        let cp = verify_checkpoint(note, &self.key)?;
        if let Some(s) = &self.state {
            check_consistent(
                s.size,
                s.root,
                cp.checkpoint.size,
                cp.checkpoint.root,
                proof,
            )?;
        }
        Ok(cp)
    }

    /// Entry bundles to fetch to re-derive the tree up to `new_size`, in order.
    pub fn bundles_needed(&self, new_size: u64) -> Vec<Tile> {
        let start = self.frontier.size();
        if new_size <= start {
            return Vec::new();
        }
        let first = start / TILE_WIDTH;
        let last = (new_size - 1) / TILE_WIDTH;
        (first..=last)
            .map(|n| {
                let end = ((n + 1) * TILE_WIDTH).min(new_size);
                Tile::entries(n, (end - n * TILE_WIDTH) as u16)
            })
            .collect()
    }

    /// Feeds one entry bundle (in the order of `bundles_needed`) and, if fetched, the level-0
    /// hash tile with the same coordinates.
    pub fn feed_bundle(
        &mut self,
        tile: Tile,
        bundle: &[u8],
        level0: Option<&[u8]>,
    ) -> Result<(), AuditError> {
        let path = tile.path();
        let start = tile.n * TILE_WIDTH;
        let have = self.frontier.size();
        if tile.kind != TileKind::Entries || start > have || start + u64::from(tile.width) <= have {
            return Err(AuditError::Sequence {
                expected: have,
                path,
            });
        }
        let entries = decode_entry_bundle(bundle).map_err(|error| AuditError::Tile {
            path: path.clone(),
            error,
        })?;
        if entries.len() != usize::from(tile.width) {
            return Err(AuditError::Tile {
                path,
                error: TileError::BadLength {
                    got: entries.len(),
                    expected: usize::from(tile.width),
                },
            });
        }
        let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        if let Some(t) = level0 {
            let tile_path = Tile::hashes(0, tile.n, tile.width).path();
            let served = decode_hash_tile(t, tile.width).map_err(|error| AuditError::Tile {
                path: tile_path.clone(),
                error,
            })?;
            if let Some(i) = served.iter().zip(&hashes).position(|(a, b)| a != b) {
                return Err(AuditError::TileMismatch {
                    path: tile_path,
                    index: start + i as u64,
                });
            }
        }
        for (i, (e, h)) in entries.iter().zip(hashes).enumerate() {
            let index = start + i as u64;
            if index < have {
                continue; // re-derived by an earlier run; covered by the consistency proof
            }
            LogEntry::decode(e).map_err(|error| AuditError::BadEntry { index, error })?;
            self.frontier.push(h);
            self.entries_checked += 1;
        }
        Ok(())
    }

    /// Checks the re-derived root against the checkpoint and returns the state to save.
    pub fn finish(
        &mut self,
        cp: &VerifiedCheckpoint,
    ) -> Result<(AuditReport, MonitorState), AuditError> {
        let c = &cp.checkpoint;
        if self.frontier.size() != c.size {
            return Err(AuditError::Sequence {
                expected: self.frontier.size(),
                path: format!("checkpoint of size {}", c.size),
            });
        }
        let derived = self.frontier.root();
        if derived != c.root {
            return Err(AuditError::RootMismatch {
                size: c.size,
                derived,
                claimed: c.root,
            });
        }
        let report = AuditReport {
            origin: c.origin.clone(),
            previous_size: self.known_size(),
            size: c.size,
            root: c.root,
            entries_checked: self.entries_checked,
        };
        let state = MonitorState {
            origin: c.origin.clone(),
            checkpoint: String::from_utf8_lossy(&cp.note.to_bytes()).into_owned(),
            size: c.size,
            root: c.root,
            frontier: self.frontier.clone(),
        };
        self.state = Some(state.clone());
        Ok((report, state))
    }
}

/// Whether the tree `(new_size, new_root)` extends `(old_size, old_root)`, as an audit finding.
/// Also used to compare a checkpoint from elsewhere (a witness, a receipt bundle) with the
/// monitor's: equal sizes with different roots need no proof to be a split view.
pub fn check_consistent(
    old_size: u64,
    old_root: Hash,
    new_size: u64,
    new_root: Hash,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if new_size < old_size {
        return Err(AuditError::Rollback { old_size, new_size });
    }
    if old_size == 0 {
        return Ok(());
    }
    verify_consistency(old_size, new_size, old_root, new_root, proof).map_err(|e: ProofError| {
        AuditError::Inconsistent {
            old_size,
            old_root,
            new_size,
            new_root,
            reason: e.to_string(),
        }
    })
}

//! C2SP `tlog-tiles` resources: tile paths, hash tiles and entry bundles.
//!
//! Tiles have height 8: tile `n` at level `l` lists up to 256 consecutive tree hashes at tree
//! level `8·l`, i.e. hashes `stored_hash_index(8·l, n·256 + i)`. Entry bundles hold the entries
//! of level-0 tile `n`, each prefixed by its length as a big-endian u16.
//!
//! (`tlog_tiles::Tile` encodes Go sumdb's `tile/H/L/N` paths with the height in the path; the
//! C2SP layout drops it, so paths are encoded here.)

use crate::merkle::{Hash, stored_hash_index};

pub const TILE_HEIGHT: u8 = 8;
pub const TILE_WIDTH: u64 = 256;

/// A tile resource: hashes at a level, or the entry bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKind {
    Hashes { level: u8 },
    Entries,
}

/// One tile or entry bundle: `n` within its level, `width` 1..=256 (256 = full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub kind: TileKind,
    pub n: u64,
    pub width: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileError {
    #[error("malformed tile path {0:?}")]
    BadPath(String),
    #[error("tile {path} is not available: the tree has {size} entries")]
    NotInTree { path: String, size: u64 },
    #[error("tile data is {got} bytes, expected {expected}")]
    BadLength { got: usize, expected: usize },
    #[error("entry bundle is truncated or has trailing bytes")]
    BadBundle,
    #[error("entry of {0} bytes does not fit a u16 length prefix")]
    EntryTooLarge(usize),
}

impl Tile {
    pub fn hashes(level: u8, n: u64, width: u16) -> Self {
        Tile {
            kind: TileKind::Hashes { level },
            n,
            width,
        }
    }

    pub fn entries(n: u64, width: u16) -> Self {
        Tile {
            kind: TileKind::Entries,
            n,
            width,
        }
    }

    pub fn level(&self) -> u8 {
        match self.kind {
            TileKind::Hashes { level } => level,
            TileKind::Entries => 0,
        }
    }

    /// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, N in 3-digit `x`-prefixed groups.
    pub fn path(&self) -> String {
        let mut groups = Vec::new();
        let mut n = self.n;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        let last = groups.len() - 1;
        let nstr: Vec<String> = groups
            .iter()
            .rev()
            .enumerate()
            .map(|(i, g)| {
                if i == last {
                    format!("{g:03}")
                } else {
                    format!("x{g:03}")
                }
            })
            .collect();
        let level = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut p = format!("tile/{level}/{}", nstr.join("/"));
        if u64::from(self.width) != TILE_WIDTH {
            p.push_str(&format!(".p/{}", self.width));
        }
        p
    }

    /// Parses a path as above (with or without a leading `/`); anything that would not print
    /// back to the same path is refused, so every tile has one URL.
    pub fn parse_path(path: &str) -> Result<Self, TileError> {
        let bad = || TileError::BadPath(path.chars().take(100).collect());
        let p = path.strip_prefix('/').unwrap_or(path);
        if p.len() > 80 {
            return Err(bad());
        }
        let mut parts: Vec<&str> = p.split('/').collect();
        if parts.len() < 3 || parts[0] != "tile" {
            return Err(bad());
        }
        let kind = if parts[1] == "entries" {
            TileKind::Entries
        } else {
            let level: u8 = parts[1].parse().map_err(|_| bad())?;
            if level > 63 {
                return Err(bad());
            }
            TileKind::Hashes { level }
        };
        let mut width: u16 = 256;
        let len = parts.len();
        if len >= 4
            && let Some(stem) = parts[len - 2].strip_suffix(".p")
        {
            width = parts[len - 1].parse().map_err(|_| bad())?;
            if !(1..=255).contains(&width) {
                return Err(bad());
            }
            parts[len - 2] = stem;
            parts.pop();
        }
        let mut n: u64 = 0;
        let groups = &parts[2..];
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x').ok_or_else(bad)?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let v: u64 = digits.parse().map_err(|_| bad())?;
            n = n
                .checked_mul(1000)
                .and_then(|n| n.checked_add(v))
                .ok_or_else(bad)?;
        }
        let t = Tile { kind, n, width };
        if t.path() != p {
            return Err(bad());
        }
        Ok(t)
    }

    /// Number of level-`8·level` hashes complete in a tree of `size` leaves.
    fn hashes_at_level(level: u8, size: u64) -> u64 {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        if shift >= 64 { 0 } else { size >> shift }
    }

    /// Whether the tree of `size` leaves has all the hashes (or entries) this tile lists. Tiles
    /// are immutable once their hashes exist, so any such tile may be served.
    pub fn check_in_tree(&self, size: u64) -> Result<(), TileError> {
        let have = Self::hashes_at_level(self.level(), size);
        let end = self
            .n
            .checked_mul(TILE_WIDTH)
            .and_then(|s| s.checked_add(u64::from(self.width)));
        match end {
            Some(end) if end <= have && self.width >= 1 => Ok(()),
            _ => Err(TileError::NotInTree {
                path: self.path(),
                size,
            }),
        }
    }

    /// Stored-hash indexes of this hash tile's hashes, in order, if the tree of `size` has them.
    pub fn hash_indexes(&self, size: u64) -> Result<Vec<u64>, TileError> {
        self.check_in_tree(size)?;
        let level = self.level() * TILE_HEIGHT;
        Ok((0..u64::from(self.width))
            .map(|i| stored_hash_index(level, self.n * TILE_WIDTH + i))
            .collect())
    }

    /// Leaf range `[start, end)` of an entry bundle, if the tree of `size` has it.
    pub fn entry_range(&self, size: u64) -> Result<(u64, u64), TileError> {
        self.check_in_tree(size)?;
        let start = self.n * TILE_WIDTH;
        Ok((start, start + u64::from(self.width)))
    }
}

/// The tiles (and entry bundles) a client mirrors for a tree of `size` leaves, per
/// C2SP tlog-tiles: all full tiles plus the partial tile at each level.
pub fn tiles_for_size(size: u64) -> Vec<Tile> {
    let mut out = Vec::new();
    for level in 0u8..8 {
        let count = Tile::hashes_at_level(level, size);
        if count == 0 {
            break;
        }
        for n in 0..count / TILE_WIDTH {
            out.push(Tile::hashes(level, n, 256));
            if level == 0 {
                out.push(Tile::entries(n, 256));
            }
        }
        let rem = (count % TILE_WIDTH) as u16;
        if rem > 0 {
            out.push(Tile::hashes(level, count / TILE_WIDTH, rem));
            if level == 0 {
                out.push(Tile::entries(count / TILE_WIDTH, rem));
            }
        }
    }
    out
}

/// Concatenated 32-byte hashes.
pub fn encode_hash_tile(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * 32);
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    out
}

pub fn decode_hash_tile(data: &[u8], width: u16) -> Result<Vec<Hash>, TileError> {
    let expected = usize::from(width) * 32;
    if data.len() != expected {
        return Err(TileError::BadLength {
            got: data.len(),
            expected,
        });
    }
    Ok(data.chunks_exact(32).filter_map(Hash::from_slice).collect())
}

/// Entries, each prefixed by its big-endian u16 length.
pub fn encode_entry_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

pub fn decode_entry_bundle(data: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(2).ok_or(TileError::BadBundle)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (entry, tail) = tail.split_at_checked(len).ok_or(TileError::BadBundle)?;
        out.push(entry.to_vec());
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_c2sp_examples() {
        // C2SP tlog-tiles: index 1234067 is encoded as x001/x234/067.
        assert_eq!(
            Tile::hashes(0, 1_234_067, 256).path(),
            "tile/0/x001/x234/067"
        );
        assert_eq!(Tile::hashes(2, 5, 17).path(), "tile/2/005.p/17");
        assert_eq!(Tile::entries(1000, 3).path(), "tile/entries/x001/000.p/3");
        for t in [
            Tile::hashes(0, 1_234_067, 256),
            Tile::hashes(2, 5, 17),
            Tile::entries(1000, 3),
            Tile::entries(0, 256),
        ] {
            assert_eq!(Tile::parse_path(&t.path()).unwrap(), t);
        }
        for bad in [
            "tile/0/1234067",
            "tile/0/x1/234",
            "tile/0/001.p/256",
            "tile/0/001.p/0",
            "tile/64/000",
            "tile/0/x000/001",
            "tile/entries/000.p/01",
            "tiles/0/000",
            "tile/0",
            "tile/0/000.p",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
        ] {
            assert!(Tile::parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tile_set_matches_c2sp_example_of_70000() {
        // C2SP tlog-tiles: size 70,000 has 273 full level-0 tiles, a partial level-0 tile of
        // width 112, one full level-1 tile, a partial level-1 tile of width 17 and a partial
        // level-2 tile of width 1.
        let tiles = tiles_for_size(70_000);
        let hashes: Vec<&Tile> = tiles
            .iter()
            .filter(|t| matches!(t.kind, TileKind::Hashes { .. }))
            .collect();
        let count = |l: u8, w: u16| {
            hashes
                .iter()
                .filter(|t| t.level() == l && t.width == w)
                .count()
        };
        assert_eq!(count(0, 256), 273);
        assert_eq!(count(0, 112), 1);
        assert_eq!(count(1, 256), 1);
        assert_eq!(count(1, 17), 1);
        assert_eq!(count(2, 1), 1);
        assert_eq!(hashes.len(), 277);
        // Size 256: one full level-0 tile and a level-1 tile of width 1.
        let t = tiles_for_size(256);
        assert!(t.contains(&Tile::hashes(0, 0, 256)) && t.contains(&Tile::hashes(1, 0, 1)));
        assert!(Tile::hashes(1, 0, 2).check_in_tree(256).is_err());
        assert!(Tile::hashes(0, 1, 1).check_in_tree(256).is_err());
        assert!(Tile::hashes(0, 0, 256).check_in_tree(256).is_ok());
    }

    #[test]
    fn entry_bundles_round_trip_and_reject_truncation() {
        let entries: Vec<&[u8]> = vec![b"a", b"", b"hello"];
        let b = encode_entry_bundle(entries.iter().copied()).unwrap();
        assert_eq!(b, b"\x00\x01a\x00\x00\x00\x05hello");
        assert_eq!(
            decode_entry_bundle(&b).unwrap(),
            vec![b"a".to_vec(), vec![], b"hello".to_vec()]
        );
        assert_eq!(
            decode_entry_bundle(&b[..b.len() - 1]),
            Err(TileError::BadBundle)
        );
        assert_eq!(decode_entry_bundle(&[0]), Err(TileError::BadBundle));
        assert!(encode_entry_bundle([vec![0u8; 70_000].as_slice()]).is_err());
    }
}

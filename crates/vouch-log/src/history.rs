//! `vouch log history NAME`: every move of a model name's pointers, from log entries.

use serde::Serialize;
use vouch_core::ModelDigest;

use crate::entry::{EntryError, LogEntry};

/// One logged change of `name` or `name@version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PointerChange {
    /// Log index of the entry.
    pub index: u64,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<ModelDigest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<ModelDigest>,
    pub at: String,
    /// The entry's `from` is not where the previous logged change left this pointer: the
    /// pointer moved at least once without a log entry. Auditors treat this as an alarm.
    pub unlogged_move_before: bool,
}

/// The changes of `name`'s pointers among `entries` (index, canonical bytes), in log order.
/// Entries of other kinds and names are skipped; an entry that does not decode is an error,
/// since a log that holds garbage is itself a finding.
pub fn pointer_history<'a>(
    entries: impl IntoIterator<Item = (u64, &'a [u8])>,
    name: &str,
) -> Result<Vec<PointerChange>, (u64, EntryError)> {
    let mut out: Vec<PointerChange> = Vec::new();
    for (index, bytes) in entries {
        let e = LogEntry::decode(bytes).map_err(|e| (index, e))?;
        let LogEntry::PointerMoved(p) = e else {
            continue;
        };
        if p.name != name {
            continue;
        }
        let prev = out
            .iter()
            .rev()
            .find(|c| c.version == p.version)
            .map(|c| c.to);
        let unlogged = match prev {
            Some(prev_to) => prev_to != p.from,
            None => p.from.is_some(),
        };
        out.push(PointerChange {
            index,
            name: p.name,
            version: p.version,
            from: p.from,
            to: p.to,
            at: p.at,
            unlogged_move_before: unlogged,
        });
    }
    Ok(out)
}

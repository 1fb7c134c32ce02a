//! Start-up: the newest snapshot, then every log record after it, applied in
//! zxid order with the same [`Tree::apply`] that served them.
//!
//! A torn tail (the very end of the newest segment, as a crash leaves it) is
//! cut off with a warning. Anything else wrong (a bad checksum with data after
//! it, a zxid out of sequence, a record that does not apply, a missing
//! segment) stops the start with an error naming the file and the offset:
//! data is never dropped silently.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::files::{self, DataFile, LOG_MAGIC};
use super::frame::Frames;
use super::{record, snapshot, wal, StorageError};
use crate::tree::Tree;
use crate::txn::Txn;

/// The state rebuilt from a data folder.
pub struct Recovered {
    pub tree: Tree,
    /// Live sessions and their timeouts.
    pub sessions: BTreeMap<i64, i32>,
    /// The last zxid on disk (0 for an empty folder).
    pub last_zxid: i64,
    /// The snapshot started from, if any.
    pub snapshot: Option<PathBuf>,
    /// Log records applied after it.
    pub replayed: u64,
    /// A torn tail that was cut off: the segment and the offset of the cut.
    pub truncated: Option<(PathBuf, u64)>,
}

/// Rebuilds the state from `dir`. With `repair`, a torn tail is cut off the
/// newest segment on disk; without, the folder is only read.
pub fn recover(dir: &std::path::Path, repair: bool) -> Result<Recovered, StorageError> {
    let snapshots = files::snapshots(dir).map_err(|e| StorageError::io(dir, e))?;
    let (mut tree, mut sessions, mut last_zxid, snapshot_path) = match snapshots.last() {
        Some(newest) => {
            let loaded = snapshot::read(&newest.path)?;
            (
                loaded.tree,
                loaded.sessions,
                loaded.zxid,
                Some(newest.path.clone()),
            )
        }
        None => (Tree::new(), BTreeMap::new(), 0, None),
    };
    let snapshot_zxid = last_zxid;

    let segments = files::segments(dir).map_err(|e| StorageError::io(dir, e))?;
    // Segments wholly before the snapshot are not needed: a segment is,
    // if the next one starts after the snapshot's successor.
    let needed: Vec<&DataFile> = segments
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            segments
                .get(i + 1)
                .is_none_or(|next| next.zxid > snapshot_zxid + 1)
        })
        .map(|(_, s)| s)
        .collect();

    let mut replayed = 0;
    let mut truncated = None;
    for (i, segment) in needed.iter().enumerate() {
        let newest = i + 1 == needed.len();
        let path = &segment.path;
        let bytes = std::fs::read(path).map_err(|e| StorageError::io(path, e))?;
        if bytes.len() < LOG_MAGIC.len() || &bytes[..LOG_MAGIC.len()] != LOG_MAGIC {
            if newest && bytes.len() < LOG_MAGIC.len() && LOG_MAGIC.starts_with(&bytes) {
                // Created, then the crash came before its first record.
                tracing::warn!(path = %path.display(), "removing a log segment with no records");
                if repair {
                    std::fs::remove_file(path).map_err(|e| StorageError::io(path, e))?;
                }
                continue;
            }
            return Err(StorageError::damaged(
                path,
                0,
                "not a Canopy log segment (bad magic)",
            ));
        }
        if segment.zxid > last_zxid && !files::follows(last_zxid, segment.zxid) {
            return Err(StorageError::damaged(
                path,
                0,
                format!(
                    "log missing: this segment starts at zxid 0x{:x} but the state before it ends at 0x{last_zxid:x}",
                    segment.zxid
                ),
            ));
        }
        let mut frames = Frames::new(&bytes, LOG_MAGIC.len(), newest);
        let mut first = true;
        while let Some(frame) = frames
            .next_frame()
            .map_err(|d| StorageError::damaged(path, d.offset, d.reason))?
        {
            let damaged = |reason: String| StorageError::damaged(path, frame.offset, reason);
            if first && frame.zxid != segment.zxid {
                return Err(damaged(format!(
                    "first record has zxid 0x{:x}, the file name says 0x{:x}",
                    frame.zxid, segment.zxid
                )));
            }
            first = false;
            if frame.zxid <= last_zxid {
                // Already in the snapshot.
                if frame.zxid > snapshot_zxid {
                    return Err(damaged(format!("zxid 0x{:x} repeats", frame.zxid)));
                }
                continue;
            }
            if !files::follows(last_zxid, frame.zxid) {
                return Err(damaged(format!(
                    "zxid 0x{:x} does not follow 0x{last_zxid:x}",
                    frame.zxid
                )));
            }
            let (header, txn) = record::decode(frame.zxid, frame.body).map_err(&damaged)?;
            tree.apply(&header, &txn).map_err(|err| {
                damaged(format!("record 0x{:x} does not apply: {err}", frame.zxid))
            })?;
            track_sessions(&mut sessions, &txn);
            last_zxid = frame.zxid;
            replayed += 1;
        }
        if let Some(torn) = frames.torn.as_ref().filter(|t| t.zeros) {
            // The log writer's preallocated space after the last record: the
            // server stopped without closing the log, and lost nothing.
            tracing::info!(
                path = %path.display(),
                offset = torn.offset,
                "the log ends in unused preallocated space; trimming it"
            );
            if repair {
                wal::truncate(path, torn.offset).map_err(|e| StorageError::io(path, e))?;
            }
        } else if let Some(torn) = frames.torn {
            tracing::warn!(
                path = %path.display(),
                offset = torn.offset,
                reason = %torn.reason,
                "the log ends in a torn write (a crash mid-write); cutting it off"
            );
            if repair {
                wal::truncate(path, torn.offset).map_err(|e| StorageError::io(path, e))?;
            }
            truncated = Some((path.clone(), torn.offset));
        }
    }
    Ok(Recovered {
        tree,
        sessions,
        last_zxid,
        snapshot: snapshot_path,
        replayed,
        truncated,
    })
}

/// Keeps the session table in step with the session records replayed.
fn track_sessions(sessions: &mut BTreeMap<i64, i32>, txn: &Txn) {
    match txn {
        Txn::CreateSession {
            session_id,
            timeout_ms,
        } => {
            sessions.insert(*session_id, *timeout_ms);
        }
        Txn::CloseSession { session_id } => {
            sessions.remove(session_id);
        }
        _ => {}
    }
}

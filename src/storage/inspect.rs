//! What `canopy data` shows: the files of a data folder, the change records
//! in a readable form (like ZooKeeper's TxnLogToolkit), and a full check of
//! every checksum.

use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;

use super::files::{self, LOG_MAGIC};
use super::frame::Frames;
use super::{record, recovery, snapshot, StorageError};
use crate::txn::Txn;

/// One line per snapshot and log segment.
pub fn list(dir: &Path) -> Result<String, StorageError> {
    let mut out = String::new();
    let io = |e| StorageError::io(dir, e);
    let snapshots = files::snapshots(dir).map_err(io)?;
    let segments = files::segments(dir).map_err(io)?;
    let _ = writeln!(out, "snapshots ({}):", snapshots.len());
    for file in &snapshots {
        let size = std::fs::metadata(&file.path).map(|m| m.len()).unwrap_or(0);
        match snapshot::summary(&file.path) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "  {}  zxid 0x{:x}  {} nodes  {} sessions  {} bytes",
                    name(&file.path),
                    s.zxid,
                    s.nodes,
                    s.sessions,
                    size
                );
            }
            Err(err) => {
                let _ = writeln!(
                    out,
                    "  {}  {} bytes  UNREADABLE: {err}",
                    name(&file.path),
                    size
                );
            }
        }
    }
    let _ = writeln!(out, "log segments ({}):", segments.len());
    for (i, file) in segments.iter().enumerate() {
        let bytes = std::fs::read(&file.path).map_err(|e| StorageError::io(&file.path, e))?;
        let mut frames = Frames::new(&bytes, LOG_MAGIC.len(), i + 1 == segments.len());
        let (mut count, mut last) = (0u64, None);
        let mut problem = None;
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    count += 1;
                    last = Some(frame.zxid);
                }
                Ok(None) => break,
                Err(d) => {
                    problem = Some(format!("DAMAGED at offset {}: {}", d.offset, d.reason));
                    break;
                }
            }
        }
        let range = match last {
            Some(last) => format!("zxid 0x{:x}..0x{last:x}", file.zxid),
            None => "no records".into(),
        };
        let _ = write!(
            out,
            "  {}  {range}  {count} records  {} bytes",
            name(&file.path),
            bytes.len()
        );
        match frames.torn {
            Some(torn) if torn.zeros => {
                let _ = write!(out, "  preallocated space from offset {}", torn.offset);
            }
            Some(torn) => {
                let _ = write!(out, "  torn tail at offset {}", torn.offset);
            }
            None => {}
        }
        if let Some(problem) = problem {
            let _ = write!(out, "  {problem}");
        }
        out.push('\n');
    }
    Ok(out)
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Prints the change records of every segment from `from_zxid` on, at most
/// `limit` of them, one per line.
pub fn print_log(
    dir: &Path,
    from_zxid: i64,
    limit: usize,
    out: &mut impl std::io::Write,
) -> Result<usize, StorageError> {
    let segments = files::segments(dir).map_err(|e| StorageError::io(dir, e))?;
    let mut printed = 0;
    for (i, file) in segments.iter().enumerate() {
        let bytes = std::fs::read(&file.path).map_err(|e| StorageError::io(&file.path, e))?;
        let mut frames = Frames::new(&bytes, LOG_MAGIC.len(), i + 1 == segments.len());
        while let Some(frame) = frames
            .next_frame()
            .map_err(|d| StorageError::damaged(&file.path, d.offset, d.reason))?
        {
            if frame.zxid < from_zxid {
                continue;
            }
            if printed >= limit {
                return Ok(printed);
            }
            let (header, txn) = record::decode(frame.zxid, frame.body)
                .map_err(|reason| StorageError::damaged(&file.path, frame.offset, reason))?;
            let _ = writeln!(
                out,
                "0x{:x} {} session 0x{:x} {}",
                header.zxid,
                format_time(header.time),
                header.session_id,
                describe(&txn)
            );
            printed += 1;
        }
    }
    Ok(printed)
}

/// A change record in one line.
pub fn describe(txn: &Txn) -> String {
    match txn {
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            let acl: Vec<String> = acl
                .iter()
                .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
                .collect();
            format!(
                "create {path} data={} acl=[{}] owner=0x{:x} parent_cversion={parent_cversion}",
                show_data(data),
                acl.join(","),
                ephemeral_owner
            )
        }
        Txn::Delete { path } => format!("delete {path}"),
        Txn::SetData {
            path,
            data,
            version,
        } => format!("setData {path} data={} version={version}", show_data(data)),
        Txn::SetAcl { path, acl, version } => {
            format!("setAcl {path} entries={} version={version}", acl.len())
        }
        Txn::Check { path } => format!("check {path}"),
        Txn::CreateSession {
            session_id,
            timeout_ms,
        } => format!("createSession 0x{session_id:x} timeout={timeout_ms}ms"),
        Txn::CloseSession { session_id } => format!("closeSession 0x{session_id:x}"),
        Txn::Multi(parts) => {
            let parts: Vec<String> = parts.iter().map(describe).collect();
            format!("multi [{}]", parts.join("; "))
        }
        Txn::Error { code } => format!("error {code}"),
    }
}

fn show_data(data: &Option<Bytes>) -> String {
    match data {
        None => "null".into(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if text.len() <= 64 => format!("{text:?}"),
            Ok(text) => format!(
                "{:?}…({} bytes)",
                &text[..text.floor_char_boundary_compat(64)],
                bytes.len()
            ),
            Err(_) => format!("<{} bytes>", bytes.len()),
        },
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut index: usize) -> usize {
        while index > 0 && !self.is_char_boundary(index) {
            index -= 1;
        }
        index
    }
}

/// `2026-11-22 01:02:03.456 UTC` from Unix milliseconds.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Checks every file: every snapshot read in full, then recovery from the
/// newest without changing anything. Returns a report, or the first damage.
pub fn verify(dir: &Path) -> Result<String, StorageError> {
    let mut out = String::new();
    for file in files::snapshots(dir).map_err(|e| StorageError::io(dir, e))? {
        let loaded = snapshot::read(&file.path)?;
        let _ = writeln!(
            out,
            "ok  {}  ({} nodes, {} sessions)",
            name(&file.path),
            loaded.tree.node_count(),
            loaded.sessions.len()
        );
    }
    let segments = files::segments(dir).map_err(|e| StorageError::io(dir, e))?;
    for (i, file) in segments.iter().enumerate() {
        let bytes = std::fs::read(&file.path).map_err(|e| StorageError::io(&file.path, e))?;
        // Only the newest segment may end in a torn write, as in recovery.
        let mut frames = Frames::new(&bytes, LOG_MAGIC.len(), i + 1 == segments.len());
        let mut count = 0;
        while let Some(frame) = frames
            .next_frame()
            .map_err(|d| StorageError::damaged(&file.path, d.offset, d.reason))?
        {
            record::decode(frame.zxid, frame.body)
                .map_err(|reason| StorageError::damaged(&file.path, frame.offset, reason))?;
            count += 1;
        }
        let _ = writeln!(out, "ok  {}  ({count} records)", name(&file.path));
    }
    let recovered = recovery::recover(dir, false)?;
    let _ = writeln!(
        out,
        "recovery: {} nodes, {} sessions, last zxid 0x{:x}, {} records replayed{}",
        recovered.tree.node_count(),
        recovered.sessions.len(),
        recovered.last_zxid,
        recovered.replayed,
        match &recovered.truncated {
            Some((path, offset)) => format!(
                "; torn tail in {} at offset {offset} would be cut",
                name(path)
            ),
            None => String::new(),
        }
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            format_time(1_795_000_000_123),
            "2026-11-18 11:06:40.123 UTC"
        );
    }
}

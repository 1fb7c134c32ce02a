//! The files of a data folder and their names. Like ZooKeeper's, a log
//! segment is named after the first zxid it holds and a snapshot after the
//! last zxid it contains, in hex, so that sorting by name sorts by zxid:
//!
//! ```text
//! log.0000000100000001        change records from zxid 0x100000001 on
//! snapshot.00000001000186a0   the tree and sessions as of zxid 0x1000186a0
//! ```

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// First bytes of a log segment.
pub const LOG_MAGIC: &[u8; 8] = b"CNPYLOG\x01";
/// First bytes of a snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CNPYSNP\x01";

const LOG_PREFIX: &str = "log.";
const SNAPSHOT_PREFIX: &str = "snapshot.";

/// A log segment or snapshot found in the data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    /// The zxid in its name.
    pub zxid: i64,
}

pub fn log_path(dir: &Path, first_zxid: i64) -> PathBuf {
    dir.join(format!("{LOG_PREFIX}{first_zxid:016x}"))
}

pub fn snapshot_path(dir: &Path, zxid: i64) -> PathBuf {
    dir.join(format!("{SNAPSHOT_PREFIX}{zxid:016x}"))
}

fn list(dir: &Path, prefix: &str) -> io::Result<Vec<DataFile>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Half-written snapshots end in `.tmp` and fail to parse here.
        let Some(hex) = name.strip_prefix(prefix) else {
            continue;
        };
        if let Ok(zxid) = u64::from_str_radix(hex, 16) {
            found.push(DataFile {
                path: entry.path(),
                zxid: zxid as i64,
            });
        }
    }
    found.sort_by_key(|file| file.zxid);
    Ok(found)
}

/// Log segments, oldest first.
pub fn segments(dir: &Path) -> io::Result<Vec<DataFile>> {
    list(dir, LOG_PREFIX)
}

/// Snapshots, oldest first.
pub fn snapshots(dir: &Path) -> io::Result<Vec<DataFile>> {
    list(dir, SNAPSHOT_PREFIX)
}

/// Makes a new or renamed file's directory entry durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The epoch of a zxid: its high 32 bits, bumped on every start.
pub fn epoch(zxid: i64) -> i64 {
    zxid >> 32
}

/// The counter of a zxid within its epoch.
pub fn counter(zxid: i64) -> i64 {
    zxid & 0xffff_ffff
}

/// Whether `next` may follow `previous` in the log: the next counter in the
/// same epoch, or the first of a later epoch.
pub fn follows(previous: i64, next: i64) -> bool {
    next == previous + 1 && counter(next) != 0
        || epoch(next) > epoch(previous) && counter(next) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_zxid() {
        let dir = tempfile::tempdir().unwrap();
        for zxid in [0x2_0000_0001_i64, 0x1_0000_00ff, 0x1_0000_0001] {
            std::fs::write(log_path(dir.path(), zxid), b"").unwrap();
        }
        std::fs::write(dir.path().join("snapshot.00000001000000ff.tmp"), b"").unwrap();
        std::fs::write(snapshot_path(dir.path(), 0x1_0000_0010), b"").unwrap();
        let zxids: Vec<i64> = segments(dir.path())
            .unwrap()
            .iter()
            .map(|f| f.zxid)
            .collect();
        assert_eq!(zxids, [0x1_0000_0001, 0x1_0000_00ff, 0x2_0000_0001]);
        assert_eq!(snapshots(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn zxids_follow_within_and_across_epochs() {
        assert!(follows(0x1_0000_0005, 0x1_0000_0006));
        assert!(follows(0x1_0000_0005, 0x3_0000_0001));
        assert!(!follows(0x1_0000_0005, 0x1_0000_0007));
        assert!(!follows(0x1_0000_0005, 0x2_0000_0002));
        assert!(follows(0, 0x1_0000_0001));
    }
}

//! Durability: the write-ahead log, snapshots and recovery.
//!
//! # Layout
//! - [`frame`]: the record framing (length, zxid, checksums) of every file.
//! - [`record`]: a change record ([`crate::txn::Txn`]) as bytes.
//! - [`files`]: file names in the data folder, zxid epochs.
//! - [`wal`]: the log writer thread and its group commit.
//! - [`direct`]: the log's records written with direct I/O.
//! - [`snapshot`]: writing and reading snapshots.
//! - [`recovery`]: rebuilding the state at start-up.
//! - [`inspect`]: what `canopy data` prints.
//!
//! The path of a change: the core applies it to the tree and hands it to
//! [`Storage::log`], which appends it to the pending batch; the writer thread
//! writes and fsyncs the batch and raises the durable watermark; only then do
//! the connections send the replies and notifications that depend on it.

pub mod direct;
pub mod files;
pub mod frame;
pub mod inspect;
pub mod record;
pub mod recovery;
pub mod snapshot;
pub mod wal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::tree::FrozenNodes;
use crate::txn::{Txn, TxnHeader};
pub use recovery::Recovered;
pub use wal::Wal;

/// Why the data folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is damaged at byte offset {offset}: {reason}", path.display())]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn damaged(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Damaged {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}

/// A snapshot to write: a frozen view taken under the core's lock.
pub struct SnapshotJob {
    pub zxid: i64,
    pub nodes: FrozenNodes,
    pub sessions: BTreeMap<i64, i32>,
    /// How long taking the frozen view held the core's lock.
    pub frozen_in: std::time::Duration,
}

/// The storage of a running server.
pub struct Storage {
    wal: Wal,
    dir: PathBuf,
    durable: Arc<watch::Sender<i64>>,
    snapshot_every_txns: u64,
    snapshot_every_log_bytes: u64,
    snapshots_retained: usize,
    txns_since_snapshot: u64,
    bytes_since_snapshot: u64,
    snapshot_running: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Storage {
    /// Reads the data folder (repairing a torn tail) and starts the log
    /// writer. `durable` starts at the recovered zxid.
    pub fn open(
        config: &Config,
        durable: Arc<watch::Sender<i64>>,
        metrics: Arc<Metrics>,
    ) -> Result<(Recovered, Storage), StorageError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let recovered = recovery::recover(&dir, true)?;
        let wal = Wal::start(
            wal::WalSettings {
                dir: dir.clone(),
                fsync: config.fsync,
                segment_bytes: config.log_segment_bytes,
                metrics: metrics.clone(),
            },
            durable.clone(),
        )
        .map_err(|e| StorageError::io(&dir, e))?;
        let storage = Storage {
            wal,
            dir,
            durable,
            snapshot_every_txns: config.snapshot_every_txns.max(1),
            snapshot_every_log_bytes: config.snapshot_every_log_bytes.max(1),
            snapshots_retained: config.snapshots_retained.max(1),
            // A start that replayed log records snapshots soon, so the next
            // start has less to replay.
            txns_since_snapshot: recovered.replayed,
            bytes_since_snapshot: 0,
            snapshot_running: Arc::new(AtomicBool::new(false)),
            metrics,
        };
        Ok((recovered, storage))
    }

    /// Queues a change record for the log.
    pub fn log(&mut self, header: &TxnHeader, txn: &Txn) {
        let bytes = self.wal.append(header, txn);
        self.txns_since_snapshot += 1;
        self.bytes_since_snapshot += bytes as u64;
    }

    /// A handle for connections to flush their own changes through.
    pub fn flusher(&self) -> wal::LogFlusher {
        self.wal.flusher()
    }

    /// Whether enough has been logged since the last snapshot to take one
    /// (and none is being written).
    pub fn snapshot_due(&self) -> bool {
        (self.txns_since_snapshot >= self.snapshot_every_txns
            || self.bytes_since_snapshot >= self.snapshot_every_log_bytes)
            && !self.snapshot_running.load(Ordering::Acquire)
    }

    /// Writes a snapshot in the background, then purges what it makes
    /// unnecessary.
    pub fn start_snapshot(&mut self, job: SnapshotJob) {
        if self.snapshot_running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.txns_since_snapshot = 0;
        self.bytes_since_snapshot = 0;
        let dir = self.dir.clone();
        let retained = self.snapshots_retained;
        let running = self.snapshot_running.clone();
        let mut durable = self.durable.subscribe();
        let metrics = self.metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("canopy-snapshot".into())
            .spawn(move || {
                // A snapshot never gets ahead of the log: wait until every
                // change it contains is on disk.
                let zxid = job.zxid;
                let frozen_micros = job.frozen_in.as_micros() as u64;
                let _ = futures::executor::block_on(durable.wait_for(|d| *d >= zxid));
                let content = snapshot::SnapshotContent {
                    zxid,
                    nodes: job.nodes,
                    sessions: job.sessions,
                };
                let started = std::time::Instant::now();
                match snapshot::write(&dir, &content, crate::core::wall_clock_ms()) {
                    Ok(path) => {
                        metrics.record_snapshot(started.elapsed());
                        tracing::info!(
                            path = %path.display(),
                            nodes = content.nodes.len(),
                            millis = started.elapsed().as_millis() as u64,
                            lock_micros = frozen_micros,
                            "snapshot written"
                        );
                        drop(content);
                        if let Err(err) = purge(&dir, retained) {
                            tracing::warn!(%err, "could not purge old snapshots and logs");
                        }
                    }
                    Err(err) => {
                        tracing::error!(%err, "snapshot failed; the log still has every change")
                    }
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.snapshot_running.store(false, Ordering::Release);
        }
    }

    /// Writes what is queued and stops the log writer.
    pub fn close(&mut self) {
        self.wal.close();
    }
}

/// Keeps the newest `retained` snapshots and the log segments needed to
/// replay from the oldest of them; deletes the rest (ZooKeeper's autopurge).
pub fn purge(dir: &Path, retained: usize) -> std::io::Result<()> {
    let snapshots = files::snapshots(dir)?;
    if snapshots.len() <= retained {
        return Ok(());
    }
    let (old, kept) = snapshots.split_at(snapshots.len() - retained);
    for snapshot in old {
        std::fs::remove_file(&snapshot.path)?;
    }
    let oldest_kept = kept[0].zxid;
    let segments = files::segments(dir)?;
    for pair in segments.windows(2) {
        // Everything in pair[0] comes before pair[1]'s first zxid.
        if pair[1].zxid <= oldest_kept + 1 {
            std::fs::remove_file(&pair[0].path)?;
        }
    }
    // Leftovers of snapshots interrupted by a crash.
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snapshot.") && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_keeps_the_newest_snapshots_and_the_log_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for zxid in [
            0x1_0000_0001_i64,
            0x1_0000_0100,
            0x1_0000_0200,
            0x1_0000_0300,
        ] {
            std::fs::write(files::log_path(d, zxid), b"").unwrap();
        }
        for zxid in [0x1_0000_00ff_i64, 0x1_0000_01ff, 0x1_0000_0250] {
            std::fs::write(files::snapshot_path(d, zxid), b"").unwrap();
        }
        std::fs::write(d.join("snapshot.0000000100000260.tmp"), b"").unwrap();
        purge(d, 2).unwrap();
        let snapshots: Vec<i64> = files::snapshots(d)
            .unwrap()
            .iter()
            .map(|f| f.zxid)
            .collect();
        assert_eq!(snapshots, [0x1_0000_01ff, 0x1_0000_0250]);
        // Replaying from 0x1000001ff needs 0x100000200 on: the segment
        // 0x100000100 ends at 0x1000001ff and goes.
        let segments: Vec<i64> = files::segments(d).unwrap().iter().map(|f| f.zxid).collect();
        assert_eq!(segments, [0x1_0000_0200, 0x1_0000_0300]);
        assert!(!d.join("snapshot.0000000100000260.tmp").exists());
    }
}

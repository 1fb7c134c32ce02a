//! The write-ahead log: change records appended to segment files by one
//! writer thread, with group commit.
//!
//! The core encodes each record straight into a shared pending buffer (under
//! its own lock, so records are in zxid order). The writer thread swaps that
//! buffer out, writes it with one `write`, fsyncs once, and then raises the
//! *durable* watermark to the last zxid of the batch. Connections release a
//! reply or notification only once the watermark has passed the zxid it
//! depends on, so nothing a client sees can be lost by a crash. Whatever
//! queues up during one fsync goes into the next batch: the busier the
//! server, the more records share an fsync.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::files::{self, LOG_MAGIC};
use super::{frame, record};
use crate::metrics::Metrics;
use crate::txn::{Txn, TxnHeader};

/// How the log is written.
#[derive(Debug, Clone)]
pub struct WalSettings {
    pub dir: PathBuf,
    /// fsync each batch before acknowledging it.
    pub fsync: bool,
    /// Start a new segment once the current one is this large.
    pub segment_bytes: u64,
    /// Where fsync times are recorded.
    pub metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    records: u64,
    /// When the oldest record of the batch was appended (for the
    /// queue-and-flush time).
    first_appended: Option<std::time::Instant>,
    first_zxid: i64,
    last_zxid: i64,
    closing: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// The log, as the core holds it.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl Wal {
    /// Starts the writer thread. `durable` is raised as batches reach disk.
    pub fn start(settings: WalSettings, durable: Arc<watch::Sender<i64>>) -> std::io::Result<Wal> {
        if !settings.fsync {
            tracing::warn!(
                "fsync is OFF: acknowledged writes can be lost if the machine crashes. \
                 Use this for benchmarks only."
            );
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
        });
        let writer = std::thread::Builder::new().name("canopy-wal".into()).spawn({
            let shared = shared.clone();
            move || {
                if let Err(err) = write_loop(&settings, &shared, &durable) {
                    // The log is the promise behind every acknowledgement: a
                    // server that cannot keep it must stop, as ZooKeeper does.
                    tracing::error!(%err, dir = %settings.dir.display(), "cannot write the log; stopping");
                    std::process::exit(3);
                }
            }
        })?;
        Ok(Wal {
            shared,
            writer: Some(writer),
        })
    }

    /// Queues one change record; returns its size in bytes. It is on disk
    /// once the durable watermark reaches its zxid.
    pub fn append(&self, header: &TxnHeader, txn: &Txn) -> usize {
        let mut pending = self.shared.pending.lock();
        let before = pending.buf.len();
        if pending.records == 0 {
            pending.first_zxid = header.zxid;
            pending.first_appended = Some(std::time::Instant::now());
        }
        let at = frame::start(&mut pending.buf);
        record::encode(header, txn, &mut pending.buf);
        frame::finish(&mut pending.buf, at, header.zxid);
        pending.last_zxid = header.zxid;
        pending.records += 1;
        let written = pending.buf.len() - before;
        drop(pending);
        self.shared.wake.notify_one();
        written
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&mut self) {
        self.shared.pending.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Zeros written ahead of the records at a time (with fsync on).
///
/// fdatasync after an append that grows the file must also commit the new
/// size (and, for fallocated or sparse space, the extent state) to the file
/// system's journal. Records written over zeros that are already on disk
/// leave the metadata alone, so each fsync flushes the data only. ZooKeeper
/// pads its logs the same way.
const PREALLOCATE_BYTES: u64 = 4 << 20;

/// The segment being appended to.
struct Segment {
    file: File,
    /// Where the records end (the next one goes here).
    len: u64,
    /// Zeros are on disk up to here.
    zeroed_to: u64,
}

impl Segment {
    /// Keeps at least half a chunk of zeros ahead of the records, without
    /// going past where the segment will roll. Runs after a batch is
    /// acknowledged, so it delays no reply already waiting.
    fn preallocate(&mut self, settings: &WalSettings) -> std::io::Result<()> {
        if !settings.fsync
            || self.zeroed_to >= settings.segment_bytes
            || self.zeroed_to.saturating_sub(self.len) >= PREALLOCATE_BYTES / 2
        {
            return Ok(());
        }
        let from = self.zeroed_to.max(self.len);
        let to = (from + PREALLOCATE_BYTES).min(settings.segment_bytes);
        if to <= from {
            return Ok(());
        }
        let zeros = vec![0u8; (to - from) as usize];
        self.file.write_all_at(&zeros, from)?;
        self.file.sync_data()?;
        self.zeroed_to = to;
        Ok(())
    }

    /// Cuts the unused zeros off, so that only the newest segment (the one
    /// being written when a crash comes) can end in preallocated space.
    fn trim(&mut self, settings: &WalSettings) -> std::io::Result<()> {
        if self.zeroed_to > self.len {
            self.file.set_len(self.len)?;
            if settings.fsync {
                self.file.sync_all()?;
            }
            self.zeroed_to = self.len;
        }
        Ok(())
    }
}

fn open_segment(settings: &WalSettings, first_zxid: i64) -> std::io::Result<Segment> {
    let path = files::log_path(&settings.dir, first_zxid);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.write_all(LOG_MAGIC)?;
    if settings.fsync {
        file.sync_data()?;
        files::sync_dir(&settings.dir)?;
    }
    tracing::debug!(path = %path.display(), "new log segment");
    let mut segment = Segment {
        file,
        len: LOG_MAGIC.len() as u64,
        zeroed_to: LOG_MAGIC.len() as u64,
    };
    segment.preallocate(settings)?;
    Ok(segment)
}

fn write_loop(
    settings: &WalSettings,
    shared: &Shared,
    durable: &watch::Sender<i64>,
) -> std::io::Result<()> {
    let mut segment: Option<Segment> = None;
    let mut batch = Vec::new();
    loop {
        let (first_zxid, last_zxid, records, first_appended) = {
            let mut pending = shared.pending.lock();
            while pending.records == 0 && !pending.closing {
                shared.wake.wait(&mut pending);
            }
            if pending.records == 0 {
                if let Some(current) = segment.as_mut() {
                    current.trim(settings)?;
                }
                return Ok(());
            }
            std::mem::swap(&mut pending.buf, &mut batch);
            let taken = (
                pending.first_zxid,
                pending.last_zxid,
                pending.records,
                pending.first_appended.take(),
            );
            pending.records = 0;
            taken
        };
        let roll = segment
            .as_ref()
            .is_none_or(|s| s.len >= settings.segment_bytes);
        if roll {
            // The old segment is trimmed (durably) before the new one exists.
            if let Some(old) = segment.as_mut() {
                old.trim(settings)?;
            }
            segment = Some(open_segment(settings, first_zxid)?);
        }
        let Some(current) = segment.as_mut() else {
            continue;
        };
        current.file.write_all_at(&batch, current.len)?;
        current.len += batch.len() as u64;
        if settings.fsync {
            let started = std::time::Instant::now();
            current.file.sync_data()?;
            settings.metrics.record_fsync(started.elapsed());
        }
        durable.send_replace(last_zxid);
        // Group commit, as ZooKeeper's SyncRequestProcessor reports it: records
        // per batch, and how long the oldest waited to be written and synced.
        settings.metrics.record_log_batch(
            records,
            first_appended.map(|t| t.elapsed()).unwrap_or_default(),
        );
        batch.clear();
        current.preallocate(settings)?;
    }
}

/// Cuts a segment back to `len` bytes (a torn tail found at start-up) and
/// makes the cut durable.
pub fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::recovery;

    fn settings(dir: &Path, segment_bytes: u64) -> WalSettings {
        WalSettings {
            dir: dir.to_path_buf(),
            fsync: true,
            segment_bytes,
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Logs creates of /n1../nN (zxids 0x100000001 on) and waits until they
    /// are durable.
    fn log_creates(wal: &Wal, durable: &watch::Sender<i64>, from: i64, to: i64) {
        for n in from..=to {
            let header = TxnHeader {
                zxid: 0x1_0000_0000 + n,
                time: 1000,
                session_id: 0,
            };
            let txn = Txn::Create {
                path: format!("/n{n}"),
                data: Some(bytes::Bytes::from_static(b"some data")),
                acl: Vec::new(),
                ephemeral_owner: 0,
                parent_cversion: n as i32,
            };
            wal.append(&header, &txn);
        }
        let mut seen = durable.subscribe();
        let last = 0x1_0000_0000 + to;
        futures::executor::block_on(seen.wait_for(|d| *d >= last)).unwrap();
    }

    /// The folder as a crash would leave it now.
    fn crash_copy(from: &Path) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        }
        to
    }

    fn sizes(dir: &Path) -> Vec<u64> {
        files::segments(dir)
            .unwrap()
            .iter()
            .map(|s| std::fs::metadata(&s.path).unwrap().len())
            .collect()
    }

    #[test]
    fn a_crash_inside_preallocated_space_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(watch::channel(0).0);
        let mut wal = Wal::start(settings(dir.path(), 64 << 20), durable.clone()).unwrap();
        log_creates(&wal, &durable, 1, 20);
        let crashed = crash_copy(dir.path());
        // The records sit in front of zeros written ahead of them.
        let preallocated = sizes(crashed.path());
        assert_eq!(preallocated, [LOG_MAGIC.len() as u64 + PREALLOCATE_BYTES]);
        let recovered = recovery::recover(crashed.path(), true).unwrap();
        assert_eq!(recovered.last_zxid, 0x1_0000_0014);
        assert_eq!(recovered.replayed, 20);
        // Unused space is not a torn write; it is trimmed all the same.
        assert!(recovered.truncated.is_none());
        assert!(sizes(crashed.path())[0] < 4096);
        // Still readable after the trim, and the writer appends after it.
        assert_eq!(
            recovery::recover(crashed.path(), true).unwrap().replayed,
            20
        );

        // A clean close trims the segment to its records.
        log_creates(&wal, &durable, 21, 25);
        wal.close();
        let closed = sizes(dir.path());
        assert!(closed[0] < 4096, "{closed:?}");
        let recovered = recovery::recover(dir.path(), false).unwrap();
        assert_eq!(recovered.last_zxid, 0x1_0000_0019);
        assert!(recovered.truncated.is_none());
    }

    #[test]
    fn rolled_segments_keep_no_preallocated_space() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(watch::channel(0).0);
        // Small segments: a roll every few records.
        let mut wal = Wal::start(settings(dir.path(), 300), durable.clone()).unwrap();
        for n in 1..=30 {
            log_creates(&wal, &durable, n, n);
        }
        let crashed = crash_copy(dir.path());
        let segments = sizes(crashed.path());
        assert!(segments.len() > 3, "{segments:?}");
        // Only the newest may end in zeros; a roll trimmed the others.
        let files = files::segments(crashed.path()).unwrap();
        for file in &files[..files.len() - 1] {
            let bytes = std::fs::read(&file.path).unwrap();
            assert_ne!(bytes.last(), Some(&0), "{}", file.path.display());
        }
        let recovered = recovery::recover(crashed.path(), true).unwrap();
        assert_eq!(recovered.replayed, 30);
        wal.close();
        let recovered = recovery::recover(dir.path(), false).unwrap();
        assert_eq!(recovered.replayed, 30);
    }

    #[test]
    fn a_record_torn_inside_preallocated_space_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(watch::channel(0).0);
        let wal = Wal::start(settings(dir.path(), 64 << 20), durable.clone()).unwrap();
        log_creates(&wal, &durable, 1, 3);
        let crashed = crash_copy(dir.path());
        let path = &files::segments(crashed.path()).unwrap()[0].path;
        let bytes = std::fs::read(path).unwrap();
        let mut frames = frame::Frames::new(&bytes, LOG_MAGIC.len(), true);
        let mut offsets = Vec::new();
        while let Some(frame) = frames.next_frame().unwrap() {
            offsets.push(frame.offset);
        }
        let end = frames.torn.as_ref().unwrap().offset as usize;
        // Zero the second half of the last record, as a crash mid-write can.
        let last = offsets[2] as usize;
        let mut torn = bytes.clone();
        torn[(last + end) / 2..end].fill(0);
        std::fs::write(path, &torn).unwrap();
        let recovered = recovery::recover(crashed.path(), true).unwrap();
        assert_eq!(recovered.replayed, 2);
        assert_eq!(recovered.truncated.unwrap().1, last as u64);
        drop(wal);
    }
}

//! The write-ahead log: change records appended to segment files, with group
//! commit.
//!
//! The core encodes each record straight into a shared pending buffer (under
//! its own lock, so records are in zxid order). A writer (the log's thread,
//! or a connection flushing its own changes while that thread is parked, see
//! [`LogFlusher`]) swaps that buffer out, writes it with one `write`, fsyncs
//! once, and then raises the *durable* watermark to the last zxid of the
//! batch. Connections release a
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

use super::direct::{self, DirectFile};
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
    /// Connections between [`LogFlusher::defer`] and the guard's drop: an
    /// append then leaves waking the writer thread to that drop.
    deferring: u32,
    /// The writer thread is parked, waiting for records.
    writer_idle: bool,
    /// A connection's flush left work to the writer thread (a segment to
    /// roll, zeros to write ahead).
    upkeep: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// The open segment; whoever holds it writes the next batch (the writer
    /// thread, or a connection flushing inline).
    writer: Mutex<Writer>,
    settings: WalSettings,
    durable: Arc<watch::Sender<i64>>,
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
            writer: Mutex::new(Writer::default()),
            settings,
            durable,
        });
        let writer = std::thread::Builder::new()
            .name("canopy-wal".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    if let Err(err) = write_loop(&shared) {
                        stop_on_log_error(&shared, err);
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
        let wake_now = pending.deferring == 0;
        drop(pending);
        if wake_now {
            self.shared.wake.notify_one();
        }
        written
    }

    /// A handle for connections to flush through.
    pub fn flusher(&self) -> LogFlusher {
        LogFlusher {
            shared: self.shared.clone(),
        }
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

/// The log writer, to stop on an error: the log is the promise behind every
/// acknowledgement, and a server that cannot keep it must stop, as
/// ZooKeeper does.
fn stop_on_log_error(shared: &Shared, err: std::io::Error) -> ! {
    tracing::error!(%err, dir = %shared.settings.dir.display(), "cannot write the log; stopping");
    std::process::exit(3);
}

/// A connection's way to write its own changes to the log.
///
/// A lone client waiting for one write pays for two thread hand-offs when
/// the writer thread does the write: waking that thread, and that thread
/// waking the connection's task once the fsync is done. Each costs tens of
/// microseconds here, as much as the fsync itself. So a connection whose
/// requests logged changes, finding the writer thread parked, writes and
/// fsyncs the batch itself, on its own thread, and its replies go out from
/// there. A busy writer thread (the server under load) keeps the group
/// commit: the connection leaves its records to that thread's next batch.
#[derive(Clone)]
pub struct LogFlusher {
    shared: Arc<Shared>,
}

impl LogFlusher {
    /// Holds back the writer thread's wake-up for records appended until the
    /// returned guard drops; the drop then flushes them or wakes the thread.
    pub fn defer(&self) -> DeferredFlush<'_> {
        self.shared.pending.lock().deferring += 1;
        DeferredFlush { flusher: self }
    }

    fn flush_or_wake(&self) {
        let shared = &*self.shared;
        let mut pending = shared.pending.lock();
        pending.deferring -= 1;
        if pending.records == 0 {
            return;
        }
        let writer_busy = !pending.writer_idle;
        drop(pending);
        if writer_busy {
            // It is writing a batch and takes these records next.
            shared.wake.notify_one();
            return;
        }
        let Some(mut writer) = shared.writer.try_lock() else {
            // Another connection is flushing; the thread takes what is left.
            shared.wake.notify_one();
            return;
        };
        match writer.flush(shared, Flusher::Connection) {
            Ok(Flushed::Done) => {}
            Ok(Flushed::UpkeepDue) => {
                drop(writer);
                shared.pending.lock().upkeep = true;
                shared.wake.notify_one();
            }
            Err(err) => stop_on_log_error(shared, err),
        }
    }
}

/// Returned by [`LogFlusher::defer`].
pub struct DeferredFlush<'a> {
    flusher: &'a LogFlusher,
}

impl Drop for DeferredFlush<'_> {
    fn drop(&mut self) {
        self.flusher.flush_or_wake();
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
    /// The same file opened for direct writes (with fsync on, where the
    /// file system allows it); see [`direct`].
    direct: Option<DirectFile>,
    /// Where the records end (the next one goes here).
    len: u64,
    /// Zeros are on disk up to here.
    zeroed_to: u64,
}

impl Segment {
    /// Writes a batch where the records end. Directly, when the write's
    /// padding to a whole block falls on zeros already on disk; otherwise
    /// through the page cache.
    fn write(&mut self, batch: &[u8]) -> std::io::Result<()> {
        let at = self.len;
        let over_zeros = direct::round_up(at + batch.len() as u64) <= self.zeroed_to;
        match self.direct.as_mut() {
            Some(file) if over_zeros => {
                if file.write(batch, at)? {
                    self.len += batch.len() as u64;
                    return Ok(());
                }
                // Refused by the file system: not worth trying again.
                self.direct = None;
            }
            Some(file) => file.written_elsewhere(batch, at),
            None => {}
        }
        self.file.write_all_at(batch, at)?;
        self.len += batch.len() as u64;
        Ok(())
    }

    /// Keeps at least half a chunk of zeros ahead of the records, without
    /// going past where the segment will roll. Runs after a batch is
    /// acknowledged, so it delays no reply already waiting.
    fn preallocate(&mut self, settings: &WalSettings) -> std::io::Result<()> {
        if !self.preallocate_due(settings) {
            return Ok(());
        }
        let from = self.zeroed_to.max(self.len);
        // Ending on a block boundary lets direct writes use the last block.
        let to = ((from + PREALLOCATE_BYTES) / direct::BLOCK * direct::BLOCK)
            .min(settings.segment_bytes);
        if to <= from {
            return Ok(());
        }
        let zeros = vec![0u8; (to - from) as usize];
        self.file.write_all_at(&zeros, from)?;
        self.file.sync_data()?;
        self.zeroed_to = to;
        Ok(())
    }

    /// Whether fewer zeros than half a chunk are left ahead of the records.
    fn preallocate_due(&self, settings: &WalSettings) -> bool {
        settings.fsync
            && self.zeroed_to < settings.segment_bytes
            && self.zeroed_to.saturating_sub(self.len) < PREALLOCATE_BYTES / 2
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
    let direct = if settings.fsync {
        DirectFile::open(&path, LOG_MAGIC)
    } else {
        None
    };
    let mut segment = Segment {
        file,
        direct,
        len: LOG_MAGIC.len() as u64,
        zeroed_to: LOG_MAGIC.len() as u64,
    };
    segment.preallocate(settings)?;
    Ok(segment)
}

/// Who is flushing: the writer thread does everything; a connection only
/// writes and fsyncs a batch that fits the segment as it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flusher {
    Thread,
    Connection,
}

/// What a connection's flush left to the writer thread.
enum Flushed {
    Done,
    UpkeepDue,
}

/// The writer's side of the log.
#[derive(Default)]
struct Writer {
    segment: Option<Segment>,
    /// The batch being written (swapped with the pending buffer).
    batch: Vec<u8>,
}

impl Writer {
    /// Writes and fsyncs what is pending as one batch, then raises the
    /// durable watermark. A connection leaves a batch that needs a new
    /// segment or more zeros ahead to the thread (`UpkeepDue`), and the
    /// zeroing after a batch too.
    fn flush(&mut self, shared: &Shared, by: Flusher) -> std::io::Result<Flushed> {
        let settings = &shared.settings;
        let (first_zxid, last_zxid, records, first_appended) = {
            let mut pending = shared.pending.lock();
            if pending.records == 0 {
                return Ok(Flushed::Done);
            }
            if by == Flusher::Connection && !self.fits(pending.buf.len() as u64, settings) {
                return Ok(Flushed::UpkeepDue);
            }
            std::mem::swap(&mut pending.buf, &mut self.batch);
            let taken = (
                pending.first_zxid,
                pending.last_zxid,
                pending.records,
                pending.first_appended.take(),
            );
            pending.records = 0;
            taken
        };
        let roll = self
            .segment
            .as_ref()
            .is_none_or(|s| s.len >= settings.segment_bytes);
        if roll {
            // The old segment is trimmed (durably) before the new one exists.
            if let Some(old) = self.segment.as_mut() {
                old.trim(settings)?;
            }
            self.segment = Some(open_segment(settings, first_zxid)?);
        }
        let Some(current) = self.segment.as_mut() else {
            return Ok(Flushed::Done);
        };
        current.write(&self.batch)?;
        if settings.fsync {
            let started = std::time::Instant::now();
            current.file.sync_data()?;
            settings.metrics.record_fsync(started.elapsed());
        }
        shared.durable.send_replace(last_zxid);
        // Group commit, as ZooKeeper's SyncRequestProcessor reports it: records
        // per batch, and how long the oldest waited to be written and synced.
        settings.metrics.record_log_batch(
            records,
            first_appended.map(|t| t.elapsed()).unwrap_or_default(),
        );
        self.batch.clear();
        match by {
            Flusher::Thread => current.preallocate(settings)?,
            Flusher::Connection if current.preallocate_due(settings) => {
                return Ok(Flushed::UpkeepDue)
            }
            Flusher::Connection => {}
        }
        Ok(Flushed::Done)
    }

    /// Whether a batch of `bytes` goes into the open segment over zeros
    /// already on disk (or with fsync off, anywhere before the roll).
    fn fits(&self, bytes: u64, settings: &WalSettings) -> bool {
        self.segment.as_ref().is_some_and(|s| {
            s.len < settings.segment_bytes && (!settings.fsync || s.len + bytes <= s.zeroed_to)
        })
    }
}

/// The writer thread: flushes whatever connections left to it, in batches
/// (group commit), and keeps the segment ready for them (rolls, zeros
/// ahead).
fn write_loop(shared: &Shared) -> std::io::Result<()> {
    loop {
        let closing = {
            let mut pending = shared.pending.lock();
            pending.writer_idle = true;
            while pending.records == 0 && !pending.closing && !pending.upkeep {
                shared.wake.wait(&mut pending);
            }
            pending.writer_idle = false;
            pending.upkeep = false;
            pending.closing && pending.records == 0
        };
        let mut writer = shared.writer.lock();
        if closing {
            if let Some(current) = writer.segment.as_mut() {
                current.trim(&shared.settings)?;
            }
            return Ok(());
        }
        writer.flush(shared, Flusher::Thread)?;
        if let Some(current) = writer.segment.as_mut() {
            // After a connection's flush, which leaves the zeroing here.
            current.preallocate(&shared.settings)?;
        }
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
        append_creates(wal, from, to);
        let mut seen = durable.subscribe();
        let last = 0x1_0000_0000 + to;
        futures::executor::block_on(seen.wait_for(|d| *d >= last)).unwrap();
    }

    /// Queues creates of /n1../nN (zxids 0x100000001 on) without waiting.
    fn append_creates(wal: &Wal, from: i64, to: i64) {
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
    }

    /// Waits until the writer thread is parked, waiting for records.
    fn wait_until_idle(wal: &Wal) {
        while !wal.shared.pending.lock().writer_idle {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
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
        assert_eq!(preallocated, [PREALLOCATE_BYTES]);
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
    fn a_connection_flushes_its_own_batch_while_the_writer_thread_sleeps() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(watch::channel(0).0);
        let wal = Wal::start(settings(dir.path(), 64 << 20), durable.clone()).unwrap();
        // The thread opens the segment and writes zeros ahead.
        log_creates(&wal, &durable, 1, 1);
        wait_until_idle(&wal);
        let flusher = wal.flusher();
        {
            let _deferred = flusher.defer();
            append_creates(&wal, 2, 5);
            assert_eq!(*durable.borrow(), 0x1_0000_0001, "nothing written yet");
        }
        // Durable when the guard is gone: written and synced on this
        // thread, with no hand-off to the writer thread and back.
        assert_eq!(*durable.borrow(), 0x1_0000_0005);
        let crashed = crash_copy(dir.path());
        let recovered = recovery::recover(crashed.path(), true).unwrap();
        assert_eq!(recovered.replayed, 5);
        assert!(recovered.truncated.is_none());
    }

    #[test]
    fn connections_leave_rolls_and_zeroing_to_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let durable = Arc::new(watch::channel(0).0);
        // Small segments: a roll every few records.
        let mut wal = Wal::start(settings(dir.path(), 300), durable.clone()).unwrap();
        let flusher = wal.flusher();
        let mut seen = durable.subscribe();
        for n in 1..=30 {
            let deferred = flusher.defer();
            append_creates(&wal, n, n);
            drop(deferred);
            let zxid = 0x1_0000_0000 + n;
            futures::executor::block_on(seen.wait_for(|d| *d >= zxid)).unwrap();
        }
        let crashed = crash_copy(dir.path());
        let files = files::segments(crashed.path()).unwrap();
        assert!(files.len() > 3, "{files:?}");
        for file in &files[..files.len() - 1] {
            let bytes = std::fs::read(&file.path).unwrap();
            assert_ne!(bytes.last(), Some(&0), "{}", file.path.display());
        }
        assert_eq!(
            recovery::recover(crashed.path(), true).unwrap().replayed,
            30
        );
        wal.close();
        assert_eq!(recovery::recover(dir.path(), false).unwrap().replayed, 30);
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

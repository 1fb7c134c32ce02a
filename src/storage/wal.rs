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

/// The segment being appended to.
struct Segment {
    file: File,
    len: u64,
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
    Ok(Segment {
        file,
        len: LOG_MAGIC.len() as u64,
    })
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
            segment = Some(open_segment(settings, first_zxid)?);
        }
        let Some(current) = segment.as_mut() else {
            continue;
        };
        current.file.write_all(&batch)?;
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
    }
}

/// Cuts a segment back to `len` bytes (a torn tail found at start-up) and
/// makes the cut durable.
pub fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

//! A connection's outbound queue, bounded in bytes.
//!
//! The core queues replies and watch notifications for a connection while it
//! holds the one lock, so queueing must never wait: a client that stops
//! reading would otherwise stall the writer and every other client. Instead
//! each queue counts the bytes handed to it and not yet written to the
//! socket; once that passes the bound, the connection is cut off (with a
//! logged reason) and everything queued for it is dropped. Its session lives
//! on as after any lost connection: the client may re-attach within its
//! timeout and re-arm its watches with setWatches.
//!
//! Replies to the connection's own requests never take it there: the read
//! loop runs a connection's requests only while its queue is below half the
//! bound ([`OutboundSender::is_backed_up`]) and waits for the writer to
//! drain it otherwise, as ZooKeeper stops reading from a connection with too
//! much outstanding. So a client that pipelines reads of wide folders faster
//! than it takes the replies is slowed down, not cut off; what can still pass
//! the bound is watch notifications for a client that does not read.
//!
//! Frames are encoded straight into one byte buffer, back to back, and the
//! write loop takes the whole buffer at once: no allocation and no channel
//! message per reply, and one wake-up of the writer per burst of replies.
//! Each frame waits for a zxid to be durable; those zxids only grow along a
//! connection, so the buffer is kept as runs of frames, each run with the
//! zxid its last frame waits for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::core::Outbound;

/// A write buffer larger than this is given back once written, so an idle
/// connection holds little memory.
const KEEP_BUFFER_BYTES: usize = 4096;

/// What is queued and not yet taken by the write loop.
#[derive(Debug, Default)]
struct Queue {
    /// Frames, back to back, each with its length prefix.
    bytes: Vec<u8>,
    /// (end offset in `bytes`, zxid that must be durable first), by offset.
    runs: Vec<(usize, i64)>,
    /// Close after the queued frames, for this reason; nothing more is
    /// queued once it is set. Kept after the write loop takes it, so that
    /// the connection's ending can say why.
    close: Option<String>,
    /// The write loop has taken the close.
    closed: bool,
    /// Every sender is gone: end once the queue is empty.
    senders_gone: bool,
}

/// State shared by the two ends of one queue.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the write loop when the queue stops being empty.
    wake: Notify,
    /// Wakes the read loop when the queue falls back below half the bound
    /// (or the connection is cut off).
    drained: Notify,
    /// Live senders (the core's and the connection handler's).
    senders: AtomicUsize,
    /// Bytes of frames queued and not yet handed to the socket.
    queued: AtomicUsize,
    /// The bound on `queued`.
    limit: usize,
    /// Set (and `cut` cancelled) when the connection is cut off for passing
    /// the bound; checked on every frame, hence a plain flag.
    is_cut: AtomicBool,
    cut: CancellationToken,
    addr: SocketAddr,
}

impl Shared {
    fn cut_off(&self) {
        self.is_cut.store(true, Ordering::Release);
        self.cut.cancel();
        self.drained.notify_one();
    }

    /// Half the bound: requests wait while the queue holds more.
    fn high_water(&self) -> usize {
        self.limit / 2
    }
}

/// The core's end: queueing never blocks.
#[derive(Debug)]
pub struct OutboundSender {
    shared: Arc<Shared>,
}

/// The write loop's end.
#[derive(Debug)]
pub struct OutboundReceiver {
    shared: Arc<Shared>,
}

/// What the write loop takes from the queue at once.
#[derive(Debug, Default)]
pub struct Taken {
    /// Frames, back to back.
    pub bytes: Vec<u8>,
    /// (end offset in `bytes`, zxid that must be durable before any byte
    /// of the run goes out), by offset; zxids grow from run to run.
    pub runs: Vec<(usize, i64)>,
    /// Close once `bytes` is written.
    pub close: Option<String>,
}

impl Taken {
    /// Empties it for the next take, giving back a large buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        if self.bytes.capacity() > KEEP_BUFFER_BYTES {
            self.bytes = Vec::new();
        }
        self.runs.clear();
        self.close = None;
    }
}

/// A queue for the connection from `addr`, bounded to `limit` bytes.
pub fn channel(addr: SocketAddr, limit: usize) -> (OutboundSender, OutboundReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        wake: Notify::new(),
        drained: Notify::new(),
        senders: AtomicUsize::new(1),
        queued: AtomicUsize::new(0),
        limit,
        is_cut: AtomicBool::new(false),
        cut: CancellationToken::new(),
        addr,
    });
    (
        OutboundSender {
            shared: shared.clone(),
        },
        OutboundReceiver { shared },
    )
}

impl Clone for OutboundSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        OutboundSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for OutboundSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.queue.lock().senders_gone = true;
            self.shared.wake.notify_one();
        }
    }
}

impl OutboundSender {
    /// Queues a message. A frame that takes the queue past its bound, when
    /// the queue was already over half of it, cuts the connection off
    /// instead of being queued; after that, frames are dropped. Returns
    /// false if the message was not queued.
    pub fn send(&self, message: Outbound) -> bool {
        match message {
            Outbound::Frame { frame, after } => self.send_frame(frame, after),
            Outbound::Close(reason) => self.close(reason),
        }
    }

    /// Queues a frame to go out once zxid `after` is durable.
    pub fn send_frame(&self, frame: Bytes, after: i64) -> bool {
        self.send_with(after, |out| out.extend_from_slice(&frame))
            .is_some()
    }

    /// Queues a frame that `write` encodes (length prefix included) straight
    /// into the queue, to go out once zxid `after` is durable. Returns its
    /// size, or None if it was not queued.
    pub fn send_with(&self, after: i64, write: impl FnOnce(&mut Vec<u8>)) -> Option<usize> {
        let shared = &*self.shared;
        if shared.is_cut.load(Ordering::Acquire) {
            return None;
        }
        let mut queue = shared.queue.lock();
        if queue.close.is_some() {
            // Nothing goes out after a close.
            return None;
        }
        let start = queue.bytes.len();
        write(&mut queue.bytes);
        let end = queue.bytes.len();
        let size = end - start;
        let before = shared.queued.fetch_add(size, Ordering::AcqRel);
        let queued = before + size;
        // Requests run only below the high-water mark, so a reply, however
        // large (getChildren of a huge folder), is always queued: the bound
        // is for clients that stop reading while notifications pile up.
        if before > shared.high_water() && queued > shared.limit {
            queue.bytes.truncate(start);
            drop(queue);
            shared.queued.fetch_sub(size, Ordering::AcqRel);
            tracing::warn!(
                addr = %shared.addr,
                queued_bytes = queued - size,
                limit = shared.limit,
                "cutting off a client that does not read: its outbound buffer passed the limit"
            );
            shared.cut_off();
            return None;
        }
        match queue.runs.last_mut() {
            // A frame may join a run that waits for a later zxid than its
            // own: it is held a little longer, never sent early.
            Some((run_end, run_after)) if after <= *run_after => *run_end = end,
            _ => queue.runs.push((end, after)),
        }
        drop(queue);
        // A queue that already held frames has woken the writer, which has
        // not taken them yet: it will take this one with them.
        if start == 0 {
            shared.wake.notify_one();
        }
        Some(size)
    }

    /// Asks the write loop to close the connection after what is queued.
    pub fn close(&self, reason: String) -> bool {
        if self.shared.is_cut.load(Ordering::Acquire) {
            return false;
        }
        let mut queue = self.shared.queue.lock();
        if queue.close.is_none() {
            queue.close = Some(reason);
        }
        drop(queue);
        self.shared.wake.notify_one();
        true
    }

    /// Why the server asked for the connection to be closed, if it did.
    pub fn close_reason(&self) -> Option<String> {
        self.shared.queue.lock().close.clone()
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Whether the connection was cut off for passing the bound.
    pub fn is_cut_off(&self) -> bool {
        self.shared.is_cut.load(Ordering::Acquire)
    }

    /// Whether the queue holds more than half the bound: the connection's
    /// next request waits until [`OutboundSender::drained`].
    pub fn is_backed_up(&self) -> bool {
        self.queued_bytes() > self.shared.high_water()
    }

    /// Returns once the queue is back below half the bound, or the
    /// connection has been cut off. Only the connection's read loop waits
    /// here (a wake-up sent before it waits is kept by the Notify).
    pub async fn drained(&self) {
        while self.is_backed_up() && !self.is_cut_off() {
            self.shared.drained.notified().await;
        }
    }
}

/// Appends a frame: a length prefix, then what `write` encodes.
pub fn put_frame(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.put_i32(0);
    write(out);
    let len = i32::try_from(out.len() - at - 4).expect("frames are smaller than 2 GiB");
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

impl OutboundReceiver {
    /// Waits for queued frames (or a close) and swaps them into `taken`,
    /// which must be cleared. False once the connection has been cut off,
    /// or once every sender is gone and nothing is left.
    pub async fn recv(&mut self, taken: &mut Taken) -> bool {
        loop {
            if self.try_take(taken) {
                return true;
            }
            if self.shared.is_cut.load(Ordering::Acquire) || self.shared.queue.lock().senders_gone {
                return false;
            }
            // A wake-up sent after the check above is kept by the Notify.
            tokio::select! {
                biased;
                _ = self.shared.cut.cancelled() => return false,
                _ = self.shared.wake.notified() => {}
            }
        }
    }

    /// Takes what is queued without waiting; false if nothing is.
    pub fn try_take(&mut self, taken: &mut Taken) -> bool {
        if self.shared.is_cut.load(Ordering::Acquire) {
            return false;
        }
        let mut queue = self.shared.queue.lock();
        let close_due = queue.close.is_some() && !queue.closed;
        if queue.bytes.is_empty() && !close_due {
            return false;
        }
        std::mem::swap(&mut queue.bytes, &mut taken.bytes);
        std::mem::swap(&mut queue.runs, &mut taken.runs);
        if close_due {
            taken.close = queue.close.clone();
            queue.closed = true;
        }
        true
    }

    /// Records that `size` bytes left the queue for the socket.
    pub fn written(&self, size: usize) {
        let shared = &*self.shared;
        let before = shared.queued.fetch_sub(size, Ordering::AcqRel);
        let high_water = shared.high_water();
        if before > high_water && before - size <= high_water {
            shared.drained.notify_one();
        }
    }

    /// Cancelled when the connection is cut off: the write loop stops
    /// whatever it waits on (a full socket, the log) when this fires.
    pub fn cut_off(&self) -> CancellationToken {
        self.shared.cut.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(size: usize) -> Bytes {
        Bytes::from(vec![0u8; size])
    }

    #[tokio::test]
    async fn the_close_reason_outlives_the_close() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        assert_eq!(tx.close_reason(), None);
        assert!(tx.close("session re-attached elsewhere".into()));
        // A second close does not replace the first reason.
        assert!(tx.close("server shutting down".into()));
        let mut taken = Taken::default();
        assert!(rx.recv(&mut taken).await);
        assert_eq!(
            taken.close.as_deref(),
            Some("session re-attached elsewhere")
        );
        // Still there for the connection's ending once the write loop took it.
        assert_eq!(
            tx.close_reason().as_deref(),
            Some("session re-attached elsewhere")
        );
    }

    #[tokio::test]
    async fn passing_the_bound_cuts_off_and_drops_what_follows() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        assert!(tx.send_frame(frame(60), 0));
        assert!(tx.is_backed_up());
        assert!(tx.send_frame(frame(40), 0));
        assert_eq!(tx.queued_bytes(), 100);
        assert!(!tx.is_cut_off());
        // One byte more than the bound.
        assert!(!tx.send_frame(frame(1), 0));
        assert!(tx.is_cut_off());
        assert!(
            !tx.send_frame(frame(1), 0),
            "nothing is queued after the cut"
        );
        let mut taken = Taken::default();
        assert!(!rx.recv(&mut taken).await, "the writer stops at once");
    }

    #[tokio::test]
    async fn one_frame_larger_than_the_bound_goes_to_a_client_that_reads() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        assert!(tx.send_frame(frame(500), 0));
        assert!(!tx.is_cut_off());
        // Behind it, the bound holds.
        assert!(!tx.send_frame(frame(1), 0));
        assert!(tx.is_cut_off());
        let mut taken = Taken::default();
        assert!(!rx.recv(&mut taken).await);
    }

    #[tokio::test]
    async fn a_frame_queued_below_half_the_bound_never_cuts_off() {
        let (tx, _rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        assert!(tx.send_frame(frame(50), 0));
        assert!(!tx.is_backed_up(), "exactly half is not backed up");
        // The last reply a request may add, however large.
        assert!(tx.send_frame(frame(300), 0));
        assert!(!tx.is_cut_off());
        assert!(tx.is_backed_up());
    }

    #[tokio::test]
    async fn drained_waits_until_the_writer_takes_the_queue_below_half() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        assert!(tx.send_frame(frame(80), 0));
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "80 of 100 bytes is backed up");
        let mut taken = Taken::default();
        assert!(rx.recv(&mut taken).await);
        rx.written(taken.bytes.len());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("drained after the write")
            .unwrap();
        assert!(!tx.is_backed_up());
    }

    #[tokio::test]
    async fn written_frames_make_room() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        let mut taken = Taken::default();
        for _ in 0..10 {
            assert!(tx.send_frame(frame(80), 0));
            assert!(rx.recv(&mut taken).await);
            rx.written(taken.bytes.len());
            taken.clear();
        }
        assert_eq!(tx.queued_bytes(), 0);
        assert!(!tx.is_cut_off());
    }

    #[tokio::test]
    async fn frames_are_taken_in_runs_by_the_zxid_they_wait_for() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 1000);
        assert!(tx.send_frame(frame(10), 5));
        assert!(tx.send_frame(frame(10), 5));
        assert!(tx.send_frame(frame(10), 7));
        // An older zxid joins the later run rather than going out early.
        assert!(tx.send_frame(frame(10), 6));
        assert!(tx.close("done".into()));
        assert!(!tx.send_frame(frame(10), 8), "nothing after a close");
        let mut taken = Taken::default();
        assert!(rx.recv(&mut taken).await);
        assert_eq!(taken.bytes.len(), 40);
        assert_eq!(taken.runs, [(20, 5), (40, 7)]);
        assert_eq!(taken.close.as_deref(), Some("done"));
    }

    #[tokio::test]
    async fn the_writer_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 1000);
        let other = tx.clone();
        assert!(tx.send_frame(frame(10), 0));
        drop(tx);
        drop(other);
        let mut taken = Taken::default();
        assert!(rx.recv(&mut taken).await, "what was queued still goes out");
        taken.clear();
        assert!(!rx.recv(&mut taken).await);
    }
}

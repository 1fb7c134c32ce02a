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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::Outbound;

/// State shared by the two ends of one queue.
#[derive(Debug)]
struct Shared {
    /// Bytes of frames queued and not yet handed to the socket.
    queued: AtomicUsize,
    /// The bound on `queued`.
    limit: usize,
    /// Cancelled when the connection is cut off for passing the bound.
    cut: CancellationToken,
    addr: SocketAddr,
}

/// The core's end: queueing never blocks.
#[derive(Debug, Clone)]
pub struct OutboundSender {
    tx: mpsc::UnboundedSender<Outbound>,
    shared: Arc<Shared>,
}

/// The write loop's end.
#[derive(Debug)]
pub struct OutboundReceiver {
    rx: mpsc::UnboundedReceiver<Outbound>,
    shared: Arc<Shared>,
}

/// A queue for the connection from `addr`, bounded to `limit` bytes.
pub fn channel(addr: SocketAddr, limit: usize) -> (OutboundSender, OutboundReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        limit,
        cut: CancellationToken::new(),
        addr,
    });
    (
        OutboundSender {
            tx,
            shared: shared.clone(),
        },
        OutboundReceiver { rx, shared },
    )
}

impl OutboundSender {
    /// Queues a message. A frame that takes the queue past its bound cuts
    /// the connection off instead of being queued; after that, frames are
    /// dropped. Returns false if the message was not queued.
    pub fn send(&self, message: Outbound) -> bool {
        let shared = &self.shared;
        if shared.cut.is_cancelled() {
            return false;
        }
        if let Outbound::Frame { frame, .. } = &message {
            let size = frame.len();
            let queued = shared.queued.fetch_add(size, Ordering::AcqRel) + size;
            if queued > shared.limit {
                shared.queued.fetch_sub(size, Ordering::AcqRel);
                tracing::warn!(
                    addr = %shared.addr,
                    queued_bytes = queued - size,
                    limit = shared.limit,
                    "cutting off a client that does not read: its outbound buffer passed the limit"
                );
                shared.cut.cancel();
                return false;
            }
        }
        self.tx.send(message).is_ok()
    }

    /// Queues a frame to go out once zxid `after` is durable.
    pub fn send_frame(&self, frame: Bytes, after: i64) -> bool {
        self.send(Outbound::Frame { frame, after })
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Whether the connection was cut off for passing the bound.
    pub fn is_cut_off(&self) -> bool {
        self.shared.cut.is_cancelled()
    }
}

impl OutboundReceiver {
    /// The next message, or `None` once every sender is gone or the
    /// connection has been cut off.
    pub async fn recv(&mut self) -> Option<Outbound> {
        tokio::select! {
            biased;
            _ = self.shared.cut.cancelled() => None,
            message = self.rx.recv() => message,
        }
    }

    /// A message already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if self.shared.cut.is_cancelled() {
            return None;
        }
        self.rx.try_recv().ok()
    }

    /// Records that a frame of `size` bytes left the queue for the socket.
    pub fn written(&self, size: usize) {
        self.shared.queued.fetch_sub(size, Ordering::AcqRel);
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

    fn frame(size: usize) -> Outbound {
        Outbound::Frame {
            frame: Bytes::from(vec![0u8; size]),
            after: 0,
        }
    }

    #[tokio::test]
    async fn passing_the_bound_cuts_off_and_drops_what_follows() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        assert!(tx.send(frame(60)));
        assert!(tx.send(frame(40)));
        assert_eq!(tx.queued_bytes(), 100);
        assert!(!tx.is_cut_off());
        // One byte more than the bound.
        assert!(!tx.send(frame(1)));
        assert!(tx.is_cut_off());
        assert!(!tx.send(frame(1)), "nothing is queued after the cut");
        assert!(rx.recv().await.is_none(), "the writer stops at once");
    }

    #[tokio::test]
    async fn written_frames_make_room() {
        let (tx, mut rx) = channel(([127, 0, 0, 1], 1).into(), 100);
        for _ in 0..10 {
            assert!(tx.send(frame(80)));
            let Some(Outbound::Frame { frame, .. }) = rx.recv().await else {
                panic!("a frame was queued");
            };
            rx.written(frame.len());
        }
        assert_eq!(tx.queued_bytes(), 0);
        assert!(!tx.is_cut_off());
    }
}

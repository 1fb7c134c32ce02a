//! A graceful stop (SIGTERM, SIGINT): the accept loop has stopped; the core
//! stops processing requests (those that arrive now are left unanswered and
//! unapplied, as on a dropped connection); every connection is asked to close
//! after what is already queued for it, so each request that was processed
//! gets its reply (once its change is on disk); then the log is written out
//! and closed.
//!
//! Sessions survive by default, as in ZooKeeper: they are in the log, and
//! their clients re-attach after the restart. With
//! `close_sessions_on_shutdown` every session is closed first instead, so
//! its ephemeral nodes go and watchers are told.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::core::{Core, Outbound};

/// What a graceful stop did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub sessions_closed: usize,
    pub connections_closed: usize,
    /// Connections still open when the grace period ran out.
    pub connections_left: usize,
}

/// Closes sessions (if configured), closes connections after their queued
/// frames, waits for them up to `shutdown_grace_ms`, and closes the log.
pub async fn drain(core: &Arc<Mutex<Core>>) -> Report {
    let (sessions_closed, connections_closed, grace) = {
        let mut core = core.lock();
        // From here on nothing new is processed: what was processed has its
        // reply queued ahead of the Close below.
        core.draining = true;
        let mut sessions_closed = 0;
        if core.config.close_sessions_on_shutdown {
            let ids: Vec<i64> = core.sessions.iter().map(|s| s.id).collect();
            for id in ids {
                core.close_session(id, "server shutting down");
                sessions_closed += 1;
            }
        }
        // A Close goes behind whatever the connection has queued: the write
        // loop sends those frames (each once its change is durable), flushes,
        // and only then closes.
        for conn in core.conns.values() {
            let _ = conn
                .out
                .send(Outbound::Close("server shutting down".into()));
        }
        (
            sessions_closed,
            core.conns.len(),
            Duration::from_millis(core.config.shutdown_grace_ms),
        )
    };
    let deadline = Instant::now() + grace;
    let connections_left = loop {
        let left = core.lock().conns.len();
        if left == 0 || Instant::now() >= deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    core.lock().close_storage();
    Report {
        sessions_closed,
        connections_closed,
        connections_left,
    }
}

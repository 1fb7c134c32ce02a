//! The client's side of watches: who waits for which event, how a server
//! notification is routed to them, and what to re-arm after a reconnect.
//!
//! The server keeps one watch per (connection, path, kind); the client may
//! have several waiters behind it. The table is keyed by *server* paths (so
//! it can be sent back verbatim in setWatches) and events are handed out with
//! *client* paths (the chroot stripped).
//!
//! Routing follows ZooKeeper's `ZKWatchManager`: data changes and creations
//! fire data and exist watches, deletions fire all three one-shot kinds,
//! child changes fire child watches; persistent watches see every event on
//! their path, recursive ones every event on their subtree except child
//! changes.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use canopy_protocol::{EventType, SetWatches2, WatcherEvent, WatcherType};
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use super::SessionState;
use crate::connect_string::Chroot;

/// A watch firing, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// What happened; [`EventType::None`] when the watch ended because the
    /// session did (then `state` says why).
    pub event_type: EventType,
    pub state: SessionState,
    /// The client path (chroot stripped) of the node the event is about.
    pub path: String,
}

/// The three one-shot watch kinds a read can leave behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OneshotKind {
    /// getData, or exists on a node that exists.
    Data,
    /// exists on a node that does not exist (yet).
    Exist,
    /// getChildren.
    Child,
}

/// What a request asks the session to do with watches once it succeeds.
#[derive(Debug)]
pub(crate) enum WatchAction {
    /// Register a one-shot waiter. For exists the kind is decided by the
    /// reply (data if the node exists, exist if not), as in ZooKeeper.
    Oneshot {
        kind: OneshotKind,
        path: String,
        waiter: oneshot::Sender<WatchedEvent>,
    },
    /// Register a persistent (or persistent recursive) stream.
    Persistent {
        path: String,
        recursive: bool,
        sink: mpsc::UnboundedSender<WatchedEvent>,
    },
    /// Drop local waiters after a successful removeWatches.
    Remove { path: String, kind: WatcherType },
}

/// Every waiter of the session, by server path.
#[derive(Debug, Default)]
pub(crate) struct WatchTable {
    oneshot: HashMap<(OneshotKind, String), Vec<oneshot::Sender<WatchedEvent>>>,
    persistent: HashMap<String, Vec<mpsc::UnboundedSender<WatchedEvent>>>,
    recursive: HashMap<String, Vec<mpsc::UnboundedSender<WatchedEvent>>>,
    chroot: Chroot,
}

/// ZooKeeper splits setWatches so no frame gets near `jute.maxbuffer`.
const SET_WATCHES_BATCH_BYTES: usize = 128 * 1024;

impl WatchTable {
    pub(crate) fn new(chroot: Chroot) -> WatchTable {
        WatchTable {
            chroot,
            ..WatchTable::default()
        }
    }

    /// Applies `action` after its request was answered with `err`.
    pub(crate) fn apply(&mut self, action: WatchAction, err: i32) {
        const NO_NODE: i32 = canopy_protocol::ErrorCode::NoNode as i32;
        match action {
            WatchAction::Oneshot { kind, path, waiter } => {
                let kind = match (kind, err) {
                    (OneshotKind::Exist, 0) => OneshotKind::Data,
                    (OneshotKind::Exist, NO_NODE) => OneshotKind::Exist,
                    (kind, 0) => kind,
                    _ => return,
                };
                self.oneshot.entry((kind, path)).or_default().push(waiter);
            }
            WatchAction::Persistent {
                path,
                recursive,
                sink,
            } if err == 0 => {
                let map = if recursive {
                    &mut self.recursive
                } else {
                    &mut self.persistent
                };
                map.entry(path).or_default().push(sink);
            }
            WatchAction::Remove { path, kind } if err == 0 => self.remove(&path, kind),
            _ => {}
        }
    }

    /// Routes a server notification to its waiters.
    pub(crate) fn dispatch(&mut self, event: &WatcherEvent) {
        let Some(event_type) = EventType::from_i32(event.event_type) else {
            tracing::warn!(event.event_type, "ignoring an event of unknown type");
            return;
        };
        let server_path = event.path.as_str();
        let watched = WatchedEvent {
            event_type,
            state: SessionState::Connected,
            path: self.chroot.to_client(server_path),
        };
        let kinds: &[OneshotKind] = match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                &[OneshotKind::Data, OneshotKind::Exist]
            }
            EventType::NodeDeleted => &[OneshotKind::Data, OneshotKind::Exist, OneshotKind::Child],
            EventType::NodeChildrenChanged => &[OneshotKind::Child],
            _ => &[],
        };
        for kind in kinds {
            if let Some(waiters) = self.oneshot.remove(&(*kind, server_path.to_string())) {
                for waiter in waiters {
                    let _ = waiter.send(watched.clone());
                }
            }
        }
        if event_type == EventType::None {
            return;
        }
        if let Some(sinks) = self.persistent.get_mut(server_path) {
            sinks.retain(|sink| sink.send(watched.clone()).is_ok());
        }
        if event_type != EventType::NodeChildrenChanged {
            for ancestor in ancestors_and_self(server_path) {
                if let Some(sinks) = self.recursive.get_mut(ancestor) {
                    sinks.retain(|sink| sink.send(watched.clone()).is_ok());
                }
            }
        }
    }

    /// Drops local waiters of `kind` on `path`, telling each that its watch
    /// was removed (persistent streams then end).
    fn remove(&mut self, path: &str, kind: WatcherType) {
        let client_path = self.chroot.to_client(path);
        let event = |event_type| WatchedEvent {
            event_type,
            state: SessionState::Connected,
            path: client_path.clone(),
        };
        let mut take_oneshot = |k: OneshotKind, event_type| {
            for waiter in self
                .oneshot
                .remove(&(k, path.to_string()))
                .unwrap_or_default()
            {
                let _ = waiter.send(event(event_type));
            }
        };
        if matches!(kind, WatcherType::Children | WatcherType::Any) {
            take_oneshot(OneshotKind::Child, EventType::ChildWatchRemoved);
        }
        if matches!(kind, WatcherType::Data | WatcherType::Any) {
            take_oneshot(OneshotKind::Data, EventType::DataWatchRemoved);
            take_oneshot(OneshotKind::Exist, EventType::DataWatchRemoved);
        }
        let mut maps = Vec::new();
        if matches!(kind, WatcherType::Persistent | WatcherType::Any) {
            maps.push(&mut self.persistent);
        }
        if matches!(kind, WatcherType::PersistentRecursive | WatcherType::Any) {
            maps.push(&mut self.recursive);
        }
        for map in maps {
            for sink in map.remove(path).unwrap_or_default() {
                let _ = sink.send(event(EventType::PersistentWatchRemoved));
            }
        }
    }

    /// The setWatches2 requests that re-arm every live watch on a new
    /// connection; changes after `relative_zxid` fire at once on the server.
    /// Waiters that were dropped are forgotten first, so they are not re-armed.
    pub(crate) fn set_watches(&mut self, relative_zxid: i64) -> Vec<SetWatches2> {
        self.oneshot.retain(|_, waiters| {
            waiters.retain(|w| !w.is_closed());
            !waiters.is_empty()
        });
        for map in [&mut self.persistent, &mut self.recursive] {
            map.retain(|_, sinks| {
                sinks.retain(|s| !s.is_closed());
                !sinks.is_empty()
            });
        }
        let empty = || SetWatches2 {
            relative_zxid,
            ..SetWatches2::default()
        };
        let mut batches = Vec::new();
        let mut batch = empty();
        let mut bytes = 0;
        let oneshot = self
            .oneshot
            .keys()
            .map(|(kind, path)| (Some(*kind), false, path));
        let persistent = self.persistent.keys().map(|path| (None, false, path));
        let recursive = self.recursive.keys().map(|path| (None, true, path));
        for (kind, recursive, path) in oneshot.chain(persistent).chain(recursive) {
            if bytes > SET_WATCHES_BATCH_BYTES {
                batches.push(std::mem::replace(&mut batch, empty()));
                bytes = 0;
            }
            bytes += path.len() + 4;
            let list = match (kind, recursive) {
                (Some(OneshotKind::Data), _) => &mut batch.data_watches,
                (Some(OneshotKind::Exist), _) => &mut batch.exist_watches,
                (Some(OneshotKind::Child), _) => &mut batch.child_watches,
                (None, false) => &mut batch.persistent_watches,
                (None, true) => &mut batch.persistent_recursive_watches,
            };
            list.push(path.clone());
        }
        if bytes > 0 {
            batches.push(batch);
        }
        batches
    }

    /// Ends every watch because the session ended in `state`: one-shot
    /// waiters get an event of type None, persistent streams end.
    pub(crate) fn close(&mut self, state: SessionState) {
        for ((_, path), waiters) in self.oneshot.drain() {
            for waiter in waiters {
                let _ = waiter.send(WatchedEvent {
                    event_type: EventType::None,
                    state,
                    path: self.chroot.to_client(&path),
                });
            }
        }
        self.persistent.clear();
        self.recursive.clear();
    }
}

/// `/a/b/c`, `/a/b`, `/a`, `/`.
fn ancestors_and_self(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.rfind('/') {
            _ if current == "/" => None,
            Some(0) => Some("/"),
            Some(at) => Some(&current[..at]),
            None => None,
        };
        Some(current)
    })
}

/// A one-shot watch: a future that resolves with the event that fired it
/// (or an event of type None if the session ended first).
#[derive(Debug)]
pub struct OneshotWatcher {
    receiver: oneshot::Receiver<WatchedEvent>,
    path: String,
}

impl OneshotWatcher {
    pub(crate) fn new(receiver: oneshot::Receiver<WatchedEvent>, path: String) -> Self {
        OneshotWatcher { receiver, path }
    }

    /// The watch as a stream of at most one event, for `select`-style code.
    pub fn into_stream(self) -> impl Stream<Item = WatchedEvent> {
        futures::stream::once(self)
    }
}

impl std::future::Future for OneshotWatcher {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        Pin::new(&mut self.receiver).poll(cx).map(|result| {
            result.unwrap_or_else(|_| WatchedEvent {
                event_type: EventType::None,
                state: SessionState::Closed,
                path: self.path.clone(),
            })
        })
    }
}

/// A persistent or persistent recursive watch: a stream of every event on
/// the path (or subtree). It ends when the watch is removed or the session
/// ends. Dropping it stops delivery; the server side is removed with
/// `remove_watches` or when the session ends.
#[derive(Debug)]
pub struct PersistentWatcher {
    receiver: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl PersistentWatcher {
    pub(crate) fn new(receiver: mpsc::UnboundedReceiver<WatchedEvent>) -> Self {
        PersistentWatcher { receiver }
    }

    /// The next event, or `None` once the watch has ended.
    pub async fn next_event(&mut self) -> Option<WatchedEvent> {
        self.receiver.recv().await
    }
}

impl Stream for PersistentWatcher {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.receiver.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: EventType, path: &str) -> WatcherEvent {
        WatcherEvent {
            event_type: event_type as i32,
            state: 3,
            path: path.into(),
        }
    }

    #[test]
    fn ancestors_walk_up_to_the_root() {
        let all: Vec<_> = ancestors_and_self("/a/b/c").collect();
        assert_eq!(all, vec!["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(ancestors_and_self("/").collect::<Vec<_>>(), vec!["/"]);
    }

    #[test]
    fn routes_events_like_zookeeper_and_strips_the_chroot() {
        let mut table = WatchTable::new(Chroot::new(Some("/app".into())));
        let (data_tx, mut data_rx) = oneshot::channel();
        let (child_tx, mut child_rx) = oneshot::channel();
        let (rec_tx, mut rec_rx) = mpsc::unbounded_channel();
        table.apply(
            WatchAction::Oneshot {
                kind: OneshotKind::Exist,
                path: "/app/x".into(),
                waiter: data_tx,
            },
            0,
        );
        table.apply(
            WatchAction::Oneshot {
                kind: OneshotKind::Child,
                path: "/app/x".into(),
                waiter: child_tx,
            },
            0,
        );
        table.apply(
            WatchAction::Persistent {
                path: "/app".into(),
                recursive: true,
                sink: rec_tx,
            },
            0,
        );
        let watches = table.set_watches(7);
        assert_eq!(watches.len(), 1);
        assert_eq!(watches[0].data_watches, vec!["/app/x".to_string()]);
        assert_eq!(watches[0].child_watches, vec!["/app/x".to_string()]);
        assert_eq!(
            watches[0].persistent_recursive_watches,
            vec!["/app".to_string()]
        );

        table.dispatch(&event(EventType::NodeChildrenChanged, "/app/x"));
        assert_eq!(child_rx.try_recv().unwrap().path, "/x");
        assert!(data_rx.try_recv().is_err());
        assert!(
            rec_rx.try_recv().is_err(),
            "recursive watches skip child events"
        );

        table.dispatch(&event(EventType::NodeDataChanged, "/app/x"));
        assert_eq!(
            data_rx.try_recv().unwrap().event_type,
            EventType::NodeDataChanged
        );
        assert_eq!(rec_rx.try_recv().unwrap().path, "/x");
        assert!(table.set_watches(7)[0].data_watches.is_empty());
    }

    #[test]
    fn failed_reads_leave_no_watch_but_exists_on_a_missing_node_does() {
        let mut table = WatchTable::default();
        let (tx, _rx) = oneshot::channel();
        table.apply(
            WatchAction::Oneshot {
                kind: OneshotKind::Data,
                path: "/x".into(),
                waiter: tx,
            },
            -101,
        );
        assert!(table.set_watches(0).is_empty());
        let (tx, _rx) = oneshot::channel();
        table.apply(
            WatchAction::Oneshot {
                kind: OneshotKind::Exist,
                path: "/x".into(),
                waiter: tx,
            },
            -101,
        );
        assert_eq!(
            table.set_watches(0)[0].exist_watches,
            vec!["/x".to_string()]
        );
    }

    #[test]
    fn dropped_waiters_are_not_rearmed_and_close_ends_everything() {
        let mut table = WatchTable::default();
        let (tx, rx) = oneshot::channel();
        table.apply(
            WatchAction::Oneshot {
                kind: OneshotKind::Data,
                path: "/gone".into(),
                waiter: tx,
            },
            0,
        );
        drop(rx);
        assert!(table.set_watches(0).is_empty());

        let (tx, mut rx) = oneshot::channel();
        table.apply(
            WatchAction::Oneshot {
                kind: OneshotKind::Child,
                path: "/x".into(),
                waiter: tx,
            },
            0,
        );
        table.close(SessionState::Expired);
        let ended = rx.try_recv().unwrap();
        assert_eq!(
            (ended.event_type, ended.state),
            (EventType::None, SessionState::Expired)
        );
    }
}

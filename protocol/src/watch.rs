//! Watch notifications and the records that (re)register watches.

use crate::jute::jute_record;

jute_record! {
    /// A notification, sent with xid -1 when a watch fires.
    pub struct WatcherEvent {
        /// An [`EventType`] as a number.
        pub event_type: i32,
        /// A [`KeeperState`] as a number; always SyncConnected from a server.
        pub state: i32,
        /// The znode the event is about (the changed node, not the watched one,
        /// for recursive watches).
        pub path: String,
    }
}

jute_record! {
    /// Sent (xid -8, opcode 101) after a reconnect: the client's one-shot watches,
    /// so the server can re-arm them or fire those whose condition happened
    /// while the client was away.
    pub struct SetWatches {
        /// The last zxid the client saw; changes after it fire at once.
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
    }
}

jute_record! {
    /// The 3.6+ form of [`SetWatches`] (opcode 105), with persistent watches too.
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
        pub persistent_watches: Vec<String>,
        pub persistent_recursive_watches: Vec<String>,
    }
}

jute_record! {
    /// Adds a persistent watch (opcode 106).
    pub struct AddWatchRequest {
        pub path: String,
        /// An [`AddWatchMode`] as a number.
        pub mode: i32,
    }
}

jute_record! {
    /// Asks whether a watch of a type exists (opcode 17).
    pub struct CheckWatchesRequest {
        pub path: String,
        /// A [`WatcherType`] as a number.
        pub watcher_type: i32,
    }
}

jute_record! {
    /// Removes the caller's watches of a type on a path (opcode 18).
    pub struct RemoveWatchesRequest {
        pub path: String,
        /// A [`WatcherType`] as a number.
        pub watcher_type: i32,
    }
}

/// `Watcher.Event.EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    None = -1,
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
    DataWatchRemoved = 5,
    ChildWatchRemoved = 6,
    PersistentWatchRemoved = 7,
}

impl EventType {
    pub fn from_i32(value: i32) -> Option<EventType> {
        use EventType::*;
        [
            None,
            NodeCreated,
            NodeDeleted,
            NodeDataChanged,
            NodeChildrenChanged,
            DataWatchRemoved,
            ChildWatchRemoved,
            PersistentWatchRemoved,
        ]
        .into_iter()
        .find(|e| *e as i32 == value)
    }
}

/// `Watcher.Event.KeeperState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum KeeperState {
    Unknown = -1,
    Disconnected = 0,
    NoSyncConnected = 1,
    SyncConnected = 3,
    AuthFailed = 4,
    ConnectedReadOnly = 5,
    SaslAuthenticated = 6,
    Closed = 7,
    Expired = -112,
}

impl KeeperState {
    pub fn from_i32(value: i32) -> Option<KeeperState> {
        use KeeperState::*;
        [
            Unknown,
            Disconnected,
            NoSyncConnected,
            SyncConnected,
            AuthFailed,
            ConnectedReadOnly,
            SaslAuthenticated,
            Closed,
            Expired,
        ]
        .into_iter()
        .find(|s| *s as i32 == value)
    }
}

/// The mode of [`AddWatchRequest`] (`ZooDefs.AddWatchModes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum AddWatchMode {
    /// Fires for the node's own data, existence and children, and stays armed.
    Persistent = 0,
    /// Fires for the node and every descendant (no child events), and stays armed.
    PersistentRecursive = 1,
}

impl AddWatchMode {
    pub fn from_i32(value: i32) -> Option<AddWatchMode> {
        match value {
            0 => Some(AddWatchMode::Persistent),
            1 => Some(AddWatchMode::PersistentRecursive),
            _ => None,
        }
    }
}

/// The watch kinds of check/removeWatches (`Watcher.WatcherType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum WatcherType {
    Children = 1,
    Data = 2,
    Any = 3,
    Persistent = 4,
    PersistentRecursive = 5,
}

impl WatcherType {
    pub fn from_i32(value: i32) -> Option<WatcherType> {
        use WatcherType::*;
        [Children, Data, Any, Persistent, PersistentRecursive]
            .into_iter()
            .find(|t| *t as i32 == value)
    }
}

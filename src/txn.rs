//! Change records: every change to the tree and the session table is one
//! [`Txn`], stamped with a zxid and a time, and applied by exactly one
//! function, [`crate::tree::Tree::apply`]. A Txn carries the fully decided
//! outcome (the sequence-suffixed path, the new versions), so applying it never
//! fails for a reason the client could see and replaying it gives the same tree:
//! the write-ahead log and replication will carry these records unchanged.

use bytes::Bytes;
use canopy_protocol::Acl;

/// The header every change carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub zxid: i64,
    /// Wall-clock milliseconds when the change was decided (ctime/mtime).
    pub time: i64,
    /// The session that asked for it (0 for the server's own changes).
    pub session_id: i64,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    /// A new znode. `parent_cversion` is the parent's create-count after this
    /// create (what ZooKeeper's CreateTxn carries).
    Create {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Bytes>,
        /// The data version after this change.
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        /// The ACL version after this change.
        version: i32,
    },
    /// A version check that passed: changes nothing but takes a zxid.
    Check {
        path: String,
    },
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
    },
    /// Closes (or expires) a session: its ephemeral znodes go in this one change.
    CloseSession {
        session_id: i64,
    },
    /// All-or-nothing: every part applied with the same zxid.
    Multi(Vec<Txn>),
    /// A refused write (or a refused part of a failed multi, whose error code is
    /// 0 before the failing op and RuntimeInconsistency after it, as ZooKeeper
    /// reports them). It changes nothing, but ZooKeeper gives it a zxid and so
    /// does Canopy, so reply headers carry the same zxids.
    Error {
        code: i32,
    },
}

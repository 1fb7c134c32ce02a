//! Test support: a [`Core`] with real storage but no sockets, connections
//! whose outbound frames the caller reads, and a check of the invariants a
//! tree must keep after every change.
//!
//! The fuzz targets (`fuzz/`) and the tests use this module; the server does
//! not. Frames go in as bytes and take the same decoding steps as in
//! [`crate::net`]'s read loop (frame codec, then the handshake or
//! `Request::decode_frame`), so a fuzzer exercises the server's real path
//! minus the socket.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use canopy_protocol::{
    ConnectRequest, DecodeError, ErrorCode, FrameCodec, Jute, Request, RequestHeader,
};
use tokio_util::codec::Decoder;

use crate::access::{AccessControl, AccessRules};
use crate::config::Config;
use crate::core::{Action, ConnId, Core, Handshake, Outbound};
use crate::metrics::Metrics;
use crate::outbound::{self, OutboundReceiver, Taken};
use crate::storage::{Storage, StorageError};
use crate::tree::{NodeKind, Tree};

/// The session-password secret of test cores: fixed, so runs repeat.
const TEST_SECRET: [u8; 16] = *b"canopy-test-core";

/// Opens a core on `data_dir` with fsync off and snapshots rare, after `tune`
/// has adjusted the settings. The log writer thread runs as in a server.
pub fn open_core(data_dir: &Path, tune: impl FnOnce(&mut Config)) -> Result<Core, StorageError> {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        bind: [127, 0, 0, 1].into(),
        port: 0,
        fsync: false,
        snapshot_every_txns: u64::MAX,
        snapshot_every_log_bytes: u64::MAX,
        ..Config::default()
    };
    tune(&mut config);
    let durable = Arc::new(tokio::sync::watch::Sender::new(0));
    let metrics = Arc::new(Metrics::default());
    let (recovered, storage) = Storage::open(&config, durable.clone(), metrics.clone())?;
    // No lists and no limits: connections here never pass an accept loop.
    let access = AccessControl::new(AccessRules::default());
    Ok(Core::restore(
        Arc::new(config),
        TEST_SECRET,
        recovered,
        storage,
        durable,
        metrics,
        access,
    ))
}

/// A client connection without a socket: bytes in through [`TestConn::feed`],
/// what the server queued out through [`TestConn::take`].
pub struct TestConn {
    pub id: ConnId,
    rx: OutboundReceiver,
    codec: FrameCodec,
    buf: BytesMut,
    attached: bool,
    closed: Option<String>,
}

impl TestConn {
    /// Registers a new connection from `addr` with the core.
    pub fn open(core: &mut Core, addr: SocketAddr) -> TestConn {
        let (tx, rx) = outbound::channel(addr, core.config.max_outbound_bytes);
        let id = core.register_conn(addr, tx);
        TestConn {
            id,
            rx,
            codec: FrameCodec::new(core.config.max_frame_bytes),
            buf: BytesMut::new(),
            attached: false,
            closed: None,
        }
    }

    /// Whether the handshake attached a session.
    pub fn attached(&self) -> bool {
        self.attached
    }

    /// Why the connection was closed, if it was.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Feeds bytes as if they arrived on the socket and handles every whole
    /// frame, as `net::read_loop` does. Once a frame closes the connection,
    /// the connection is unregistered and later bytes are ignored.
    pub fn feed(&mut self, core: &mut Core, bytes: &[u8]) {
        if self.closed.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let frame = match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(err) => return self.close(core, format!("bad frame: {err}")),
            };
            if let Err(reason) = self.handle_frame(core, &frame) {
                return self.close(core, reason);
            }
        }
    }

    fn handle_frame(&mut self, core: &mut Core, frame: &[u8]) -> Result<(), String> {
        if !self.attached {
            let request = ConnectRequest::from_bytes(frame)
                .map_err(|err| format!("malformed connect request: {err}"))?;
            return match core.connect(self.id, &request) {
                Handshake::Attached => {
                    self.attached = true;
                    Ok(())
                }
                Handshake::Refused(reason) | Handshake::Dropped(reason) => Err(reason),
            };
        }
        let (header, request) = match Request::decode_frame(frame) {
            Ok(decoded) => decoded,
            Err(err @ DecodeError::UnknownOpCode(_)) => {
                if let Ok((_, header)) = RequestHeader::decode(frame) {
                    core.reply_error(self.id, header.xid, ErrorCode::Unimplemented);
                }
                return Err(format!("malformed request: {err}"));
            }
            Err(err) => return Err(format!("malformed request: {err}")),
        };
        match core.process(self.id, header, request) {
            Action::Continue => Ok(()),
            Action::Close(reason) => Err(reason),
        }
    }

    /// Closes the connection from the client's side (its session lives on).
    pub fn close(&mut self, core: &mut Core, reason: String) {
        if self.closed.is_none() {
            core.unregister_conn(self.id);
            self.closed = Some(reason);
        }
    }

    /// Everything queued for this connection since the last call. A queued
    /// `Close` (the server ending the connection) also unregisters it, as
    /// the connection's tasks would.
    pub fn take(&mut self, core: &mut Core) -> Vec<Outbound> {
        let mut out = Vec::new();
        let mut taken = Taken::default();
        if !self.rx.try_take(&mut taken) {
            return out;
        }
        self.rx.written(taken.bytes.len());
        // Split the queued bytes back into frames, each with the zxid its
        // run waits for.
        let mut at = 0;
        for &(end, after) in &taken.runs {
            while at < end {
                let len = i32::from_be_bytes(taken.bytes[at..at + 4].try_into().unwrap());
                let next = at + 4 + len as usize;
                out.push(Outbound::Frame {
                    frame: Bytes::copy_from_slice(&taken.bytes[at..next]),
                    after,
                });
                at = next;
            }
        }
        if let Some(reason) = taken.close {
            self.close(core, reason.clone());
            out.push(Outbound::Close(reason));
        }
        out
    }
}

/// Checks what must hold in a tree after every change, against the live
/// sessions of `core`:
/// - every node but the root is listed by its parent, every listed child
///   exists, and every node is reachable from the root;
/// - numChildren equals the number of children, and a node other than the
///   built-in ones has had at least as many child creates as it has children
///   (so cversion >= numChildren);
/// - every ephemeral node's owner is a live session, it has no children, and
///   the per-session ephemeral index lists exactly the ephemeral nodes;
/// - zxids in stats are ordered (czxid <= mzxid, czxid <= pzxid) and no later
///   than the core's last zxid; dataLength matches the data;
/// - the approximate data size is the sum over nodes of path and data bytes.
pub fn check_invariants(core: &Core) -> Result<(), String> {
    let tree = &core.tree;
    // Links, child counts and the name index agree.
    tree.check_structure()?;
    let nodes = tree.frozen();
    let mut reachable = 0usize;
    let mut data_size = 0i64;
    let mut ephemerals: HashMap<i64, HashSet<String>> = HashMap::new();
    for (node_path, node) in Tree::depth_first(&nodes) {
        reachable += 1;
        data_size += node_path.len() as i64 + node.data_len() as i64;
        let children = tree.children(node).count();
        let stat = node.stat();
        if stat.num_children as usize != children {
            return Err(format!(
                "{node_path}: numChildren {} but {children} children",
                stat.num_children,
            ));
        }
        // ZooKeeper's built-in nodes (czxid 0) got their children without
        // creates: a fresh ZooKeeper reports cversion -1 for `/` and -2 for
        // `/zookeeper`, and so does Canopy.
        let builtin = stat.czxid == 0;
        if !builtin
            && ((node.creates as i64) < children as i64 || stat.cversion < stat.num_children)
        {
            return Err(format!(
                "{node_path}: {} children but only {} creates (cversion {})",
                children, node.creates, stat.cversion
            ));
        }
        if stat.data_length != node.data().map_or(0, |d| d.len() as i32) {
            return Err(format!("{node_path}: dataLength does not match the data"));
        }
        if stat.czxid > stat.mzxid || stat.czxid > stat.pzxid {
            return Err(format!(
                "{node_path}: czxid 0x{:x} after mzxid 0x{:x} or pzxid 0x{:x}",
                stat.czxid, stat.mzxid, stat.pzxid
            ));
        }
        if stat.mzxid > core.last_zxid || stat.pzxid > core.last_zxid {
            return Err(format!(
                "{node_path}: a zxid beyond the last one 0x{:x}",
                core.last_zxid
            ));
        }
        if let NodeKind::Ephemeral(owner) = node.kind() {
            if core.sessions.get(owner).is_none() {
                return Err(format!(
                    "ephemeral {node_path} is owned by 0x{owner:x}, which is not a live session"
                ));
            }
            if children > 0 {
                return Err(format!("ephemeral {node_path} has children"));
            }
            ephemerals
                .entry(owner)
                .or_default()
                .insert(node_path.clone());
        }
    }
    if reachable != tree.node_count() {
        return Err(format!(
            "{} nodes, but {reachable} reachable from the root",
            tree.node_count()
        ));
    }
    let indexed: HashMap<i64, HashSet<String>> = tree
        .all_ephemerals()
        .into_iter()
        .filter(|(_, paths)| !paths.is_empty())
        .map(|(owner, paths)| (owner, paths.into_iter().collect()))
        .collect();
    if indexed != ephemerals {
        return Err(format!(
            "the ephemeral index {indexed:?} differs from the ephemeral nodes {ephemerals:?}"
        ));
    }
    if data_size != tree.approximate_data_size() {
        return Err(format!(
            "approximate data size {} but nodes hold {data_size} bytes",
            tree.approximate_data_size()
        ));
    }
    Ok(())
}

//! One znode as the tree stores it: its stat, its data and name in one
//! allocation, and its links to parent and siblings.
//!
//! Nodes are small on purpose (104 bytes plus one allocation holding name
//! and data): a registry holds millions of them.

use std::sync::Arc;

use bytes::Bytes;
use canopy_protocol::{Acl, Stat};

use super::NodeKind;
use crate::txn::TxnHeader;

/// A node's place in the [`super::store::NodeStore`]. Ids are reused after
/// a delete; they never leave the process except inside a snapshot's view.
pub type NodeId = u32;

/// "No node" in a link.
pub(crate) const NONE: NodeId = NodeId::MAX;

/// The root is always the first node.
pub(crate) const ROOT: NodeId = 0;

/// Set in `name_len` when the data is null (which is not the same as empty).
const NULL_DATA: u32 = 1 << 31;

/// The number of an ACL in the tree's ACL table (see [`super::acls`]):
/// nodes hold this, 4 bytes instead of an 8-byte pointer.
pub type AclId = u32;

/// One znode.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name (its last path component) followed by its data. A
    /// box, not an `Arc`: 16 bytes less per node; a chunk copied for a
    /// snapshot copies its nodes' data too, which is rare and bounded.
    name_and_data: Box<[u8]>,
    /// The name's length, with [`NULL_DATA`] set when the data is null.
    name_len: u32,
    pub(super) acl: AclId,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    /// Number of children ever created here. Clients see ZooKeeper's
    /// "cversion" = creates + deletes = 2 × creates − current children; the
    /// sequence suffix of a sequential child is this create count.
    pub creates: i32,
    pub aversion: i32,
    /// The raw owner: a session id, or the container / TTL markers.
    pub ephemeral_owner: i64,
    pub(super) parent: NodeId,
    /// Children form a circular doubly linked list through their sibling
    /// links, in creation order: the first child's `prev_sibling` is the
    /// last child.
    pub(super) first_child: NodeId,
    pub(super) next_sibling: NodeId,
    pub(super) prev_sibling: NodeId,
    pub(super) num_children: u32,
}

/// A node's content without its place in the tree: what snapshots write and
/// read back.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub data: Option<Bytes>,
    pub acl: Arc<Vec<Acl>>,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub creates: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
}

impl Node {
    pub(super) fn new(
        name: &str,
        data: Option<&[u8]>,
        acl: AclId,
        header: &TxnHeader,
        owner: i64,
    ) -> Node {
        Node {
            name_and_data: join_name_and_data(name.as_bytes(), data),
            name_len: name_len(name.as_bytes(), data.is_some()),
            acl,
            czxid: header.zxid,
            mzxid: header.zxid,
            pzxid: header.zxid,
            ctime: header.time,
            mtime: header.time,
            version: 0,
            creates: 0,
            aversion: 0,
            ephemeral_owner: owner,
            parent: NONE,
            first_child: NONE,
            next_sibling: NONE,
            prev_sibling: NONE,
            num_children: 0,
        }
    }

    pub(super) fn from_record(name: &str, record: &NodeRecord, acl: AclId) -> Node {
        let created = TxnHeader {
            zxid: record.czxid,
            time: record.ctime,
            session_id: 0,
        };
        Node {
            mzxid: record.mzxid,
            pzxid: record.pzxid,
            mtime: record.mtime,
            version: record.version,
            creates: record.creates,
            aversion: record.aversion,
            ..Node::new(
                name,
                record.data.as_deref(),
                acl,
                &created,
                record.ephemeral_owner,
            )
        }
    }

    /// The node's content, for a snapshot; `acl` is the node's ACL.
    pub fn to_record(&self, acl: &Arc<Vec<Acl>>) -> NodeRecord {
        NodeRecord {
            data: self.data().map(Bytes::copy_from_slice),
            acl: acl.clone(),
            czxid: self.czxid,
            mzxid: self.mzxid,
            pzxid: self.pzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            creates: self.creates,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
        }
    }

    pub(super) fn name_bytes(&self) -> &[u8] {
        &self.name_and_data[..(self.name_len & !NULL_DATA) as usize]
    }

    /// The last component of the node's path ("" for the root).
    pub fn name(&self) -> &str {
        // Names are only ever made from `&str`, so this cannot fail.
        std::str::from_utf8(self.name_bytes()).unwrap_or_default()
    }

    pub fn data(&self) -> Option<&[u8]> {
        (self.name_len & NULL_DATA == 0).then(|| &self.name_and_data[self.name_len as usize..])
    }

    /// A copy of the data, for a reply.
    pub fn data_bytes(&self) -> Option<Bytes> {
        self.data().map(Bytes::copy_from_slice)
    }

    pub(super) fn set_data(&mut self, data: Option<&[u8]>) {
        // The name is copied from the old box: no string in between.
        let name = self.name_bytes();
        let name_len = name_len(name, data.is_some());
        self.name_and_data = join_name_and_data(name, data);
        self.name_len = name_len;
    }

    /// The sibling after this one in a child list that starts at `first`,
    /// or [`NONE`] at the end (the list is circular).
    pub(super) fn next_in_list(&self, first: NodeId) -> NodeId {
        if self.next_sibling == first {
            NONE
        } else {
            self.next_sibling
        }
    }

    pub fn num_children(&self) -> usize {
        self.num_children as usize
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.ephemeral_owner)
    }

    pub fn data_len(&self) -> i32 {
        self.data().map_or(0, |d| d.len() as i32)
    }

    /// The Stat clients see.
    pub fn stat(&self) -> Stat {
        let num_children = self.num_children as i32;
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.creates.wrapping_mul(2).wrapping_sub(num_children),
            aversion: self.aversion,
            // Containers and TTL nodes report 0, as in ZooKeeper.
            ephemeral_owner: match self.kind() {
                NodeKind::Ephemeral(owner) => owner,
                _ => 0,
            },
            data_length: self.data_len(),
            num_children,
            pzxid: self.pzxid,
        }
    }
}

fn name_len(name: &[u8], has_data: bool) -> u32 {
    // Names are far shorter than 2^31: a request is at most a few MiB.
    let len = name.len() as u32 & !NULL_DATA;
    if has_data {
        len
    } else {
        len | NULL_DATA
    }
}

fn join_name_and_data(name: &[u8], data: Option<&[u8]>) -> Box<[u8]> {
    let data = data.unwrap_or_default();
    let mut joined = Vec::with_capacity(name.len() + data.len());
    joined.extend_from_slice(name);
    joined.extend_from_slice(data);
    joined.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_stays_small() {
        // The memory target (250 bytes per 64-byte znode) leaves little room.
        assert!(std::mem::size_of::<Node>() <= 104);
        assert_eq!(
            std::mem::size_of::<Option<Node>>(),
            std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn null_empty_and_big_data() {
        let header = TxnHeader {
            zxid: 1,
            time: 2,
            session_id: 3,
        };
        let acl = 0;
        let null = Node::new("n", None, acl, &header, 0);
        assert_eq!((null.data(), null.data_len(), null.name()), (None, 0, "n"));
        let empty = Node::new("e", Some(b""), acl, &header, 0);
        assert_eq!(empty.data(), Some(&b""[..]));
        let big = vec![7u8; 4000];
        let mut node = Node::new("big", Some(&big), acl, &header, 0);
        assert_eq!(node.data_bytes().unwrap(), big);
        node.set_data(Some(b"small"));
        assert_eq!(
            (node.name(), node.data_bytes().unwrap()),
            ("big", Bytes::from("small"))
        );
    }
}

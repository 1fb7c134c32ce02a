//! Where the nodes live: a slab of fixed-size chunks, each behind an `Arc`.
//!
//! Freezing the store for a snapshot clones only the list of chunk pointers
//! (a few thousand for a million nodes). A write to a chunk that a snapshot
//! still holds copies that one chunk first, so a snapshot sees the tree as it
//! was while writes go on, and costs memory only for the chunks changed
//! during it.

use std::sync::Arc;

use canopy_protocol::Acl;

use super::acls::{self, AclEntries};
use super::node::{Node, NodeId};

/// A chunk's size: small enough that copying one on write is cheap, big
/// enough that the chunk list stays short, and exactly one of mimalloc's
/// size classes (1.75 × 2^14), so no memory is lost to rounding.
const CHUNK_BYTES: usize = 28 * 1024;

const CHUNK_NODES: usize = CHUNK_BYTES / std::mem::size_of::<Option<Node>>();

type Chunk = Vec<Option<Node>>;

/// The live store.
#[derive(Debug, Default)]
pub struct NodeStore {
    chunks: Vec<Arc<Chunk>>,
    /// Ids of empty slots, reused first (last freed, first reused).
    free: Vec<NodeId>,
    len: usize,
}

/// A frozen copy of the store and its ACLs for a snapshot (see
/// [`NodeStore::frozen`]).
#[derive(Debug, Clone, Default)]
pub struct FrozenNodes {
    chunks: Vec<Arc<Chunk>>,
    acls: AclEntries,
    len: usize,
}

fn split(id: NodeId) -> (usize, usize) {
    (id as usize / CHUNK_NODES, id as usize % CHUNK_NODES)
}

fn slot(chunks: &[Arc<Chunk>], id: NodeId) -> Option<&Node> {
    let (chunk, at) = split(id);
    chunks.get(chunk)?.get(at)?.as_ref()
}

impl NodeStore {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, id: NodeId) -> Option<&Node> {
        slot(&self.chunks, id)
    }

    /// A node to change: its chunk is copied first if a snapshot holds it.
    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        let (chunk, at) = split(id);
        Arc::make_mut(self.chunks.get_mut(chunk)?)
            .get_mut(at)?
            .as_mut()
    }

    /// Stores a node and returns its id.
    pub fn insert(&mut self, node: Node) -> NodeId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = (self.chunks.len() * CHUNK_NODES) as NodeId;
                self.chunks.push(Arc::new(vec![None; CHUNK_NODES]));
                self.free.extend((id + 1..id + CHUNK_NODES as NodeId).rev());
                id
            }
        };
        let (chunk, at) = split(id);
        Arc::make_mut(&mut self.chunks[chunk])[at] = Some(node);
        self.len += 1;
        id
    }

    /// Takes a node out; its id becomes free.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        let (chunk, at) = split(id);
        let node = Arc::make_mut(self.chunks.get_mut(chunk)?)
            .get_mut(at)?
            .take()?;
        self.free.push(id);
        self.len -= 1;
        Some(node)
    }

    /// O(number of chunks): the view later writes do not change.
    pub fn frozen(&self, acls: AclEntries) -> FrozenNodes {
        FrozenNodes {
            chunks: self.chunks.clone(),
            acls,
            len: self.len,
        }
    }
}

impl FrozenNodes {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, id: NodeId) -> Option<&Node> {
        slot(&self.chunks, id)
    }

    /// A node's ACL.
    pub fn acl(&self, node: &Node) -> &Arc<Vec<Acl>> {
        acls::lookup(&self.acls, node.acl)
    }

    /// Every node, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Node> {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter().filter_map(Option::as_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::TxnHeader;

    fn node(name: &str) -> Node {
        let header = TxnHeader {
            zxid: 1,
            time: 1,
            session_id: 0,
        };
        Node::new(name, Some(b"d"), 0, &header, 0)
    }

    #[test]
    fn ids_are_reused_and_frozen_views_do_not_change() {
        let mut store = NodeStore::default();
        let a = store.insert(node("a"));
        let b = store.insert(node("b"));
        assert_eq!((a, b, store.len()), (0, 1, 2));
        let frozen = store.frozen(Default::default());
        store.get_mut(a).unwrap().version = 5;
        store.remove(b).unwrap();
        let c = store.insert(node("c"));
        assert_eq!(c, b, "a freed id is reused");
        assert_eq!(frozen.get(a).unwrap().version, 0);
        assert_eq!(frozen.get(b).unwrap().name(), "b");
        assert_eq!(store.get(a).unwrap().version, 5);
        assert_eq!(store.get(c).unwrap().name(), "c");
        assert_eq!(frozen.iter().count(), 2);
        for i in 0..1000 {
            store.insert(node(&format!("n{i}")));
        }
        assert_eq!(store.len(), 1002);
        assert!(store.get(1001).is_some() && store.get(5000).is_none());
    }
}

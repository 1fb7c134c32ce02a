//! Finding a child by name: one hash table over all nodes, keyed by
//! (parent id, name) and holding only node ids (4 bytes and a control byte
//! per node). The key itself lives in the node, so nothing is stored twice.

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use super::node::NodeId;
use super::store::NodeStore;

/// aHash is fast and keyed per process, so clients cannot choose names that
/// collide.
#[derive(Debug, Default)]
pub struct ChildIndex {
    table: HashTable<NodeId>,
    hasher: ahash::RandomState,
}

impl ChildIndex {
    fn hash(hasher: &ahash::RandomState, parent: NodeId, name: &[u8]) -> u64 {
        hasher.hash_one((parent, name))
    }

    fn hash_of(hasher: &ahash::RandomState, nodes: &NodeStore, id: NodeId) -> u64 {
        match nodes.get(id) {
            Some(node) => Self::hash(hasher, node.parent, node.name_bytes()),
            None => 0,
        }
    }

    pub fn find(&self, nodes: &NodeStore, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let hash = Self::hash(&self.hasher, parent, name);
        self.table
            .find(hash, |&id| {
                nodes
                    .get(id)
                    .is_some_and(|n| n.parent == parent && n.name_bytes() == name)
            })
            .copied()
    }

    /// Adds a stored node under its parent and name, unless a node has that
    /// parent and name already: then returns false and changes nothing. One
    /// hash and one probe either way.
    pub fn insert(&mut self, nodes: &NodeStore, id: NodeId) -> bool {
        let Some(node) = nodes.get(id) else {
            return false;
        };
        let (parent, name) = (node.parent, node.name_bytes());
        let hasher = &self.hasher;
        let hash = Self::hash(hasher, parent, name);
        let same_key = |&other: &NodeId| {
            nodes
                .get(other)
                .is_some_and(|n| n.parent == parent && n.name_bytes() == name)
        };
        match self
            .table
            .entry(hash, same_key, |&other| Self::hash_of(hasher, nodes, other))
        {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(id);
                true
            }
        }
    }

    /// Room for `additional` more nodes without growing (when loading).
    pub fn reserve(&mut self, nodes: &NodeStore, additional: usize) {
        let hasher = &self.hasher;
        self.table
            .reserve(additional, |&other| Self::hash_of(hasher, nodes, other));
    }

    /// Removes a node, which must still be in the store.
    pub fn remove(&mut self, nodes: &NodeStore, id: NodeId) {
        let hash = Self::hash_of(&self.hasher, nodes, id);
        if let Ok(entry) = self.table.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }
}

//! The znode tree (ZooKeeper's DataTree): nodes, their stat, children, ACLs,
//! the ephemeral index per session, and the one function that applies a
//! change record, [`Tree::apply`].
//!
//! Layout, chosen for memory (a registry holds millions of small nodes):
//! - [`store`]: every node in a slab of copy-on-write chunks, by id; a
//!   snapshot freezes it in O(chunks);
//! - [`index`]: (parent id, name) → id, the only path lookup structure;
//! - each node links to its parent and siblings, so children need no
//!   separate list, and a node's name is stored once, with its data.

mod acls;
mod index;
mod node;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use canopy_protocol::Acl;

use crate::path;
use crate::quota::QuotaIndex;
use crate::txn::{Txn, TxnHeader};

use acls::AclTable;
use index::ChildIndex;
pub use node::{Node, NodeId, NodeRecord};
use node::{NONE, ROOT};
pub use store::FrozenNodes;
use store::NodeStore;

// How `ephemeralOwner` marks containers and TTL nodes is wire knowledge,
// shared with the CLI through the protocol crate.
pub use canopy_protocol::data::{CONTAINER_OWNER, MAX_TTL};
pub use canopy_protocol::NodeKind;

/// What a change did, for the watch manager to turn into notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEvent {
    Created(String),
    Deleted(String),
    DataChanged(String),
    ChildrenChanged(String),
}

/// Why applying a change failed: only possible for a corrupt or out-of-order
/// record, never for a change the preparation step accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("no node {0}")]
    NoNode(String),
    #[error("node {0} exists")]
    NodeExists(String),
    /// Deleting it would orphan its children (and their ids).
    #[error("node {0} has children")]
    NotEmpty(String),
}

/// The paths ZooKeeper keeps for itself.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
pub const QUOTA_PATH: &str = "/zookeeper/quota";
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// Iterates a frozen tree depth first (see [`Tree::depth_first`]).
pub struct DepthFirst<'a> {
    nodes: &'a FrozenNodes,
    started: bool,
    /// For each open ancestor: its path, its first child and the next child
    /// to visit.
    stack: Vec<(String, NodeId, NodeId)>,
}

impl<'a> Iterator for DepthFirst<'a> {
    type Item = (String, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            let root = self.nodes.get(ROOT)?;
            self.stack
                .push(("/".to_string(), root.first_child, root.first_child));
            return Some(("/".to_string(), root));
        }
        loop {
            let (parent, first, next) = self.stack.last_mut()?;
            if *next == NONE {
                self.stack.pop();
                continue;
            }
            let Some(node) = self.nodes.get(*next) else {
                // A broken link would be a bug elsewhere; the snapshot's
                // node count check catches it.
                self.stack.pop();
                continue;
            };
            *next = node.next_in_list(*first);
            let path = path::join(parent, node.name());
            self.stack
                .push((path.clone(), node.first_child, node.first_child));
            return Some((path, node));
        }
    }
}

/// The tree.
#[derive(Debug)]
pub struct Tree {
    nodes: NodeStore,
    children: ChildIndex,
    /// Ephemeral nodes per owning session.
    ephemerals: HashMap<i64, HashSet<NodeId>>,
    /// Container and TTL nodes, which a periodic check may remove.
    containers: HashSet<NodeId>,
    ttls: HashSet<NodeId>,
    /// Sum of data bytes and path bytes, for `mntr`'s approximate data size.
    data_size: i64,
    /// Each distinct ACL once (most nodes share a handful).
    acls: AclTable,
    /// The paths with a quota under `/zookeeper/quota` (see [`crate::quota`]).
    quotas: QuotaIndex,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    fn empty() -> Tree {
        Tree {
            nodes: NodeStore::default(),
            children: ChildIndex::default(),
            ephemerals: HashMap::new(),
            containers: HashSet::new(),
            ttls: HashSet::new(),
            data_size: 0,
            acls: AclTable::default(),
            quotas: QuotaIndex::default(),
        }
    }

    /// A tree with ZooKeeper's built-in nodes: `/`, `/zookeeper`,
    /// `/zookeeper/quota` and the read-only `/zookeeper/config`.
    pub fn new() -> Tree {
        let mut tree = Tree::empty();
        // An all-zero stat, as ZooKeeper's built-in nodes have.
        let zero = TxnHeader {
            zxid: 0,
            time: 0,
            session_id: 0,
        };
        for (path, data, acl) in [
            ("/", None, Acl::open_unsafe()),
            (ZOOKEEPER_PATH, Some(&b""[..]), Acl::open_unsafe()),
            (QUOTA_PATH, Some(b""), Acl::open_unsafe()),
            (CONFIG_PATH, Some(b""), Acl::read_unsafe()),
        ] {
            let acl = tree.acls.acquire(&acl);
            let mut node = Node::new(path::name(path), data, acl, &zero, 0);
            if path == CONFIG_PATH {
                // ZooKeeper sets the config node's ACL with version -1 at start.
                node.aversion = -1;
            }
            tree.data_size += path.len() as i64;
            tree.attach(path, node)
                .expect("the built-in nodes are created in order");
        }
        tree
    }

    /// The id of the node at `path`.
    fn lookup(&self, path: &str) -> Option<NodeId> {
        let rest = path.strip_prefix('/')?;
        let mut id = ROOT;
        if rest.is_empty() {
            return self.nodes.get(ROOT).map(|_| ROOT);
        }
        for name in rest.split('/') {
            id = self.children.find(&self.nodes, id, name.as_bytes())?;
        }
        Some(id)
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(self.lookup(path)?)
    }

    /// A node to change: its chunk is copied first if a snapshot still
    /// shares it.
    fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        let id = self.lookup(path)?;
        self.nodes.get_mut(id)
    }

    /// The children of `node`, in creation order.
    pub fn children<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a Node> + 'a {
        let nodes = &self.nodes;
        let mut next = node.first_child;
        let first = node.first_child;
        std::iter::from_fn(move || {
            if next == NONE {
                return None;
            }
            let child = nodes.get(next)?;
            next = child.next_in_list(first);
            Some(child)
        })
    }

    /// The names of the children of `node`, in creation order.
    pub fn child_names<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a str> + 'a {
        self.children(node).map(Node::name)
    }

    /// The same names as raw bytes, for replies: a re-listing consumer of a
    /// wide folder asks for all of them after every change, and the UTF-8
    /// check that `&str` needs (names were `&str` when stored) took 13% of
    /// the server's time in the 20,000-provider register benchmark.
    pub fn child_name_bytes<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.children(node).map(Node::name_bytes)
    }

    /// The path of a stored node, rebuilt from its ancestors' names.
    fn path_of(&self, id: NodeId) -> String {
        let mut names = Vec::new();
        let mut current = id;
        while current != ROOT {
            let Some(node) = self.nodes.get(current) else {
                break;
            };
            names.push(node.name());
            current = node.parent;
        }
        if names.is_empty() {
            return "/".to_string();
        }
        let mut path = String::with_capacity(names.iter().map(|n| n.len() + 1).sum());
        for name in names.iter().rev() {
            path.push('/');
            path.push_str(name);
        }
        path
    }

    /// A frozen view of every node, for a snapshot: O(chunks), and later
    /// changes to the tree do not show in it.
    pub fn frozen(&self) -> FrozenNodes {
        self.nodes.frozen(self.acls.frozen())
    }

    /// Every node of a frozen view with its path, parents before children
    /// (depth first), children in creation order: the order snapshots are
    /// written in, which lets [`Tree::from_depth_first`] rebuild the tree in
    /// one pass.
    pub fn depth_first(nodes: &FrozenNodes) -> DepthFirst<'_> {
        DepthFirst {
            nodes,
            started: false,
            stack: Vec::new(),
        }
    }

    /// Rebuilds a tree from nodes in depth-first order (each node after its
    /// parent, and after the whole subtree of any earlier sibling), with the
    /// indexes derived from them. Nodes out of that order, or a path given
    /// twice, are refused.
    pub fn from_depth_first(
        nodes: impl IntoIterator<Item = (String, NodeRecord)>,
    ) -> Result<Tree, String> {
        let mut tree = Tree::empty();
        let nodes = nodes.into_iter();
        tree.children.reserve(&tree.nodes, nodes.size_hint().0);
        // The open ancestors of the current node, with their ids.
        let mut open: Vec<(String, NodeId)> = Vec::new();
        // Records with the same ACL share one Arc: the last one seen is
        // counted again without hashing it.
        let mut last_acl: Option<(Arc<Vec<Acl>>, node::AclId)> = None;
        for (path, record) in nodes {
            let parent_id = if path == "/" {
                if tree.nodes.len() > 0 {
                    return Err("the root node comes twice".into());
                }
                None
            } else {
                let parent = path::parent(&path);
                while open.last().is_some_and(|(p, _)| p != parent) {
                    open.pop();
                }
                match open.last() {
                    Some((_, id)) => Some(*id),
                    None => return Err(format!("node {path} does not follow its parent")),
                }
            };
            let data_len = record.data.as_ref().map_or(0, |d| d.len() as i64);
            tree.data_size += path.len() as i64 + data_len;
            let acl = match &last_acl {
                Some((shared, id)) if Arc::ptr_eq(shared, &record.acl) => {
                    tree.acls.acquire_again(*id);
                    *id
                }
                _ => {
                    let id = tree.acls.acquire(&record.acl);
                    last_acl = Some((record.acl.clone(), id));
                    id
                }
            };
            let node = Node::from_record(path::name(&path), &record, acl);
            let id = match parent_id {
                Some(parent_id) => tree.attach_under(parent_id, &path, node)?,
                None => tree.nodes.insert(node),
            };
            tree.index(id);
            open.push((path, id));
        }
        if tree.nodes.get(ROOT).is_none() {
            return Err("there is no root node".into());
        }
        tree.rebuild_quotas();
        Ok(tree)
    }

    /// Stores a node and links it as the last child of its parent (the root
    /// has none). Fails if the path exists or its parent does not.
    fn attach(&mut self, path: &str, node: Node) -> Result<NodeId, String> {
        if path == "/" {
            if self.nodes.len() > 0 {
                return Err("the root node comes twice".into());
            }
            return Ok(self.nodes.insert(node));
        }
        let parent_id = self
            .lookup(path::parent(path))
            .ok_or_else(|| format!("the parent of {path} does not exist"))?;
        self.attach_under(parent_id, path, node)
    }

    fn attach_under(
        &mut self,
        parent_id: NodeId,
        path: &str,
        node: Node,
    ) -> Result<NodeId, String> {
        self.store_child(parent_id, node)
            .ok_or_else(|| format!("node {path} comes twice"))
    }

    /// Stores a node under `parent_id`, indexes its name and links it last;
    /// or, if the parent has a child of that name, changes nothing and
    /// returns None.
    fn store_child(&mut self, parent_id: NodeId, mut node: Node) -> Option<NodeId> {
        node.parent = parent_id;
        let acl = node.acl;
        let id = self.nodes.insert(node);
        if !self.children.insert(&self.nodes, id) {
            self.nodes.remove(id);
            self.acls.release(acl);
            return None;
        }
        self.link_last(parent_id, id);
        Some(id)
    }

    /// Appends `id` to its parent's circular child list.
    fn link_last(&mut self, parent_id: NodeId, id: NodeId) {
        let first = self.nodes.get(parent_id).map_or(NONE, |p| p.first_child);
        if first == NONE {
            if let Some(node) = self.nodes.get_mut(id) {
                node.next_sibling = id;
                node.prev_sibling = id;
            }
            if let Some(parent) = self.nodes.get_mut(parent_id) {
                parent.first_child = id;
            }
        } else {
            let last = self.nodes.get(first).map_or(first, |f| f.prev_sibling);
            if let Some(node) = self.nodes.get_mut(id) {
                node.next_sibling = first;
                node.prev_sibling = last;
            }
            if let Some(node) = self.nodes.get_mut(last) {
                node.next_sibling = id;
            }
            if let Some(node) = self.nodes.get_mut(first) {
                node.prev_sibling = id;
            }
        }
        if let Some(parent) = self.nodes.get_mut(parent_id) {
            parent.num_children += 1;
        }
    }

    /// Takes `id` out of its parent's child list.
    fn unlink(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get(id) else {
            return;
        };
        let (parent_id, next, prev) = (node.parent, node.next_sibling, node.prev_sibling);
        if let Some(parent) = self.nodes.get_mut(parent_id) {
            parent.num_children -= 1;
            if parent.first_child == id {
                parent.first_child = if next == id { NONE } else { next };
            }
        }
        if next != id {
            if let Some(node) = self.nodes.get_mut(prev) {
                node.next_sibling = next;
            }
            if let Some(node) = self.nodes.get_mut(next) {
                node.prev_sibling = prev;
            }
        }
    }

    /// A node's ACL.
    pub fn acl(&self, node: &Node) -> &Arc<Vec<Acl>> {
        self.acls.get(node.acl)
    }

    /// Adds a node to the ephemeral, container or TTL index its kind needs.
    fn index(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get(id) else {
            return;
        };
        match node.kind() {
            NodeKind::Container => {
                self.containers.insert(id);
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(id);
            }
            NodeKind::Ephemeral(session) => {
                self.ephemerals.entry(session).or_default().insert(id);
            }
            NodeKind::Persistent => {}
        }
    }

    pub fn quotas(&self) -> &QuotaIndex {
        &self.quotas
    }

    pub(crate) fn quotas_mut(&mut self) -> &mut QuotaIndex {
        &mut self.quotas
    }

    /// Replaces a node's data without a new version, mzxid or event: how
    /// the server keeps quota stats nodes current, as ZooKeeper does.
    pub(crate) fn set_data_silently(&mut self, path: &str, data: Bytes) {
        let new_len = data.len() as i64;
        if let Some(node) = self.node_mut(path) {
            let old_len = node.data_len() as i64;
            node.set_data(Some(&data));
            self.data_size += new_len - old_len;
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn approximate_data_size(&self) -> i64 {
        self.data_size
    }

    /// Paths of the ephemeral nodes a session owns, sorted.
    pub fn ephemerals_of(&self, session_id: i64) -> Vec<String> {
        let mut paths: Vec<String> = self
            .ephemerals
            .get(&session_id)
            .map(|ids| ids.iter().map(|&id| self.path_of(id)).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    }

    /// Every session that owns ephemeral nodes with its paths (sorted), by
    /// session id.
    pub fn all_ephemerals(&self) -> Vec<(i64, Vec<String>)> {
        let mut owners: Vec<i64> = self.ephemerals.keys().copied().collect();
        owners.sort();
        owners
            .into_iter()
            .map(|owner| (owner, self.ephemerals_of(owner)))
            .collect()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(HashSet::len).sum()
    }

    /// Number of nodes strictly below `path` (ZooKeeper's getAllChildrenNumber;
    /// for `/` it counts every node but the root).
    pub fn descendant_count(&self, path: &str) -> usize {
        if path == "/" {
            return self.nodes.len() - 1;
        }
        let Some(node) = self.get(path) else {
            return 0;
        };
        let mut count = 0;
        let mut stack = vec![node];
        while let Some(current) = stack.pop() {
            for child in self.children(current) {
                count += 1;
                stack.push(child);
            }
        }
        count
    }

    /// Containers that had children and have none now, and TTL nodes without
    /// children whose TTL has passed since their last change: what the
    /// periodic check removes.
    pub fn expired_containers(&self, now_ms: i64) -> Vec<String> {
        let mut doomed = Vec::new();
        for &id in &self.containers {
            if let Some(node) = self.nodes.get(id) {
                if node.num_children == 0 && node.creates > 0 {
                    doomed.push(self.path_of(id));
                }
            }
        }
        for &id in &self.ttls {
            if let Some(node) = self.nodes.get(id) {
                if let NodeKind::Ttl(ttl) = node.kind() {
                    if node.num_children == 0 && now_ms - node.mtime > ttl {
                        doomed.push(self.path_of(id));
                    }
                }
            }
        }
        doomed.sort();
        doomed
    }

    /// Checks the structure itself: links, counts, the name index and the
    /// kind indexes agree. For tests and the fuzzer.
    pub fn check_structure(&self) -> Result<(), String> {
        let frozen = self.frozen();
        let mut seen = 0usize;
        let mut acl_uses: HashMap<node::AclId, u32> = HashMap::new();
        for (path, node) in Tree::depth_first(&frozen) {
            seen += 1;
            *acl_uses.entry(node.acl).or_default() += 1;
            if self.get(&path).map(|n| n as *const Node) != Some(node as *const Node) {
                return Err(format!("{path} is not found by its path"));
            }
            let children = self.children(node).count();
            if children != node.num_children() {
                return Err(format!(
                    "{path}: {} children linked, numChildren {}",
                    children,
                    node.num_children()
                ));
            }
        }
        if seen != self.nodes.len() || self.children.len() + 1 != self.nodes.len() {
            return Err(format!(
                "{} nodes stored, {seen} reachable, {} indexed by name",
                self.nodes.len(),
                self.children.len()
            ));
        }
        if acl_uses.len() != self.acls.len()
            || acl_uses
                .iter()
                .any(|(&id, &uses)| self.acls.uses(id) != uses)
        {
            return Err("the ACL table's use counts do not match the nodes".into());
        }
        let kinds = |ids: &HashSet<NodeId>, want: fn(NodeKind) -> bool| {
            ids.iter()
                .all(|&id| self.nodes.get(id).is_some_and(|n| want(n.kind())))
        };
        if !kinds(&self.containers, |k| k == NodeKind::Container)
            || !kinds(&self.ttls, |k| matches!(k, NodeKind::Ttl(_)))
        {
            return Err("the container or TTL index lists a wrong node".into());
        }
        for (owner, ids) in &self.ephemerals {
            if !kinds(ids, |k| matches!(k, NodeKind::Ephemeral(_)))
                || ids
                    .iter()
                    .any(|&id| self.nodes.get(id).map(|n| n.ephemeral_owner) != Some(*owner))
            {
                return Err(format!("the ephemeral index of 0x{owner:x} is wrong"));
            }
        }
        Ok(())
    }

    /// Applies one change record, returning what happened for the watches.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> Result<Vec<TreeEvent>, ApplyError> {
        let mut events = Vec::new();
        self.apply_into(header, txn, &mut events)?;
        Ok(events)
    }

    fn apply_into(
        &mut self,
        header: &TxnHeader,
        txn: &Txn,
        events: &mut Vec<TreeEvent>,
    ) -> Result<(), ApplyError> {
        match txn {
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                self.create(
                    header,
                    path,
                    data.as_deref(),
                    acl,
                    *ephemeral_owner,
                    *parent_cversion,
                )?;
                events.push(TreeEvent::Created(path.clone()));
                events.push(TreeEvent::ChildrenChanged(path::parent(path).to_string()));
            }
            Txn::Delete { path } => {
                self.delete(header, path)?;
                events.push(TreeEvent::Deleted(path.clone()));
                events.push(TreeEvent::ChildrenChanged(path::parent(path).to_string()));
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                let node = self
                    .node_mut(path)
                    .ok_or_else(|| ApplyError::NoNode(path.clone()))?;
                let old_len = node.data_len() as i64;
                node.set_data(data.as_deref());
                node.version = *version;
                node.mzxid = header.zxid;
                node.mtime = header.time;
                let new_len = node.data_len() as i64;
                self.data_size += new_len - old_len;
                self.quota_after_set_data(path, old_len, new_len);
                events.push(TreeEvent::DataChanged(path.clone()));
            }
            Txn::SetAcl { path, acl, version } => {
                let id = self
                    .lookup(path)
                    .ok_or_else(|| ApplyError::NoNode(path.clone()))?;
                let acl = self.acls.acquire(acl);
                if let Some(node) = self.nodes.get_mut(id) {
                    let old = std::mem::replace(&mut node.acl, acl);
                    node.aversion = *version;
                    self.acls.release(old);
                }
            }
            Txn::CloseSession { session_id } => {
                for path in self.ephemerals_of(*session_id) {
                    self.delete(header, &path)?;
                    events.push(TreeEvent::Deleted(path.clone()));
                    events.push(TreeEvent::ChildrenChanged(path::parent(&path).to_string()));
                }
                self.ephemerals.remove(session_id);
            }
            Txn::Multi(parts) => {
                for part in parts {
                    self.apply_into(header, part, events)?;
                }
            }
            Txn::Check { .. } | Txn::CreateSession { .. } | Txn::Error { .. } => {}
        }
        Ok(())
    }

    fn create(
        &mut self,
        header: &TxnHeader,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
    ) -> Result<(), ApplyError> {
        let parent_path = path::parent(path);
        let parent_id = self
            .lookup(parent_path)
            .ok_or_else(|| ApplyError::NoNode(parent_path.to_string()))?;
        let name = path::name(path);
        let node = Node::new(name, data, self.acls.acquire(acl), header, owner);
        let data_len = node.data_len() as i64;
        let id = self
            .store_child(parent_id, node)
            .ok_or_else(|| ApplyError::NodeExists(path.to_string()))?;
        if let Some(parent) = self.nodes.get_mut(parent_id) {
            parent.creates = parent_cversion;
            parent.pzxid = header.zxid;
        }
        self.data_size += path.len() as i64 + data_len;
        self.index(id);
        self.quota_after_create(path, data_len);
        Ok(())
    }

    fn delete(&mut self, header: &TxnHeader, path: &str) -> Result<(), ApplyError> {
        let id = self
            .lookup(path)
            .filter(|&id| id != ROOT)
            .ok_or_else(|| ApplyError::NoNode(path.to_string()))?;
        if self.nodes.get(id).is_some_and(|n| n.num_children > 0) {
            return Err(ApplyError::NotEmpty(path.to_string()));
        }
        // Out of the name index first: it hashes the node's stored name.
        self.children.remove(&self.nodes, id);
        self.unlink(id);
        let node = self
            .nodes
            .remove(id)
            .ok_or_else(|| ApplyError::NoNode(path.to_string()))?;
        let data_len = node.data_len() as i64;
        self.data_size -= path.len() as i64 + data_len;
        self.acls.release(node.acl);
        match node.kind() {
            NodeKind::Container => {
                self.containers.remove(&id);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(&id);
            }
            NodeKind::Ephemeral(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            NodeKind::Persistent => {}
        }
        if let Some(parent) = self.nodes.get_mut(node.parent) {
            if header.zxid > parent.pzxid {
                parent.pzxid = header.zxid;
            }
        }
        self.quota_after_delete(path, data_len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(zxid: i64) -> TxnHeader {
        TxnHeader {
            zxid,
            time: 1000 + zxid,
            session_id: 7,
        }
    }

    fn create(path: &str, parent_cversion: i32, owner: i64) -> Txn {
        Txn::Create {
            path: path.into(),
            data: Some(Bytes::from_static(b"x")),
            acl: Acl::open_unsafe(),
            ephemeral_owner: owner,
            parent_cversion,
        }
    }

    #[test]
    fn depth_first_order_rebuilds_the_tree_and_other_orders_are_refused() {
        let mut tree = Tree::new();
        tree.apply(&header(2), &create("/b", 1, 0)).unwrap();
        tree.apply(&header(3), &create("/a", 2, 0)).unwrap();
        tree.apply(&header(4), &create("/a/x", 1, 7)).unwrap();
        let frozen = tree.frozen();
        let order: Vec<(String, NodeRecord)> = Tree::depth_first(&frozen)
            .map(|(path, node)| (path, node.to_record(frozen.acl(node))))
            .collect();
        let paths: Vec<&str> = order.iter().map(|(p, _)| p.as_str()).collect();
        // Children in creation order.
        assert_eq!(
            paths,
            [
                "/",
                "/zookeeper",
                "/zookeeper/quota",
                "/zookeeper/config",
                "/b",
                "/a",
                "/a/x"
            ]
        );
        let rebuilt = Tree::from_depth_first(order.clone()).unwrap();
        rebuilt.check_structure().unwrap();
        let names = |t: &Tree| -> Vec<String> {
            t.child_names(t.get("/").unwrap())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(names(&rebuilt), names(&tree));
        assert_eq!(rebuilt.ephemerals_of(7), ["/a/x"]);
        // Sorted order (what older snapshots hold) loads too.
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(Tree::from_depth_first(sorted).unwrap().node_count(), 7);
        // A child before its parent, or a path twice, is refused.
        let mut swapped = order.clone();
        swapped.swap(5, 6);
        assert!(Tree::from_depth_first(swapped).is_err());
        let mut twice = order;
        twice.push(twice[4].clone());
        assert!(Tree::from_depth_first(twice).is_err());
    }

    #[test]
    fn children_keep_creation_order_through_deletes_and_ids_are_reused() {
        let mut tree = Tree::new();
        tree.apply(&header(2), &create("/p", 1, 0)).unwrap();
        for (i, name) in ["c", "a", "d", "b"].iter().enumerate() {
            let path = format!("/p/{name}");
            tree.apply(&header(3 + i as i64), &create(&path, 1 + i as i32, 0))
                .unwrap();
        }
        let names = |t: &Tree| -> Vec<String> {
            t.child_names(t.get("/p").unwrap())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(names(&tree), ["c", "a", "d", "b"]);
        for gone in ["/p/c", "/p/b", "/p/d"] {
            let delete = Txn::Delete { path: gone.into() };
            tree.apply(&header(10), &delete).unwrap();
            tree.check_structure().unwrap();
        }
        assert_eq!(names(&tree), ["a"]);
        tree.apply(&header(11), &create("/p/e", 5, 0)).unwrap();
        tree.apply(&header(12), &create("/p/a/x", 1, 0)).unwrap();
        assert_eq!(names(&tree), ["a", "e"]);
        assert_eq!(tree.descendant_count("/p"), 3);
        assert!(tree.get("/p/c").is_none() && tree.get("/p/a/x").is_some());
        tree.check_structure().unwrap();
    }

    #[test]
    fn builtin_nodes_match_zookeeper() {
        let tree = Tree::new();
        assert_eq!(tree.get("/").unwrap().stat().num_children, 1);
        assert_eq!(tree.get("/zookeeper").unwrap().stat().cversion, -2);
        assert_eq!(tree.get(CONFIG_PATH).unwrap().stat().aversion, -1);
        assert_eq!(tree.descendant_count("/"), 3);
    }

    #[test]
    fn cversion_counts_creates_and_deletes() {
        let mut tree = Tree::new();
        tree.apply(&header(2), &create("/p", 1, 0)).unwrap();
        tree.apply(&header(3), &create("/p/a", 1, 0)).unwrap();
        let p = tree.get("/p").unwrap().stat();
        assert_eq!((p.cversion, p.num_children, p.pzxid, p.mzxid), (1, 1, 3, 2));
        let not_empty = tree.apply(&header(4), &Txn::Delete { path: "/p".into() });
        assert_eq!(not_empty, Err(ApplyError::NotEmpty("/p".into())));
        let events = tree
            .apply(
                &header(4),
                &Txn::Delete {
                    path: "/p/a".into(),
                },
            )
            .unwrap();
        assert_eq!(
            events,
            vec![
                TreeEvent::Deleted("/p/a".into()),
                TreeEvent::ChildrenChanged("/p".into())
            ]
        );
        let p = tree.get("/p").unwrap();
        assert_eq!((p.stat().cversion, p.creates, p.pzxid), (2, 1, 4));
    }

    #[test]
    fn closing_a_session_removes_its_ephemerals() {
        let mut tree = Tree::new();
        tree.apply(&header(2), &create("/e1", 1, 7)).unwrap();
        tree.apply(&header(3), &create("/e2", 2, 7)).unwrap();
        tree.apply(&header(4), &create("/other", 3, 8)).unwrap();
        assert_eq!(tree.ephemerals_of(7), ["/e1", "/e2"]);
        let events = tree
            .apply(&header(5), &Txn::CloseSession { session_id: 7 })
            .unwrap();
        assert_eq!(events.len(), 4);
        assert!(tree.get("/e1").is_none() && tree.get("/other").is_some());
        assert!(tree.ephemerals_of(7).is_empty());
    }

    #[test]
    fn containers_expire_only_after_having_had_children() {
        let mut tree = Tree::new();
        tree.apply(&header(2), &create("/c", 1, CONTAINER_OWNER))
            .unwrap();
        assert!(tree.expired_containers(0).is_empty());
        tree.apply(&header(3), &create("/c/x", 1, 0)).unwrap();
        assert!(tree.expired_containers(0).is_empty());
        tree.apply(
            &header(4),
            &Txn::Delete {
                path: "/c/x".into(),
            },
        )
        .unwrap();
        assert_eq!(tree.expired_containers(0), ["/c"]);
        assert_eq!(tree.get("/c").unwrap().stat().ephemeral_owner, 0);
    }

    #[test]
    fn ttl_nodes_expire_after_their_ttl() {
        let mut tree = Tree::new();
        tree.apply(&header(2), &create("/t", 1, NodeKind::ttl_owner(500)))
            .unwrap();
        assert_eq!(tree.get("/t").unwrap().kind(), NodeKind::Ttl(500));
        assert!(tree.expired_containers(1002 + 500).is_empty());
        assert_eq!(tree.expired_containers(1002 + 501), ["/t"]);
    }
}

//! The znode tree (ZooKeeper's DataTree): nodes by path, their stat, children,
//! ACLs, the ephemeral index per session, and the one function that applies a
//! change record, [`Tree::apply`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use canopy_protocol::{Acl, Stat};

use crate::path;
use crate::quota::QuotaIndex;
use crate::txn::{Txn, TxnHeader};

// How `ephemeralOwner` marks containers and TTL nodes is wire knowledge,
// shared with the CLI through the protocol crate.
pub use canopy_protocol::data::{CONTAINER_OWNER, MAX_TTL};
pub use canopy_protocol::NodeKind;

/// One znode.
#[derive(Debug, Clone)]
pub struct Node {
    pub data: Option<Bytes>,
    pub acl: Arc<Vec<Acl>>,
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
    pub children: BTreeSet<String>,
}

impl Node {
    fn new(data: Option<Bytes>, acl: Arc<Vec<Acl>>, header: &TxnHeader, owner: i64) -> Node {
        Node {
            data,
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
            children: BTreeSet::new(),
        }
    }

    /// A node with an all-zero stat, as ZooKeeper's built-in nodes have.
    fn builtin(data: Option<Bytes>, acl: Vec<Acl>) -> Node {
        let header = TxnHeader {
            zxid: 0,
            time: 0,
            session_id: 0,
        };
        Node::new(data, Arc::new(acl), &header, 0)
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.ephemeral_owner)
    }

    pub fn data_len(&self) -> i32 {
        self.data.as_ref().map_or(0, |d| d.len() as i32)
    }

    /// The Stat clients see.
    pub fn stat(&self) -> Stat {
        let num_children = self.children.len() as i32;
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
}

/// The paths ZooKeeper keeps for itself.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
pub const QUOTA_PATH: &str = "/zookeeper/quota";
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// The nodes by path. A persistent map: cloning it is O(1) and shares
/// structure, so a snapshot can be written from a clone while writes go on;
/// a node is copied only when it changes while a snapshot still holds it.
/// Hashed with aHash: fast, and keyed per process, so clients cannot choose
/// colliding paths.
/// Nodes sit behind an `Arc`: the map's own chunks then stay small (a big
/// value inline made each entry cost ~700 bytes), and copying a node on
/// write is one `Arc::make_mut`.
pub type NodeMap =
    imbl::GenericHashMap<String, Arc<Node>, ahash::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// Iterates a node map depth first (see [`Tree::depth_first`]).
pub struct DepthFirst<'a> {
    nodes: &'a NodeMap,
    root: Option<&'static str>,
    /// For each open ancestor: its path and the rest of its children.
    stack: Vec<(String, std::collections::btree_set::Iter<'a, String>)>,
}

impl<'a> Iterator for DepthFirst<'a> {
    type Item = (String, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(root) = self.root.take() {
            let node: &'a Node = self.nodes.get(root)?;
            self.stack.push((root.to_string(), node.children.iter()));
            return Some((root.to_string(), node));
        }
        loop {
            let (parent, children) = self.stack.last_mut()?;
            let Some(name) = children.next() else {
                self.stack.pop();
                continue;
            };
            let path = path::join(parent, name);
            // A child missing from the map would be a bug elsewhere; the
            // snapshot's node count check catches it.
            let Some(node) = self.nodes.get(&path).map(|n| &**n) else {
                continue;
            };
            self.stack.push((path.clone(), node.children.iter()));
            return Some((path, node));
        }
    }
}

/// The tree.
#[derive(Debug)]
pub struct Tree {
    nodes: NodeMap,
    /// Ephemeral paths per owning session.
    ephemerals: HashMap<i64, HashSet<String>>,
    /// Container and TTL nodes, which a periodic check may remove.
    containers: HashSet<String>,
    ttls: HashSet<String>,
    /// Sum of data bytes and path bytes, for `mntr`'s approximate data size.
    data_size: i64,
    /// One shared copy of each distinct ACL (most nodes share a handful), as
    /// ZooKeeper's ReferenceCountedACLCache keeps them.
    acl_cache: HashMap<Vec<Acl>, Arc<Vec<Acl>>>,
    /// The paths with a quota under `/zookeeper/quota` (see [`crate::quota`]).
    quotas: QuotaIndex,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// A tree with ZooKeeper's built-in nodes: `/`, `/zookeeper`,
    /// `/zookeeper/quota` and the read-only `/zookeeper/config`.
    pub fn new() -> Tree {
        let mut root = Node::builtin(None, Acl::open_unsafe());
        root.children.insert("zookeeper".into());
        let mut zookeeper = Node::builtin(Some(Bytes::new()), Acl::open_unsafe());
        zookeeper.children.insert("quota".into());
        zookeeper.children.insert("config".into());
        let quota = Node::builtin(Some(Bytes::new()), Acl::open_unsafe());
        let mut config = Node::builtin(Some(Bytes::new()), Acl::read_unsafe());
        // ZooKeeper sets the config node's ACL with version -1 at start.
        config.aversion = -1;
        let mut tree = Tree {
            nodes: NodeMap::default(),
            ephemerals: HashMap::new(),
            containers: HashSet::new(),
            ttls: HashSet::new(),
            data_size: 0,
            acl_cache: HashMap::new(),
            quotas: QuotaIndex::default(),
        };
        for (path, node) in [
            ("/", root),
            (ZOOKEEPER_PATH, zookeeper),
            (QUOTA_PATH, quota),
            (CONFIG_PATH, config),
        ] {
            let mut node = node;
            node.acl = tree.intern_acl(&node.acl);
            tree.data_size += path.len() as i64;
            tree.nodes.insert(path.to_string(), Arc::new(node));
        }
        tree
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path).map(|node| &**node)
    }

    /// A node to change: copied first if a snapshot still shares it.
    fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(path).map(Arc::make_mut)
    }

    /// A frozen view of every node, for a snapshot: O(1), and later changes
    /// to the tree do not show in it.
    pub fn frozen(&self) -> NodeMap {
        self.nodes.clone()
    }

    /// Every node with its path, parents before children and children in
    /// name order (depth first): the order snapshots are written in, which
    /// lets [`Tree::from_depth_first`] rebuild child lists without sorting.
    pub fn depth_first(nodes: &NodeMap) -> DepthFirst<'_> {
        DepthFirst {
            nodes,
            root: Some("/"),
            stack: Vec::new(),
        }
    }

    /// Rebuilds a tree from nodes in [`Tree::depth_first`] order (their
    /// `children` are ignored and recomputed), with the indexes derived from
    /// them. Nodes out of that order are refused.
    pub fn from_depth_first(
        nodes: impl IntoIterator<Item = (String, Node)>,
    ) -> Result<Tree, String> {
        let mut tree = Tree {
            nodes: NodeMap::default(),
            ephemerals: HashMap::new(),
            containers: HashSet::new(),
            ttls: HashSet::new(),
            data_size: 0,
            acl_cache: HashMap::new(),
            quotas: QuotaIndex::default(),
        };
        // The open ancestors of the current node, each with the names of its
        // children seen so far (in order, so the set is built without sorting).
        let mut open: Vec<(String, Vec<String>)> = Vec::new();
        for (path, mut node) in nodes {
            if path == "/" {
                if !tree.nodes.is_empty() {
                    return Err("the root node comes twice".into());
                }
            } else {
                let parent = path::parent(&path);
                while open.last().is_some_and(|(p, _)| p != parent) {
                    tree.close_children(open.pop());
                }
                let Some((_, names)) = open.last_mut() else {
                    return Err(format!("node {path} does not follow its parent"));
                };
                let name = path::name(&path);
                if names.last().is_some_and(|last| last.as_str() >= name) {
                    return Err(format!("node {path} is out of order"));
                }
                names.push(name.to_string());
            }
            node.children.clear();
            node.acl = tree.intern_acl(&node.acl);
            tree.index(&path, &node);
            tree.data_size += path.len() as i64 + node.data_len() as i64;
            open.push((path.clone(), Vec::new()));
            tree.nodes.insert(path, Arc::new(node));
        }
        while let Some(entry) = open.pop() {
            tree.close_children(Some(entry));
        }
        if !tree.nodes.contains_key("/") {
            return Err("there is no root node".into());
        }
        tree.rebuild_quotas();
        Ok(tree)
    }

    /// Gives a node the child names collected for it.
    fn close_children(&mut self, entry: Option<(String, Vec<String>)>) {
        if let Some((path, names)) = entry {
            if !names.is_empty() {
                if let Some(node) = self.node_mut(&path) {
                    // Sorted input: the set is built in one pass.
                    node.children = names.into_iter().collect();
                }
            }
        }
    }

    /// The shared copy of an ACL.
    fn intern_acl(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        if let Some(shared) = self.acl_cache.get(acl) {
            return shared.clone();
        }
        let shared = Arc::new(acl.to_vec());
        self.acl_cache.insert(acl.to_vec(), shared.clone());
        shared
    }

    /// Adds a node to the ephemeral, container or TTL index its kind needs.
    fn index(&mut self, path: &str, node: &Node) {
        match node.kind() {
            NodeKind::Container => {
                self.containers.insert(path.to_string());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.to_string());
            }
            NodeKind::Ephemeral(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(path.to_string());
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
            node.data = Some(data);
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
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        paths.sort();
        paths
    }

    /// Every session that owns ephemeral nodes, with its paths.
    pub fn all_ephemerals(&self) -> impl Iterator<Item = (&i64, &HashSet<String>)> {
        self.ephemerals.iter()
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
        let mut count = 0;
        let mut stack = vec![path.to_string()];
        while let Some(current) = stack.pop() {
            if let Some(node) = self.nodes.get(&current) {
                for child in &node.children {
                    count += 1;
                    stack.push(path::join(&current, child));
                }
            }
        }
        count
    }

    /// Containers that had children and have none now, and TTL nodes without
    /// children whose TTL has passed since their last change: what the
    /// periodic check removes.
    pub fn expired_containers(&self, now_ms: i64) -> Vec<String> {
        let mut doomed = Vec::new();
        for path in &self.containers {
            if let Some(node) = self.nodes.get(path) {
                if node.children.is_empty() && node.creates > 0 {
                    doomed.push(path.clone());
                }
            }
        }
        for path in &self.ttls {
            if let Some(node) = self.nodes.get(path) {
                if let NodeKind::Ttl(ttl) = node.kind() {
                    if node.children.is_empty() && now_ms - node.mtime > ttl {
                        doomed.push(path.clone());
                    }
                }
            }
        }
        doomed.sort();
        doomed
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
                    data.clone(),
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
                let old_len = self
                    .get(path)
                    .ok_or_else(|| ApplyError::NoNode(path.clone()))?
                    .data_len();
                self.data_size += data.as_ref().map_or(0, |d| d.len() as i64) - old_len as i64;
                let node = self
                    .node_mut(path)
                    .ok_or_else(|| ApplyError::NoNode(path.clone()))?;
                node.data = data.clone();
                node.version = *version;
                node.mzxid = header.zxid;
                node.mtime = header.time;
                let new_len = node.data_len() as i64;
                self.quota_after_set_data(path, old_len as i64, new_len);
                events.push(TreeEvent::DataChanged(path.clone()));
            }
            Txn::SetAcl { path, acl, version } => {
                let acl = self.intern_acl(acl);
                let node = self
                    .node_mut(path)
                    .ok_or_else(|| ApplyError::NoNode(path.clone()))?;
                node.acl = acl;
                node.aversion = *version;
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
        data: Option<Bytes>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
    ) -> Result<(), ApplyError> {
        if self.nodes.contains_key(path) {
            return Err(ApplyError::NodeExists(path.to_string()));
        }
        let parent_path = path::parent(path);
        let parent = self
            .node_mut(parent_path)
            .ok_or_else(|| ApplyError::NoNode(parent_path.to_string()))?;
        parent.children.insert(path::name(path).to_string());
        parent.creates = parent_cversion;
        parent.pzxid = header.zxid;
        let node = Node::new(data, self.intern_acl(acl), header, owner);
        let data_len = node.data_len() as i64;
        self.data_size += path.len() as i64 + data_len;
        self.index(path, &node);
        self.nodes.insert(path.to_string(), Arc::new(node));
        self.quota_after_create(path, data_len);
        Ok(())
    }

    fn delete(&mut self, header: &TxnHeader, path: &str) -> Result<(), ApplyError> {
        let node = self
            .nodes
            .remove(path)
            .ok_or_else(|| ApplyError::NoNode(path.to_string()))?;
        self.data_size -= path.len() as i64 + node.data_len() as i64;
        match node.kind() {
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
            NodeKind::Ephemeral(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            NodeKind::Persistent => {}
        }
        if let Some(parent) = self.node_mut(path::parent(path)) {
            parent.children.remove(path::name(path));
            if header.zxid > parent.pzxid {
                parent.pzxid = header.zxid;
            }
        }
        self.quota_after_delete(path, node.data_len() as i64);
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
        let order: Vec<(String, Node)> = Tree::depth_first(&frozen)
            .map(|(path, node)| (path, node.clone()))
            .collect();
        let paths: Vec<&str> = order.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/",
                "/a",
                "/a/x",
                "/b",
                "/zookeeper",
                "/zookeeper/config",
                "/zookeeper/quota"
            ]
        );
        let rebuilt = Tree::from_depth_first(order.clone()).unwrap();
        assert_eq!(
            rebuilt.get("/").unwrap().children,
            tree.get("/").unwrap().children
        );
        assert_eq!(rebuilt.ephemerals_of(7), ["/a/x"]);
        let mut swapped = order.clone();
        swapped.swap(1, 2);
        assert!(Tree::from_depth_first(swapped).is_err());
        let mut unsorted = order;
        unsorted.swap(1, 3);
        assert!(Tree::from_depth_first(unsorted).is_err());
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

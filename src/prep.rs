//! Preparation: a write request becomes a change record ([`Txn`]), or the
//! error ZooKeeper would give, checked in ZooKeeper's order (path, ACL list,
//! parent, permission, version, ...). Nothing here changes the tree.
//!
//! The checks read the tree through an overlay of changes prepared but not
//! yet applied, so the operations of one multi see each other (a multi can
//! create `/a` and then `/a/b`). This is ZooKeeper's "outstanding changes".

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use canopy_protocol::{
    perms, Acl, CheckVersionRequest, CreateMode, CreateRequest, DeleteRequest, ErrorCode, Id,
    MultiOp, OpCode, SetAclRequest, SetDataRequest,
};

use crate::acl;
use crate::path;
use crate::quota::{self, WriteLimits};
use crate::tree::{
    NodeKind, Tree, CONFIG_PATH, CONTAINER_OWNER, MAX_TTL, QUOTA_PATH, ZOOKEEPER_PATH,
};
use crate::txn::Txn;

/// What the checks need to know of a node, possibly changed by earlier
/// operations of the same request.
#[derive(Debug, Clone)]
struct NodeView {
    version: i32,
    aversion: i32,
    creates: i32,
    num_children: i32,
    owner: i64,
    acl: Arc<Vec<Acl>>,
}

/// Settings that change what preparation accepts.
#[derive(Debug, Clone, Copy)]
pub struct PrepRules {
    pub ttl_enabled: bool,
}

/// Prepares the writes of one request against the tree plus an overlay.
pub struct Prep<'a> {
    tree: &'a Tree,
    overlay: HashMap<String, Option<NodeView>>,
    session_id: i64,
    identities: &'a [Id],
    rules: PrepRules,
    limits: WriteLimits,
}

/// Whether a path is one ZooKeeper never lets a client delete.
fn is_special(path: &str) -> bool {
    matches!(path, "/" | ZOOKEEPER_PATH | QUOTA_PATH | CONFIG_PATH)
}

/// ZooKeeper's parent check for create and delete: a slash and no NUL.
fn parent_of(path: &str) -> Result<&str, ErrorCode> {
    if !path.contains('/') || path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    Ok(path::parent(path))
}

/// ZooKeeper's version check; the next version skips -1 (which means "any").
fn next_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(match current.wrapping_add(1) {
        -1 => 0,
        next => next,
    })
}

fn valid_path(path: &str) -> Result<(), ErrorCode> {
    path::validate(path, false).map_err(|_| ErrorCode::BadArguments)
}

impl<'a> Prep<'a> {
    pub fn new(tree: &'a Tree, session_id: i64, identities: &'a [Id], rules: PrepRules) -> Self {
        Prep {
            tree,
            overlay: HashMap::new(),
            session_id,
            identities,
            rules,
            limits: WriteLimits::default(),
        }
    }

    /// Applies quotas and the children cap to creates and setData (none by
    /// default).
    pub fn with_limits(mut self, limits: WriteLimits) -> Self {
        self.limits = limits;
        self
    }

    fn view(&self, path: &str) -> Result<NodeView, ErrorCode> {
        let found = match self.overlay.get(path) {
            Some(view) => view.clone(),
            None => self.tree.get(path).map(|node| NodeView {
                version: node.version,
                aversion: node.aversion,
                creates: node.creates,
                num_children: node.num_children() as i32,
                owner: node.ephemeral_owner,
                acl: self.tree.acl(node).clone(),
            }),
        };
        found.ok_or(ErrorCode::NoNode)
    }

    fn exists(&self, path: &str) -> bool {
        self.view(path).is_ok()
    }

    fn check_acl(&self, view: &NodeView, perm: i32) -> Result<(), ErrorCode> {
        acl::check(&view.acl, perm, self.identities)
    }

    /// create, create2, createContainer and createTTL (`ttl` is -1 unless createTTL).
    pub fn create(
        &mut self,
        op: OpCode,
        request: &CreateRequest,
        ttl: i64,
    ) -> Result<Txn, ErrorCode> {
        let mode = CreateMode::from_flags(request.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.rules.ttl_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl_ok = if mode.is_ttl() {
            ttl > 0 && ttl <= MAX_TTL
        } else {
            ttl < 0
        };
        if !ttl_ok {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(&request.path)?;
        let acl = acl::fixup(&request.acl, self.identities)?;
        let parent = self.view(parent_path)?;
        self.check_acl(&parent, perms::CREATE)?;
        let mut path = request.path.clone();
        if mode.is_sequential() {
            path.push_str(&format!("{:010}", parent.creates));
        }
        valid_path(&path)?;
        if self.exists(&path) {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(NodeKind::from_owner(parent.owner), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        // Where ZooKeeper checks quotas: after the existence and parent checks.
        if self.limits.enforce_quota {
            let bytes = request.data.as_ref().map_or(0, |d| d.len() as i64);
            quota::check_quota(self.tree, &path, bytes, 1)?;
        }
        quota::check_children(
            parent_path,
            parent.num_children.max(0) as usize,
            self.limits.max_children,
        )?;
        // The opcode, not the flags, makes a container: ZooKeeper records a
        // plain create with the container flag as a persistent node.
        let owner = if op == OpCode::CreateContainer {
            CONTAINER_OWNER
        } else if mode.is_ttl() {
            NodeKind::ttl_owner(ttl)
        } else if mode.is_ephemeral() {
            self.session_id
        } else {
            0
        };
        let parent_cversion = parent.creates.wrapping_add(1);
        let acl_arc = Arc::new(acl.clone());
        self.overlay.insert(
            parent_path.to_string(),
            Some(NodeView {
                creates: parent_cversion,
                num_children: parent.num_children + 1,
                ..parent
            }),
        );
        self.overlay.insert(
            path.clone(),
            Some(NodeView {
                version: 0,
                aversion: 0,
                creates: 0,
                num_children: 0,
                owner,
                acl: acl_arc,
            }),
        );
        Ok(Txn::Create {
            path,
            data: request.data.clone(),
            acl,
            ephemeral_owner: owner,
            parent_cversion,
        })
    }

    pub fn delete(&mut self, request: &DeleteRequest) -> Result<Txn, ErrorCode> {
        let path = &request.path;
        if is_special(path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(path)?;
        let parent = self.view(parent_path)?;
        self.check_acl(&parent, perms::DELETE)?;
        let node = self.view(path)?;
        next_version(node.version, request.version)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.record_delete(path, parent_path, parent);
        Ok(Txn::Delete { path: path.clone() })
    }

    fn record_delete(&mut self, path: &str, parent_path: &str, parent: NodeView) {
        self.overlay.insert(
            parent_path.to_string(),
            Some(NodeView {
                num_children: parent.num_children - 1,
                ..parent
            }),
        );
        self.overlay.insert(path.to_string(), None);
    }

    /// The server's own removal of an empty container or expired TTL node.
    pub fn delete_container(&mut self, path: &str) -> Result<Txn, ErrorCode> {
        if is_special(path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(path)?;
        let node = self.view(path)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if matches!(
            NodeKind::from_owner(node.owner),
            NodeKind::Ephemeral(_) | NodeKind::Persistent
        ) {
            return Err(ErrorCode::BadVersion);
        }
        let parent = self.view(parent_path)?;
        self.record_delete(path, parent_path, parent);
        Ok(Txn::Delete {
            path: path.to_string(),
        })
    }

    pub fn set_data(&mut self, request: &SetDataRequest) -> Result<Txn, ErrorCode> {
        self.set_data_parts(&request.path, &request.data, request.version)
    }

    fn set_data_parts(
        &mut self,
        path: &str,
        data: &Option<Bytes>,
        expected: i32,
    ) -> Result<Txn, ErrorCode> {
        valid_path(path)?;
        let node = self.view(path)?;
        self.check_acl(&node, perms::WRITE)?;
        // ZooKeeper checks the quota between the ACL and the version.
        if self.limits.enforce_quota {
            let old = self.tree.get(path).map_or(0, |n| n.data_len() as i64);
            let new = data.as_ref().map_or(0, |d| d.len() as i64);
            quota::check_quota(self.tree, path, new - old, 0)?;
        }
        let version = next_version(node.version, expected)?;
        self.overlay
            .insert(path.to_string(), Some(NodeView { version, ..node }));
        Ok(Txn::SetData {
            path: path.to_string(),
            data: data.clone(),
            version,
        })
    }

    pub fn set_acl(&mut self, request: &SetAclRequest) -> Result<Txn, ErrorCode> {
        let path = &request.path;
        valid_path(path)?;
        let acl = acl::fixup(&request.acl, self.identities)?;
        let node = self.view(path)?;
        self.check_acl(&node, perms::ADMIN)?;
        let version = next_version(node.aversion, request.version)?;
        self.overlay.insert(
            path.clone(),
            Some(NodeView {
                aversion: version,
                acl: Arc::new(acl.clone()),
                ..node
            }),
        );
        Ok(Txn::SetAcl {
            path: path.clone(),
            acl,
            version,
        })
    }

    pub fn check(&mut self, request: &CheckVersionRequest) -> Result<Txn, ErrorCode> {
        valid_path(&request.path)?;
        let node = self.view(&request.path)?;
        self.check_acl(&node, perms::READ)?;
        next_version(node.version, request.version)?;
        Ok(Txn::Check {
            path: request.path.clone(),
        })
    }

    fn op(&mut self, op: &MultiOp) -> Result<Txn, ErrorCode> {
        match op {
            MultiOp::Create(r) => self.create(OpCode::Create, r, -1),
            MultiOp::Create2(r) => self.create(OpCode::Create2, r, -1),
            MultiOp::CreateContainer(r) => self.create(OpCode::CreateContainer, r, -1),
            MultiOp::CreateTtl(r) => {
                let request = CreateRequest {
                    path: r.path.clone(),
                    data: r.data.clone(),
                    acl: r.acl.clone(),
                    flags: r.flags,
                };
                self.create(OpCode::CreateTtl, &request, r.ttl)
            }
            MultiOp::Delete(r) => self.delete(r),
            MultiOp::SetData(r) => self.set_data(r),
            MultiOp::Check(r) => self.check(r),
            // Reads belong in multiRead; ZooKeeper's clients never mix them in.
            MultiOp::GetChildren(_) | MultiOp::GetData(_) => Err(ErrorCode::BadArguments),
        }
    }

    /// A multi: every operation's change, or, if one fails, an error record for
    /// each (0 before the failing one, its code, RuntimeInconsistency after),
    /// which is exactly how ZooKeeper reports a failed multi. The bool says
    /// whether it succeeded.
    pub fn multi(&mut self, ops: &[MultiOp]) -> (Txn, bool) {
        let mut parts = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            match self.op(op) {
                Ok(txn) => parts.push(txn),
                Err(code) => {
                    // Roll back whatever the earlier operations prepared.
                    self.overlay.clear();
                    let failed = (0..ops.len())
                        .map(|i| Txn::Error {
                            code: match i.cmp(&index) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => code.code(),
                                std::cmp::Ordering::Greater => {
                                    ErrorCode::RuntimeInconsistency.code()
                                }
                            },
                        })
                        .collect();
                    return (Txn::Multi(failed), false);
                }
            }
        }
        (Txn::Multi(parts), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::TxnHeader;

    const RULES: PrepRules = PrepRules { ttl_enabled: true };

    fn create_req(path: &str, flags: i32) -> CreateRequest {
        CreateRequest {
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags,
        }
    }

    fn apply(tree: &mut Tree, zxid: i64, txn: &Txn) {
        let header = TxnHeader {
            zxid,
            time: 0,
            session_id: 5,
        };
        tree.apply(&header, txn).unwrap();
    }

    #[test]
    fn sequential_suffix_is_the_parent_create_count() {
        let mut tree = Tree::new();
        let ids: Vec<Id> = Vec::new();
        let txn = Prep::new(&tree, 5, &ids, RULES)
            .create(OpCode::Create, &create_req("/q", 0), -1)
            .unwrap();
        apply(&mut tree, 2, &txn);
        for (zxid, expected) in [(3, "/q/n-0000000000"), (4, "/q/n-0000000001")] {
            let txn = Prep::new(&tree, 5, &ids, RULES)
                .create(OpCode::Create, &create_req("/q/n-", 2), -1)
                .unwrap();
            let Txn::Create { path, .. } = &txn else {
                panic!()
            };
            assert_eq!(path, expected);
            apply(&mut tree, zxid, &txn);
        }
    }

    #[test]
    fn errors_come_in_zookeepers_order() {
        let tree = Tree::new();
        let ids: Vec<Id> = Vec::new();
        let mut prep = Prep::new(&tree, 5, &ids, RULES);
        let err = |r: Result<Txn, ErrorCode>| r.unwrap_err();
        assert_eq!(
            err(prep.create(OpCode::Create, &create_req("/a/b", 0), -1)),
            ErrorCode::NoNode
        );
        assert_eq!(
            err(prep.create(OpCode::Create, &create_req("/zookeeper", 0), -1)),
            ErrorCode::NodeExists
        );
        assert_eq!(
            err(prep.create(OpCode::Create, &create_req("bad", 0), -1)),
            ErrorCode::BadArguments
        );
        assert_eq!(
            err(prep.create(OpCode::Create, &create_req("/x", 9), -1)),
            ErrorCode::BadArguments
        );
        assert_eq!(
            err(prep.create(OpCode::Create, &create_req("/x", 5), -1)),
            ErrorCode::BadArguments
        );
        let mut no_acl = create_req("/x", 0);
        no_acl.acl.clear();
        assert_eq!(
            err(prep.create(OpCode::Create, &no_acl, -1)),
            ErrorCode::InvalidAcl
        );
        assert_eq!(
            err(prep.delete(&DeleteRequest {
                path: "/zookeeper".into(),
                version: -1
            })),
            ErrorCode::BadArguments
        );
        assert_eq!(
            err(prep.delete(&DeleteRequest {
                path: "/none".into(),
                version: -1
            })),
            ErrorCode::NoNode
        );
    }

    #[test]
    fn multi_operations_see_each_other_and_fail_together() {
        let tree = Tree::new();
        let ids: Vec<Id> = Vec::new();
        let ops = vec![
            MultiOp::Create(create_req("/m", 0)),
            MultiOp::Create(create_req("/m/child", 0)),
        ];
        let (txn, ok) = Prep::new(&tree, 5, &ids, RULES).multi(&ops);
        assert!(ok);
        assert!(matches!(txn, Txn::Multi(ref parts) if parts.len() == 2));

        let ops = vec![
            MultiOp::Create(create_req("/m", 0)),
            MultiOp::Delete(DeleteRequest {
                path: "/nope".into(),
                version: -1,
            }),
            MultiOp::Create(create_req("/m2", 0)),
        ];
        let (txn, ok) = Prep::new(&tree, 5, &ids, RULES).multi(&ops);
        assert!(!ok);
        assert_eq!(
            txn,
            Txn::Multi(vec![
                Txn::Error { code: 0 },
                Txn::Error { code: -101 },
                Txn::Error { code: -2 }
            ])
        );
    }
}

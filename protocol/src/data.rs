//! The records that describe znodes: [`Stat`], [`Acl`] and [`Id`].

use crate::jute::jute_record;

jute_record! {
    /// An identity: a scheme (`world`, `auth`, `digest`, `ip`, `x509`, `super`)
    /// and an id whose meaning depends on it (`anyone`, `user:hash`, `10.0.0.0/8`).
    pub struct Id {
        pub scheme: String,
        pub id: String,
    }
}

jute_record! {
    /// One access-control entry: the permissions granted to an identity.
    pub struct Acl {
        /// A bit set of [`perms`].
        pub perms: i32,
        pub id: Id,
    }
}

/// Permission bits of an [`Acl`], as `ZooDefs.Perms` defines them.
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 1 << 1;
    pub const CREATE: i32 = 1 << 2;
    pub const DELETE: i32 = 1 << 3;
    pub const ADMIN: i32 = 1 << 4;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// `world:anyone`, the identity every client has.
    pub fn anyone() -> Self {
        Id::new("world", "anyone")
    }
}

impl Acl {
    /// `world:anyone` with every permission: ZooKeeper's `OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::anyone(),
        }]
    }

    /// `world:anyone` may read: ZooKeeper's `READ_ACL_UNSAFE`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::READ,
            id: Id::anyone(),
        }]
    }
}

jute_record! {
    /// A znode's metadata, as every read and write reply carries it.
    pub struct Stat {
        /// Zxid of the change that created the znode.
        pub czxid: i64,
        /// Zxid of the change that last modified its data.
        pub mzxid: i64,
        /// Creation time, milliseconds since the epoch.
        pub ctime: i64,
        /// Time of the last data change, milliseconds since the epoch.
        pub mtime: i64,
        /// Number of data changes.
        pub version: i32,
        /// Number of changes to the children (creates and deletes).
        pub cversion: i32,
        /// Number of ACL changes.
        pub aversion: i32,
        /// The owning session of an ephemeral znode; 0 for persistent ones, and
        /// special markers for container and TTL znodes.
        pub ephemeral_owner: i64,
        /// Length of the data in bytes.
        pub data_length: i32,
        /// Number of children.
        pub num_children: i32,
        /// Zxid of the change that last added or removed a child.
        pub pzxid: i64,
    }
}

/// `ephemeralOwner` of a container node (ZooKeeper's `CONTAINER_EPHEMERAL_OWNER`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// The high byte that marks a TTL node's `ephemeralOwner`; the TTL is below it.
const TTL_MARK: i64 = 0xff00_0000_0000_0000_u64 as i64;
/// The longest TTL ZooKeeper accepts, in milliseconds (40 bits).
pub const MAX_TTL: i64 = 0xff_ffff_ffff;

/// What kind of node an `ephemeralOwner` value stands for: ZooKeeper marks
/// containers and TTL nodes there, beside the owning session of an ephemeral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(i64),
    Container,
    Ttl(i64),
}

impl NodeKind {
    pub fn from_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner & TTL_MARK == TTL_MARK {
            NodeKind::Ttl(owner & MAX_TTL)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }

    /// The `ephemeralOwner` that marks a TTL node.
    pub fn ttl_owner(ttl: i64) -> i64 {
        TTL_MARK | (ttl & MAX_TTL)
    }

    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Persistent => "persistent",
            NodeKind::Ephemeral(_) => "ephemeral",
            NodeKind::Container => "container",
            NodeKind::Ttl(_) => "ttl",
        }
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(self, NodeKind::Ephemeral(_))
    }
}

impl Stat {
    /// The kind of node this Stat describes, read off `ephemeral_owner`.
    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.ephemeral_owner)
    }
}

//! The arguments and results of writes: create options, and the operations
//! and outcomes of `multi` and `multi_read`.

use canopy_protocol::{Acl, CreateMode, Stat};

use crate::error::Error;

/// How to create a node: its mode, ACL and, for TTL modes, the TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    pub mode: CreateMode,
    pub acl: Vec<Acl>,
    /// Milliseconds; required by (and only allowed with) the TTL modes.
    pub ttl_ms: Option<i64>,
}

impl CreateOptions {
    /// `mode` with ZooKeeper's open ACL (`world:anyone`, all permissions).
    pub fn new(mode: CreateMode) -> CreateOptions {
        CreateOptions {
            mode,
            acl: Acl::open_unsafe(),
            ttl_ms: None,
        }
    }

    pub fn persistent() -> CreateOptions {
        CreateOptions::new(CreateMode::Persistent)
    }

    pub fn ephemeral() -> CreateOptions {
        CreateOptions::new(CreateMode::Ephemeral)
    }

    pub fn container() -> CreateOptions {
        CreateOptions::new(CreateMode::Container)
    }

    /// A persistent node the server deletes once it has gone `ttl_ms`
    /// without changes and has no children.
    pub fn ttl(ttl_ms: i64) -> CreateOptions {
        CreateOptions {
            ttl_ms: Some(ttl_ms),
            ..CreateOptions::new(CreateMode::PersistentWithTtl)
        }
    }

    pub fn with_acl(mut self, acl: Vec<Acl>) -> CreateOptions {
        self.acl = acl;
        self
    }

    pub fn with_ttl(mut self, ttl_ms: i64) -> CreateOptions {
        self.ttl_ms = Some(ttl_ms);
        self
    }

    /// Refuses combinations the server would refuse, before sending.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match (self.mode.is_ttl(), self.ttl_ms) {
            (true, Some(ttl)) if ttl > 0 => Ok(()),
            (true, _) => Err(Error::BadArguments("TTL modes need a positive ttl".into())),
            (false, Some(_)) => Err(Error::BadArguments(
                "a TTL is only allowed with a TTL mode".into(),
            )),
            (false, None) if self.acl.is_empty() => Err(Error::BadArguments("an empty ACL".into())),
            (false, None) => Ok(()),
        }
    }
}

/// One write of a `multi`: all of them are applied, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
        options: CreateOptions,
    },
    /// `version: None` deletes any version.
    Delete { path: String, version: Option<i32> },
    SetData {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    /// Fails the whole multi unless the node has this data version.
    Check { path: String, version: i32 },
}

impl Op {
    pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>, options: CreateOptions) -> Op {
        Op::Create {
            path: path.into(),
            data: data.into(),
            options,
        }
    }

    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Delete {
            path: path.into(),
            version,
        }
    }

    pub fn set_data(path: impl Into<String>, data: impl Into<Vec<u8>>, version: Option<i32>) -> Op {
        Op::SetData {
            path: path.into(),
            data: data.into(),
            version,
        }
    }

    pub fn check(path: impl Into<String>, version: i32) -> Op {
        Op::Check {
            path: path.into(),
            version,
        }
    }
}

/// The result of one write of a successful `multi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// The created path (client path, sequence suffix included) and its
    /// Stat. ZooKeeper 3.8 sends no Stat for persistent and ephemeral
    /// creates inside a multi (only for containers and TTL nodes), hence the
    /// `Option`.
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
}

/// One read of a `multi_read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData(String),
    GetChildren(String),
}

/// The result of one read of a `multi_read`; each read succeeds or fails on
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    Data { data: Vec<u8>, stat: Stat },
    Children(Vec<String>),
    Error(Error),
}

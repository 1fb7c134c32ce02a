//! `canopy-protocol`: ZooKeeper's jute wire format, as spoken by ZooKeeper 3.9.
//!
//! # Layout
//! - [`jute`]: the primitives (int, long, boolean, buffer, ustring, vector) and
//!   the [`Jute`] trait that every record implements: a `nom` decoder and an
//!   encoder onto [`bytes::BufMut`].
//! - [`connect`]: the handshake records, with the optional `readOnly` flag.
//! - [`header`]: request, reply and multi headers, and the reserved xids.
//! - [`data`]: `Stat`, `ACL`, `Id` and the permission bits.
//! - [`requests`] / [`responses`]: one record per request and reply shape.
//! - [`multi`]: multi and multiRead requests and their results.
//! - [`watch`]: notifications, event types, keeper states, (re)registering watches.
//! - [`message`]: whole request and reply messages, dispatched on the opcode.
//! - [`opcode`], [`error`]: opcodes and error codes.
//! - [`codec`]: the length-prefixed frame codec for `tokio-util`.
//!
//! The crate knows nothing of servers or clients: both build on it.

pub mod jute;

#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;

pub mod codec;
pub mod connect;
pub mod data;
pub mod error;
pub mod header;
pub mod message;
pub mod multi;
pub mod opcode;
pub mod requests;
pub mod responses;
pub mod watch;

pub use codec::{FrameCodec, FrameError, DEFAULT_MAX_FRAME};
pub use connect::{ConnectRequest, ConnectResponse};
pub use data::{perms, Acl, Id, NodeKind, Stat};
pub use error::{DecodeError, ErrorCode};
pub use header::{xid, MultiHeader, ReplyHeader, RequestHeader};
pub use jute::Jute;
pub use message::{build_frame, notification_frame, reply_frame, Request, Response};
pub use multi::{MultiOp, MultiRequest, MultiResponse, OpResult};
pub use opcode::OpCode;
pub use requests::*;
pub use responses::*;
pub use watch::*;

#[cfg(test)]
mod roundtrip_tests;

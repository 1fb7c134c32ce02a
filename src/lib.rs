//! Canopy: a ZooKeeper-wire-compatible tree store, built to be the service
//! registry of RPC frameworks.
//!
//! # Layout
//! - [`config`]: settings, their defaults and the TOML file.
//! - [`server`]: start-up: data folder, periodic tasks, the client port.
//! - [`net`]: connections: handshake, read loop, write loop.
//! - [`core`]: the state machine behind one lock: requests in, replies and
//!   notifications out, every change through [`core::Core::commit`].
//! - [`prep`]: a write request becomes a change record or ZooKeeper's error.
//! - [`txn`]: the change records.
//! - [`tree`]: the znodes, and [`tree::Tree::apply`], the one place a change
//!   record changes them.
//! - [`watch`]: one-shot, persistent and recursive watches.
//! - [`session`]: the session table and its tick-bucket expiry.
//! - [`storage`]: the write-ahead log, snapshots and recovery.
//! - [`acl`]: ACL schemes, checks and `addauth`.
//! - [`path`]: znode path rules.
//! - [`fourlw`]: the four-letter words; [`stats`]: their counters.
//! - [`testing`]: a socket-free core and invariant checks, for tests and
//!   the fuzz targets.
//!
//! The wire format lives in the `canopy-protocol` crate.

pub mod acl;
pub mod config;
pub mod core;
pub mod fourlw;
pub mod net;
pub mod path;
pub mod prep;
pub mod server;
pub mod session;
pub mod stats;
pub mod storage;
pub mod testing;
pub mod tree;
pub mod txn;
pub mod watch;

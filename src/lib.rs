//! Canopy: a ZooKeeper-wire-compatible tree store, built to be the service
//! registry of RPC frameworks.
//!
//! # Layout
//! - [`config`]: settings, their defaults and the TOML file.
//! - [`server`]: start-up: data folder, periodic tasks, the client port.
//! - [`net`]: connections: handshake, read loop, write loop; [`stream`]:
//!   their plain or TLS halves; [`outbound`]: the bounded outbound queue.
//! - [`limits`]: the open-file limit; [`quota`]: quotas and the children cap.
//! - [`outbound`]: a connection's outbound queue, bounded in bytes.
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
//! - [`auth`]: SASL requests and enforced authentication; [`sasl`]:
//!   DIGEST-MD5 and JAAS users; [`tls`]: the secure client port; [`x509`]:
//!   client certificate subjects as `x509` identities.
//! - [`path`]: znode path rules.
//! - [`fourlw`]: the four-letter words; [`stats`]: their counters.
//! - [`monitor`]: the `mntr` figures; [`metrics`]: monotonic counters and
//!   latency histograms behind them and `/metrics`.
//! - [`admin`]: the HTTP admin server (ZooKeeper's AdminServer commands,
//!   sessions, the Dubbo registry view, Prometheus metrics).
//! - [`access`]: allow/deny lists and connection limits at accept.
//! - [`logging`]: text or JSON logs, level changeable at run time.
//! - [`shutdown`]: graceful stop on SIGTERM.
//! - [`zoocfg`]: reading a ZooKeeper `zoo.cfg`.
//! - [`testing`]: a socket-free core and invariant checks, for tests and
//!   the fuzz targets.
//!
//! The wire format lives in the `canopy-protocol` crate.

pub mod access;
pub mod acl;
pub mod admin;
pub mod auth;
pub mod config;
pub mod core;
pub mod fourlw;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod net;
pub mod outbound;
pub mod path;
pub mod prep;
pub mod quota;
pub mod sasl;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod stats;
pub mod storage;
pub mod stream;
pub mod testing;
pub mod tls;
pub mod tree;
pub mod txn;
pub mod watch;
pub mod x509;
pub mod zoocfg;

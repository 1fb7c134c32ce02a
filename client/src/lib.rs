//! `canopy-client`: an async ZooKeeper client, a Dubbo-layout service
//! registry on top of it, and load-balancing selectors. It speaks the wire
//! format of [`canopy_protocol`] and works against Canopy and Apache
//! ZooKeeper alike.
//!
//! # Layout
//! - [`client`]: [`Client`], one handle per session, one method per operation.
//! - [`session`]: the task behind a client: connection, pipelining and reply
//!   matching (`depot`), pings, reconnects, watches (`watch`), request ids (`xid`).
//! - [`connect_string`]: `host:port,host:port/chroot`, chroot mapping, path rules.
//! - [`ops`]: create options, multi and multiRead operations and outcomes.
//! - [`error`]: [`Error`], with every ZooKeeper error code typed.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`registry`]: Dubbo's `/dubbo/<interface>/<category>/<url>` layout and the
//!   Dubbo 3 `/services/<app>/<ip:port>` layout, surviving session expiry.
//! - [`url`]: Dubbo URLs; [`balance`]: provider selectors.
//!
//! ```no_run
//! # async fn demo() -> canopy_client::Result<()> {
//! use canopy_client::{Client, CreateOptions};
//! let client = Client::connect("127.0.0.1:2181,127.0.0.1:2182/app").await?;
//! client.create("/greeting", b"hello", &CreateOptions::persistent()).await?;
//! let (data, _stat, watch) = client.get_data_and_watch("/greeting").await?;
//! assert_eq!(data, b"hello");
//! client.set_data("/greeting", b"bye", None).await?;
//! println!("{:?}", watch.await.event_type); // NodeDataChanged
//! # Ok(()) }
//! ```
pub use canopy_protocol as protocol;
pub mod balance;
pub mod url;

pub mod backoff;
pub mod client;
pub mod connect_string;
pub mod error;
pub mod ops;
pub mod registry;
pub mod session;

pub use backoff::Backoff;
pub use canopy_protocol::{
    perms, Acl, AddWatchMode, ClientInfo, CreateMode, EventType, Id, Stat, WatcherType,
};
pub use client::{Client, ClientBuilder, StateStream};
pub use error::{Error, Result};
pub use ops::{CreateOptions, Op, OpOutcome, ReadOp, ReadOutcome};
pub use session::watch::{OneshotWatcher, PersistentWatcher, WatchedEvent};
pub use session::SessionState;

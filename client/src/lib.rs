//! The async ZooKeeper client (see issue 4); for now only re-exports the protocol crate.
pub use canopy_protocol as protocol;

//! Resource bounds on writes: ZooKeeper's quotas and Canopy's cap on the
//! children of one node.
//!
//! Quotas work as in ZooKeeper 3.7+. A quota on `/app` is the node
//! `/zookeeper/quota/app/zookeeper_limits`, whose data is a list such as
//! `count=10,bytes=-1` (soft limits) or with `countHardLimit=` and
//! `byteHardLimit=` (hard limits); `-1` means none. Next to it,
//! `zookeeper_stats` holds `count=N,bytes=M`: the nodes of the subtree (the
//! quota root included) and the sum of their data lengths. The server
//! keeps the stats node current on every create, delete and setData under
//! the root, changing its data without a new version or zxid, as ZooKeeper's
//! DataTree does; clients (zkCli's `setquota`, `listquota`) only create and
//! read these nodes.
//!
//! With `enforce_quota` on (ZooKeeper's `zookeeper.enforceQuota`), a create
//! or setData that would take the subtree past a hard limit is refused with
//! QuotaExceeded (-125); passing a soft limit is only logged. As in
//! ZooKeeper, the check reads the committed stats, so the operations of one
//! multi do not see each other's counts, and only the deepest quota above a
//! path counts.
//!
//! The children cap is Canopy's own: a create under a node that already has
//! `max_children_per_node` children is refused with QuotaExceeded too (the
//! code a ZooKeeper client already reads as "a limit was reached"), so a
//! client leaking ephemeral nodes in a loop is stopped before it fills the
//! server's memory.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use canopy_protocol::ErrorCode;
use parking_lot::Mutex;

use crate::path;
use crate::tree::{Tree, QUOTA_PATH};

/// The node holding a quota's limits.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// The node holding a quota's current usage.
pub const STATS_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD_LIMIT: &str = "countHardLimit";
const BYTE_HARD_LIMIT: &str = "byteHardLimit";

/// ZooKeeper's StatsTrack: `key=value` pairs separated by `,` or `;`, in the
/// order they were written; a missing key reads as -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    pairs: Vec<(String, i64)>,
}

impl StatsTrack {
    /// Parses the data of a limits or stats node. Pairs that do not parse
    /// are skipped (ZooKeeper would throw and ignore the whole quota).
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut track = StatsTrack::default();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            // As Java's split("="): "bytes=-1=" reads as bytes=-1 (zkCli 3.8
            // writes that).
            let value = value.split('=').next().unwrap_or_default();
            let value = if value.is_empty() {
                Some(-1)
            } else {
                value.trim().parse().ok()
            };
            if let Some(value) = value {
                track.set(key, value);
            }
        }
        track
    }

    pub fn get(&self, key: &str) -> i64 {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or(-1, |(_, v)| *v)
    }

    pub fn set(&mut self, key: &str, value: i64) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((key.to_string(), value)),
        }
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }

    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }

    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD_LIMIT)
    }

    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTE_HARD_LIMIT)
    }

    /// ZooKeeper's text form: `count` and `bytes` first (always), then the
    /// other keys.
    pub fn to_text(&self) -> String {
        let mut text = format!("{COUNT}={},{BYTES}={}", self.count(), self.bytes());
        for (key, value) in &self.pairs {
            if key != COUNT && key != BYTES {
                text.push_str(&format!(",{key}={value}"));
            }
        }
        text
    }
}

/// `/zookeeper/quota/a/b` for the quota root `/a/b`.
pub fn quota_dir(root: &str) -> String {
    format!("{QUOTA_PATH}{root}")
}

pub fn limits_path(root: &str) -> String {
    format!("{QUOTA_PATH}{root}/{LIMIT_NODE}")
}

pub fn stats_path(root: &str) -> String {
    format!("{QUOTA_PATH}{root}/{STATS_NODE}")
}

/// The quota root a node under `/zookeeper/quota` speaks for (ZooKeeper's
/// trimQuotaPath), if it is one of a quota's own nodes (`name` is the
/// limits or stats node).
fn root_of_quota_node(path: &str) -> Option<(String, &str)> {
    let parent = path::parent(path);
    let root = parent.strip_prefix(QUOTA_PATH)?;
    if !root.starts_with('/') {
        return None;
    }
    let name = path::name(path);
    (name == LIMIT_NODE || name == STATS_NODE).then(|| (root.to_string(), name))
}

/// The paths that have a quota (ZooKeeper's pTrie).
#[derive(Debug, Clone, Default)]
pub struct QuotaIndex {
    roots: BTreeSet<String>,
}

impl QuotaIndex {
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    pub fn roots(&self) -> impl Iterator<Item = &String> {
        self.roots.iter()
    }

    /// The deepest quota root at or above `path` (ZooKeeper's
    /// getMaxPrefixWithQuota: whole path components, never `/`).
    pub fn covering(&self, path: &str) -> Option<&str> {
        if self.roots.is_empty() {
            return None;
        }
        let mut current = path;
        while current != "/" && !current.is_empty() {
            if let Some(root) = self.roots.get(current) {
                return Some(root);
            }
            current = path::parent(current);
        }
        None
    }
}

/// Keeps quotas current as the tree changes. Called by the tree after each
/// node it adds, removes or changes the data of, live and on replay alike.
impl Tree {
    pub(crate) fn quota_after_create(&mut self, path: &str, data_len: i64) {
        if let Some((root, name)) = root_of_quota_node(path) {
            if name == LIMIT_NODE {
                self.quotas_mut().roots.insert(root);
            } else {
                // A new stats node starts from the subtree as it is.
                self.recount_quota(&root);
            }
        }
        self.add_to_quota_stats(path, data_len, 1);
    }

    pub(crate) fn quota_after_delete(&mut self, path: &str, data_len: i64) {
        if let Some((root, LIMIT_NODE)) = root_of_quota_node(path) {
            self.quotas_mut().roots.remove(&root);
        }
        self.add_to_quota_stats(path, -data_len, -1);
    }

    pub(crate) fn quota_after_set_data(&mut self, path: &str, old_len: i64, new_len: i64) {
        self.add_to_quota_stats(path, new_len - old_len, 0);
    }

    /// After loading a snapshot: every quota under `/zookeeper/quota`, with
    /// its stats counted afresh (as ZooKeeper's setupQuota does).
    pub(crate) fn rebuild_quotas(&mut self) {
        let mut found = Vec::new();
        let mut stack = vec![QUOTA_PATH.to_string()];
        while let Some(current) = stack.pop() {
            let Some(node) = self.get(&current) else {
                continue;
            };
            for child in self.child_names(node) {
                let child_path = path::join(&current, child);
                if child == LIMIT_NODE {
                    if let Some((root, _)) = root_of_quota_node(&child_path) {
                        found.push(root);
                    }
                } else {
                    stack.push(child_path);
                }
            }
        }
        for root in found {
            self.quotas_mut().roots.insert(root.clone());
            self.recount_quota(&root);
        }
    }

    fn add_to_quota_stats(&mut self, path: &str, bytes: i64, count: i64) {
        let Some(root) = self.quotas().covering(path).map(str::to_string) else {
            return;
        };
        let stats_path = stats_path(&root);
        let Some(node) = self.get(&stats_path) else {
            return;
        };
        let mut stats = StatsTrack::parse(node.data().unwrap_or_default());
        stats.set(COUNT, stats.count() + count);
        stats.set(BYTES, stats.bytes() + bytes);
        self.set_data_silently(&stats_path, stats.to_text().into_bytes().into());
    }

    /// Sets a stats node to the count and bytes of its subtree now.
    fn recount_quota(&mut self, root: &str) {
        let (count, bytes) = self.subtree_usage(root);
        let mut stats = StatsTrack::default();
        stats.set(COUNT, count);
        stats.set(BYTES, bytes);
        let stats_path = stats_path(root);
        if self.get(&stats_path).is_some() {
            self.set_data_silently(&stats_path, stats.to_text().into_bytes().into());
        }
    }

    /// Nodes in the subtree at `root` (itself included) and their data bytes.
    fn subtree_usage(&self, root: &str) -> (i64, i64) {
        let (mut count, mut bytes) = (0, 0);
        let mut stack = vec![root.to_string()];
        while let Some(current) = stack.pop() {
            let Some(node) = self.get(&current) else {
                continue;
            };
            count += 1;
            bytes += node.data_len() as i64;
            for child in self.child_names(node) {
                stack.push(path::join(&current, child));
            }
        }
        (count, bytes)
    }
}

/// The write limits preparation applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteLimits {
    /// Refuse writes past hard quotas.
    pub enforce_quota: bool,
    /// Most children per node; 0 means no cap.
    pub max_children: usize,
}

/// ZooKeeper's checkQuota: whether adding `bytes` and `count` nodes under
/// the quota covering `path` stays within its hard limits.
pub fn check_quota(tree: &Tree, path: &str, bytes: i64, count: i64) -> Result<(), ErrorCode> {
    let Some(root) = tree.quotas().covering(path) else {
        return Ok(());
    };
    let Some(limits) = tree.get(&limits_path(root)) else {
        return Ok(());
    };
    let limits = StatsTrack::parse(limits.data().unwrap_or_default());
    let check_count = count != 0 && (limits.count() > -1 || limits.count_hard_limit() > -1);
    let check_bytes = bytes != 0 && (limits.bytes() > -1 || limits.byte_hard_limit() > -1);
    if !check_count && !check_bytes {
        return Ok(());
    }
    let Some(stats) = tree.get(&stats_path(root)) else {
        return Ok(());
    };
    let stats = StatsTrack::parse(stats.data().unwrap_or_default());
    let checks = [
        (
            check_count,
            "count",
            stats.count() + count,
            limits.count_hard_limit(),
            limits.count(),
        ),
        (
            check_bytes,
            "bytes",
            stats.bytes() + bytes,
            limits.byte_hard_limit(),
            limits.bytes(),
        ),
    ];
    for (wanted, what, new_value, hard, soft) in checks {
        if !wanted {
            continue;
        }
        let is_hard = hard > -1;
        let limit = if is_hard { hard } else { soft };
        if new_value > limit {
            let kind = if is_hard { "hard" } else { "soft" };
            rate_limited_warn(&format!(
                "quota exceeded: {root} [{what} would be {new_value}, {kind} limit {limit}]"
            ));
            if is_hard {
                return Err(ErrorCode::QuotaExceeded);
            }
        }
    }
    Ok(())
}

/// The children cap: whether a node with `children` children may get one more.
pub fn check_children(parent: &str, children: usize, max_children: usize) -> Result<(), ErrorCode> {
    if max_children > 0 && children >= max_children {
        rate_limited_warn(&format!(
            "refusing a create under {parent}: it has {children} children, the limit (max_children_per_node) is {max_children}"
        ));
        return Err(ErrorCode::QuotaExceeded);
    }
    Ok(())
}

/// Logs at most one refusal a second: a client hitting a limit in a loop
/// must not flood the log (ZooKeeper rate-limits these messages too).
fn rate_limited_warn(message: &str) {
    static LAST: Mutex<Option<(Instant, u64)>> = parking_lot::const_mutex(None);
    let mut last = LAST.lock();
    let now = Instant::now();
    match last.as_mut() {
        Some((at, suppressed)) if now.duration_since(*at) < Duration::from_secs(1) => {
            *suppressed += 1;
        }
        _ => {
            let suppressed = last.map_or(0, |(_, s)| s);
            tracing::warn!(suppressed_since_last = suppressed, "{message}");
            *last = Some((now, 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_reads_and_writes_zookeepers_format() {
        let limits = StatsTrack::parse(b"count=-1,bytes=-1,countHardLimit=10");
        assert_eq!(limits.count(), -1);
        assert_eq!(limits.count_hard_limit(), 10);
        assert_eq!(limits.byte_hard_limit(), -1);
        // The old form with `;` and an empty value.
        let old = StatsTrack::parse(b"count=5;bytes=");
        assert_eq!((old.count(), old.bytes()), (5, -1));
        // What zkCli 3.8's setquota -N writes.
        let cli = StatsTrack::parse(b"count=-1,bytes=7=;byteHardLimit=-1;countHardLimit=4");
        assert_eq!((cli.bytes(), cli.count_hard_limit()), (7, 4));
        let mut stats = StatsTrack::default();
        stats.set("bytes", 7);
        stats.set("count", 2);
        assert_eq!(stats.to_text(), "count=2,bytes=7");
        assert_eq!(limits.to_text(), "count=-1,bytes=-1,countHardLimit=10");
    }

    #[test]
    fn covering_quota_is_the_deepest_by_whole_components() {
        let mut index = QuotaIndex::default();
        index.roots.insert("/a".into());
        index.roots.insert("/a/b".into());
        assert_eq!(index.covering("/a/b/c"), Some("/a/b"));
        assert_eq!(index.covering("/a/bc"), Some("/a"));
        assert_eq!(index.covering("/a"), Some("/a"));
        assert_eq!(index.covering("/ab"), None);
        assert_eq!(index.covering("/"), None);
    }

    #[test]
    fn children_cap() {
        assert!(check_children("/p", 9, 10).is_ok());
        assert_eq!(check_children("/p", 10, 10), Err(ErrorCode::QuotaExceeded));
        assert!(check_children("/p", 1_000_000, 0).is_ok());
    }
}

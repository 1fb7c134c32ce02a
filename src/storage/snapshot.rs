//! Snapshots: the whole tree and session table as of one zxid, written from
//! a frozen (copy-on-write) view of the tree while the server goes on, then
//! renamed into place only once complete and on disk.
//!
//! A snapshot is the magic bytes followed by framed records (see
//! [`super::frame`]), each carrying the snapshot's zxid:
//!
//! ```text
//! META      node count, session count, ACL count, wall-clock time
//! ACLS      (index, ACL)…        each distinct ACL once; nodes refer to it
//! SESSIONS  (id, timeout)…
//! NODES     (path, data, ACL index, stat fields, raw owner)…   chunks of ~256 KiB,
//!           depth first, children in creation order (older snapshots
//!           have them sorted by name; both load)
//! END       node count again, so a cut-short file cannot pass as whole
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use canopy_protocol::Acl;

use super::files::{self, SNAPSHOT_MAGIC};
use super::frame::{self, Frames};
use super::record::{put_acl, put_data, put_str, Reader};
use super::StorageError;
use crate::tree::{FrozenNodes, NodeRecord, Tree};

mod kind {
    pub const META: u8 = 1;
    pub const ACLS: u8 = 2;
    pub const SESSIONS: u8 = 3;
    pub const NODES: u8 = 4;
    pub const END: u8 = 5;
}

/// Records are cut at about this size.
const CHUNK_BYTES: usize = 256 * 1024;

/// What a snapshot holds.
pub struct SnapshotContent {
    pub zxid: i64,
    pub nodes: FrozenNodes,
    /// Live sessions and their timeouts.
    pub sessions: BTreeMap<i64, i32>,
}

/// What reading a snapshot gives back.
pub struct LoadedSnapshot {
    pub zxid: i64,
    pub tree: Tree,
    pub sessions: BTreeMap<i64, i32>,
    pub time_ms: i64,
}

/// Summary figures of a snapshot, for `canopy data`.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotSummary {
    pub zxid: i64,
    pub nodes: u64,
    pub sessions: u64,
    pub acls: u64,
    pub time_ms: i64,
}

/// Writes a snapshot into `dir` and returns its path. The file is written
/// under a temporary name, fsync'd, then renamed, so a snapshot file with its
/// final name is always complete.
pub fn write(dir: &Path, content: &SnapshotContent, time_ms: i64) -> std::io::Result<PathBuf> {
    let final_path = files::snapshot_path(dir, content.zxid);
    let mut tmp_name = final_path.clone().into_os_string();
    tmp_name.push(".tmp");
    let tmp_path = PathBuf::from(tmp_name);
    let file = std::fs::File::create(&tmp_path)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(SNAPSHOT_MAGIC)?;
    let zxid = content.zxid;
    let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);

    // Distinct ACLs, by the address of their shared list: nodes created with
    // the same list share it, so this is cheap and the file stays small.
    let mut acl_index: HashMap<*const Vec<Acl>, u32> = HashMap::new();
    let mut acls: Vec<&Arc<Vec<Acl>>> = Vec::new();
    for node in content.nodes.iter() {
        let acl = content.nodes.acl(node);
        acl_index.entry(Arc::as_ptr(acl)).or_insert_with(|| {
            acls.push(acl);
            (acls.len() - 1) as u32
        });
    }

    let at = frame::start(&mut buf);
    buf.push(kind::META);
    buf.extend_from_slice(&(content.nodes.len() as u64).to_be_bytes());
    buf.extend_from_slice(&(content.sessions.len() as u64).to_be_bytes());
    buf.extend_from_slice(&(acls.len() as u64).to_be_bytes());
    buf.extend_from_slice(&time_ms.to_be_bytes());
    frame::finish(&mut buf, at, zxid);

    write_chunks(
        &mut out,
        &mut buf,
        zxid,
        kind::ACLS,
        acls.iter().enumerate(),
        |b, (i, acl)| {
            b.extend_from_slice(&(i as u32).to_be_bytes());
            put_acl(b, acl);
        },
    )?;
    write_chunks(
        &mut out,
        &mut buf,
        zxid,
        kind::SESSIONS,
        content.sessions.iter(),
        |b, (id, timeout)| {
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&timeout.to_be_bytes());
        },
    )?;
    // Depth first, so loading needs no sorting (see Tree::from_depth_first).
    let mut written: u64 = 0;
    let nodes = Tree::depth_first(&content.nodes).inspect(|_| written += 1);
    write_chunks(
        &mut out,
        &mut buf,
        zxid,
        kind::NODES,
        nodes,
        |b, (path, node)| {
            put_str(b, &path);
            put_data(b, node.data());
            let acl = Arc::as_ptr(content.nodes.acl(node));
            let index = acl_index.get(&acl).copied().unwrap_or(0);
            b.extend_from_slice(&index.to_be_bytes());
            for value in [node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime] {
                b.extend_from_slice(&value.to_be_bytes());
            }
            for value in [node.version, node.creates, node.aversion] {
                b.extend_from_slice(&value.to_be_bytes());
            }
            b.extend_from_slice(&node.ephemeral_owner.to_be_bytes());
        },
    )?;

    if written != content.nodes.len() as u64 {
        // Some node is not reachable from the root: a bug, and a snapshot
        // that would not load. Refuse it; the log still has every change.
        let _ = std::fs::remove_file(&tmp_path);
        return Err(std::io::Error::other(format!(
            "snapshot at zxid 0x{zxid:x}: {written} of {} nodes reachable from the root",
            content.nodes.len()
        )));
    }
    let at = frame::start(&mut buf);
    buf.push(kind::END);
    buf.extend_from_slice(&(content.nodes.len() as u64).to_be_bytes());
    frame::finish(&mut buf, at, zxid);
    out.write_all(&buf)?;

    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp_path, &final_path)?;
    files::sync_dir(dir)?;
    Ok(final_path)
}

/// Writes items as records of one kind, each `[kind][count u32][item…]`, cut
/// at about [`CHUNK_BYTES`].
fn write_chunks<T>(
    out: &mut impl Write,
    buf: &mut Vec<u8>,
    zxid: i64,
    kind: u8,
    items: impl Iterator<Item = T>,
    mut put: impl FnMut(&mut Vec<u8>, T),
) -> std::io::Result<()> {
    let mut items = items.peekable();
    while items.peek().is_some() {
        let at = frame::start(buf);
        buf.push(kind);
        let count_at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        let mut count: u32 = 0;
        while buf.len() - at < CHUNK_BYTES {
            let Some(item) = items.next() else { break };
            put(buf, item);
            count += 1;
        }
        buf[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
        frame::finish(buf, at, zxid);
        out.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

/// Reads only a snapshot's META record (the first few bytes of the file).
pub fn summary(path: &Path) -> Result<SnapshotSummary, StorageError> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_end(&mut head))
        .map_err(|e| StorageError::io(path, e))?;
    parse_summary(path, &head)
}

/// The META record at the start of `bytes` (the whole file or its start).
fn parse_summary(path: &Path, bytes: &[u8]) -> Result<SnapshotSummary, StorageError> {
    let damaged = |offset: u64, reason: String| StorageError::damaged(path, offset, reason);
    if bytes.get(..SNAPSHOT_MAGIC.len()) != Some(SNAPSHOT_MAGIC.as_slice()) {
        return Err(damaged(0, "not a Canopy snapshot (bad magic)".into()));
    }
    let mut frames = Frames::new(bytes, SNAPSHOT_MAGIC.len(), false);
    let first = frames
        .next_frame()
        .map_err(|d| damaged(d.offset, d.reason))?
        .ok_or_else(|| damaged(SNAPSHOT_MAGIC.len() as u64, "empty snapshot".into()))?;
    let mut reader = Reader::new(first.body);
    let read = |reader: &mut Reader| -> Result<SnapshotSummary, String> {
        if reader.u8()? != kind::META {
            return Err("the first record is not META".into());
        }
        Ok(SnapshotSummary {
            zxid: first.zxid,
            nodes: reader.i64()? as u64,
            sessions: reader.i64()? as u64,
            acls: reader.i64()? as u64,
            time_ms: reader.i64()?,
        })
    };
    read(&mut reader).map_err(|reason| damaged(first.offset, reason))
}

/// Reads and checks a whole snapshot. Any flaw is damage: a snapshot only
/// gets its name once complete, so unlike the log's tail it cannot be torn.
pub fn read(path: &Path) -> Result<LoadedSnapshot, StorageError> {
    let bytes = std::fs::read(path).map_err(|e| StorageError::io(path, e))?;
    let damaged = |offset: u64, reason: String| StorageError::damaged(path, offset, reason);
    let head = parse_summary(path, &bytes)?;
    let mut frames = Frames::new(&bytes, SNAPSHOT_MAGIC.len(), false);
    let mut acls: Vec<Arc<Vec<Acl>>> = Vec::with_capacity(head.acls as usize);
    let mut sessions = BTreeMap::new();
    let mut nodes: Vec<(String, NodeRecord)> = Vec::with_capacity(head.nodes.min(1 << 26) as usize);
    let mut ended = false;
    while let Some(record) = frames
        .next_frame()
        .map_err(|d| damaged(d.offset, d.reason))?
    {
        let fail = |reason: String| damaged(record.offset, reason);
        if ended {
            return Err(fail("records after the END record".into()));
        }
        if record.zxid != head.zxid {
            return Err(fail(format!(
                "record of zxid 0x{:x} in a snapshot of 0x{:x}",
                record.zxid, head.zxid
            )));
        }
        let mut reader = Reader::new(record.body);
        let record_kind = reader.u8().map_err(fail)?;
        let parsed: Result<(), String> = (|| {
            match record_kind {
                kind::META => {
                    // Already read by `summary`: node, session and ACL counts, time.
                    for _ in 0..4 {
                        reader.i64()?;
                    }
                }
                kind::ACLS => {
                    for _ in 0..reader.u32()? {
                        let index = reader.u32()? as usize;
                        if index != acls.len() {
                            return Err(format!("ACL {index} out of order"));
                        }
                        acls.push(Arc::new(reader.acl()?));
                    }
                }
                kind::SESSIONS => {
                    for _ in 0..reader.u32()? {
                        let id = reader.i64()?;
                        sessions.insert(id, reader.i32()?);
                    }
                }
                kind::NODES => {
                    for _ in 0..reader.u32()? {
                        let path = reader.string()?;
                        let data = reader.data()?;
                        let index = reader.u32()? as usize;
                        let acl = acls
                            .get(index)
                            .cloned()
                            .ok_or_else(|| format!("node {path} refers to unknown ACL {index}"))?;
                        let node = NodeRecord {
                            data,
                            acl,
                            czxid: reader.i64()?,
                            mzxid: reader.i64()?,
                            pzxid: reader.i64()?,
                            ctime: reader.i64()?,
                            mtime: reader.i64()?,
                            version: reader.i32()?,
                            creates: reader.i32()?,
                            aversion: reader.i32()?,
                            ephemeral_owner: reader.i64()?,
                        };
                        nodes.push((path, node));
                    }
                }
                kind::END => {
                    let count = reader.i64()? as u64;
                    if count != nodes.len() as u64 || count != head.nodes {
                        return Err(format!("END says {count} nodes, read {}", nodes.len()));
                    }
                    ended = true;
                }
                other => return Err(format!("unknown snapshot record type {other}")),
            }
            reader.finish()
        })();
        parsed.map_err(fail)?;
    }
    if !ended {
        return Err(damaged(
            frames.position(),
            "the snapshot ends without its END record".into(),
        ));
    }
    if sessions.len() as u64 != head.sessions {
        return Err(damaged(
            SNAPSHOT_MAGIC.len() as u64,
            "session count does not match META".into(),
        ));
    }
    let tree = Tree::from_depth_first(nodes).map_err(|reason| damaged(0, reason))?;
    Ok(LoadedSnapshot {
        zxid: head.zxid,
        tree,
        sessions,
        time_ms: head.time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{NodeKind, CONTAINER_OWNER};
    use crate::txn::{Txn, TxnHeader};
    use bytes::Bytes;
    use canopy_protocol::Id;

    fn create(tree: &mut Tree, zxid: i64, path: &str, owner: i64, acl: Vec<Acl>) {
        let parent = crate::path::parent(path);
        let creates = tree.get(parent).map_or(0, |p| p.creates) + 1;
        let header = TxnHeader {
            zxid,
            time: 1000 + zxid,
            session_id: 5,
        };
        let txn = Txn::Create {
            path: path.into(),
            data: Some(Bytes::from(format!("data of {path}"))),
            acl,
            ephemeral_owner: owner,
            parent_cversion: creates,
        };
        tree.apply(&header, &txn).unwrap();
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_tree() {
        let mut tree = Tree::new();
        let digest = vec![Acl {
            perms: 31,
            id: Id::new("digest", "alice:hash"),
        }];
        create(&mut tree, 2, "/app", 0, Acl::open_unsafe());
        create(&mut tree, 3, "/app/eph", 0x55, Acl::open_unsafe());
        create(&mut tree, 4, "/app/box", CONTAINER_OWNER, digest.clone());
        create(&mut tree, 5, "/app/ttl", NodeKind::ttl_owner(900), digest);
        let mut sessions = BTreeMap::new();
        sessions.insert(0x55, 10_000);
        let dir = tempfile::tempdir().unwrap();
        let content = SnapshotContent {
            zxid: 5,
            nodes: tree.frozen(),
            sessions: sessions.clone(),
        };
        let path = write(dir.path(), &content, 42).unwrap();
        assert_eq!(path, files::snapshot_path(dir.path(), 5));

        let loaded = read(&path).unwrap();
        assert_eq!((loaded.zxid, loaded.time_ms), (5, 42));
        assert_eq!(loaded.sessions, sessions);
        assert_eq!(loaded.tree.node_count(), tree.node_count());
        for p in [
            "/",
            "/zookeeper",
            "/zookeeper/config",
            "/app",
            "/app/eph",
            "/app/box",
            "/app/ttl",
        ] {
            let (a, b) = (tree.get(p).unwrap(), loaded.tree.get(p).unwrap());
            assert_eq!(a.stat(), b.stat(), "{p}");
            let names = |t: &Tree| {
                t.child_names(t.get(p).unwrap())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                (a.data(), tree.acl(a), names(&tree)),
                (b.data(), loaded.tree.acl(b), names(&loaded.tree)),
                "{p}"
            );
        }
        assert_eq!(loaded.tree.ephemerals_of(0x55), ["/app/eph"]);
        assert_eq!(
            loaded.tree.approximate_data_size(),
            tree.approximate_data_size()
        );
        // Containers and TTL nodes are indexed again, so the periodic check
        // still finds them.
        assert_eq!(loaded.tree.expired_containers(1005 + 901), ["/app/ttl"]);
        let summary = summary(&path).unwrap();
        // world:anyone with all and with read, and the digest entry.
        assert_eq!((summary.nodes, summary.sessions, summary.acls), (8, 1, 3));
    }

    #[test]
    fn a_cut_short_snapshot_is_damage() {
        let tree = Tree::new();
        let dir = tempfile::tempdir().unwrap();
        let content = SnapshotContent {
            zxid: 9,
            nodes: tree.frozen(),
            sessions: BTreeMap::new(),
        };
        let path = write(dir.path(), &content, 0).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [bytes.len() - 1, bytes.len() - 30, 20] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                matches!(read(&path), Err(StorageError::Damaged { .. })),
                "cut at {cut}"
            );
        }
    }
}

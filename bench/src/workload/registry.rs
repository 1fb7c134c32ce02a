//! What `register` and `churn` share: Dubbo's registry layout, provider URLs,
//! and consumers that watch provider lists the way Dubbo's ZooKeeper registry
//! does (getChildren with a watch, re-armed by the next getChildren after
//! every notification).
//!
//! Latency is measured from the moment the provider's create (or close) reply
//! arrived to the moment a consumer's getChildren reply shows the change.
//! Provider and consumers live in this process, so one clock serves both.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use canopy_protocol::{EventType, GetChildrenRequest, Request};

use crate::conn::Conn;
use crate::stats::Recorder;

/// `com.example.bench.Service007`.
pub fn interface_name(i: usize) -> String {
    format!("com.example.bench.Service{i:03}")
}

/// Dubbo's folder of one interface's providers.
pub fn providers_path(dir: &str, iface: usize) -> String {
    format!("{dir}/dubbo/{}/providers", interface_name(iface))
}

/// A provider's znode name: its Dubbo URL, URL-encoded as Dubbo does.
/// The provider's id travels in the `bench.id` parameter.
pub fn provider_node(id: u32, iface: usize) -> String {
    let name = interface_name(iface);
    let url = format!(
        "dubbo://10.{}.{}.{}:20880/{name}?anyhost=true&application=bench-provider\
         &bench.id={id}&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false\
         &interface={name}&methods=get,list,put,remove&pid={id}&release=3.2.0\
         &side=provider&timestamp=1700000000000",
        (id >> 16) & 0xff,
        (id >> 8) & 0xff,
        id & 0xff,
    );
    url_encode(&url)
}

/// The provider id inside a [`provider_node`] name.
pub fn provider_id(node: &str) -> Option<u32> {
    provider_id_bytes(node.as_bytes())
}

/// What every provider node name starts with, up to its IP's second octet.
const NODE_PREFIX: &[u8] = b"dubbo%3A%2F%2F10.";

/// The provider id inside a [`provider_node`] name, read from the three low
/// octets of its IP (`10.a.b.c`, the id's low 24 bits; the `bench.id`
/// parameter says the same). Consumers read every child of every listing, so
/// this only looks at the first few bytes.
pub fn provider_id_bytes(node: &[u8]) -> Option<u32> {
    let rest = node.strip_prefix(NODE_PREFIX)?;
    let mut id = 0u32;
    let mut octets = 0;
    let mut octet = 0u32;
    let mut digits = 0;
    for &b in rest {
        match b {
            b'0'..=b'9' if digits < 3 => {
                octet = octet * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' | b'%' if digits > 0 && octet <= 255 => {
                id = (id << 8) | octet;
                octets += 1;
                if b == b'%' {
                    break;
                }
                (octet, digits) = (0, 0);
            }
            _ => return None,
        }
    }
    (octets == 3).then_some(id)
}

/// The provider ids in a getChildren reply body, read in place (no strings
/// are built): a count, then that many length-prefixed names. Names that are
/// not provider nodes are skipped.
pub fn listed_ids(body: &[u8], ids: &mut Vec<u32>) -> Result<()> {
    ids.clear();
    let mut rest = body;
    let take_i32 = |rest: &mut &[u8]| -> Result<i32> {
        let (head, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| anyhow!("truncated getChildren reply"))?;
        *rest = tail;
        Ok(i32::from_be_bytes(*head))
    };
    let count = take_i32(&mut rest)?;
    for _ in 0..count.max(0) {
        let len = take_i32(&mut rest)?.max(0) as usize;
        if rest.len() < len {
            bail!("truncated getChildren reply");
        }
        let (name, tail) = rest.split_at(len);
        rest = tail;
        if let Some(id) = provider_id_bytes(name) {
            ids.push(id);
        }
    }
    Ok(())
}

/// `java.net.URLEncoder.encode(s, "UTF-8")`, which Dubbo uses for node names.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// When each provider's change was acknowledged, shared by providers and
/// consumers. Times are microseconds since `base`.
pub struct Board {
    base: Instant,
    created: Mutex<HashMap<u32, u64>>,
    removed: Mutex<HashMap<u32, u64>>,
    /// Providers each interface should finally show (valid once `settled`).
    pub expected: Vec<AtomicUsize>,
    /// Set when no more changes will happen: consumers stop once their view
    /// matches `expected`.
    pub settled: AtomicBool,
}

impl Board {
    pub fn new(interfaces: usize) -> Board {
        Board {
            base: Instant::now(),
            created: Mutex::new(HashMap::new()),
            removed: Mutex::new(HashMap::new()),
            expected: (0..interfaces).map(|_| AtomicUsize::new(0)).collect(),
            settled: AtomicBool::new(false),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    pub fn created(&self, id: u32) {
        let t = self.now_us();
        if let Ok(mut m) = self.created.lock() {
            m.insert(id, t);
        }
    }

    pub fn removed(&self, id: u32) {
        let t = self.now_us();
        if let Ok(mut m) = self.removed.lock() {
            m.insert(id, t);
        }
    }

    fn created_at(&self, id: u32) -> Option<u64> {
        self.created.lock().ok()?.get(&id).copied()
    }

    fn removed_at(&self, id: u32) -> Option<u64> {
        self.removed.lock().ok()?.get(&id).copied()
    }
}

/// What one consumer saw.
#[derive(Default)]
pub struct Seen {
    /// Create-reply-to-seen latencies.
    pub joins: Recorder,
    /// Close-reply-to-gone latencies.
    pub leaves: Recorder,
    pub notifications: u64,
}

/// One consumer: watches the providers of `ifaces` until the board is
/// settled and its view matches, or fails after `io_timeout` of no progress.
pub async fn consume(
    mut conn: Conn,
    dir: String,
    ifaces: Vec<usize>,
    board: Arc<Board>,
    io_timeout: Duration,
) -> Result<Seen> {
    let paths: Vec<String> = ifaces.iter().map(|i| providers_path(&dir, *i)).collect();
    let index: HashMap<String, usize> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), i))
        .collect();
    let mut known: Vec<HashSet<u32>> = vec![HashSet::new(); paths.len()];
    // xid of an outstanding getChildren -> which path.
    let mut asked: HashMap<i32, usize> = HashMap::new();
    // Sightings that came before the provider's own reply (resolved at the end).
    let mut early_joins: Vec<(u32, u64)> = Vec::new();
    let mut early_leaves: Vec<(u32, u64)> = Vec::new();
    let mut seen = Seen::default();
    // Reused for every listing.
    let mut listed: Vec<u32> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        asked.insert(conn.push(&list(path)), i);
    }
    conn.flush().await?;
    let ping_every = Duration::from_millis((conn.timeout_ms.max(300) / 3) as u64);
    let mut last_sent = Instant::now();
    let mut last_progress = Instant::now();
    // Bounded: every turn either reads, pings, or moves toward the deadline.
    loop {
        if board.settled.load(Ordering::Acquire)
            && asked.is_empty()
            && ifaces
                .iter()
                .zip(&known)
                .all(|(i, k)| k.len() == board.expected[*i].load(Ordering::Acquire))
        {
            break;
        }
        if last_progress.elapsed() > io_timeout && board.settled.load(Ordering::Acquire) {
            let missing: usize = ifaces
                .iter()
                .zip(&known)
                .map(|(i, k)| board.expected[*i].load(Ordering::Acquire).abs_diff(k.len()))
                .sum();
            bail!("consumer still misses {missing} provider changes after {io_timeout:?}");
        }
        if last_sent.elapsed() >= ping_every {
            conn.push_ping();
            conn.flush().await?;
            last_sent = Instant::now();
        }
        if !conn.read_some(Duration::from_millis(50)).await? {
            continue;
        }
        let now = board.now_us();
        while let Some(reply) = conn.next_reply()? {
            if reply.is_ping() {
                continue;
            }
            if reply.is_notification() {
                let event = reply.event()?;
                if event.event_type == EventType::NodeChildrenChanged as i32 {
                    if let Some(i) = index.get(&event.path) {
                        seen.notifications += 1;
                        asked.insert(conn.push(&list(&paths[*i])), *i);
                    }
                }
                continue;
            }
            let i = asked
                .remove(&reply.header.xid)
                .ok_or_else(|| anyhow!("reply to unknown xid {}", reply.header.xid))?;
            if reply.header.err != 0 {
                seen.joins.error(reply.header.err);
                continue;
            }
            listed_ids(&reply.body, &mut listed)?;
            // New ids are joins; if fewer listed ids were known than are
            // known, some left (names are unique within a folder).
            let mut still_known = 0;
            let mut changed = false;
            for id in &listed {
                if known[i].contains(id) {
                    still_known += 1;
                    continue;
                }
                changed = true;
                match board.created_at(*id) {
                    Some(t) => seen.joins.record_us(now.saturating_sub(t)),
                    None => early_joins.push((*id, now)),
                }
            }
            if still_known < known[i].len() {
                changed = true;
                let now_ids: HashSet<u32> = listed.iter().copied().collect();
                for id in known[i].difference(&now_ids) {
                    match board.removed_at(*id) {
                        Some(t) => seen.leaves.record_us(now.saturating_sub(t)),
                        None => early_leaves.push((*id, now)),
                    }
                }
                known[i] = now_ids;
            } else {
                known[i].extend(listed.iter().copied());
            }
            if changed {
                last_progress = Instant::now();
            }
        }
        if conn.has_unsent() {
            conn.flush().await?;
            last_sent = Instant::now();
        }
    }
    // A consumer can see a change a moment before the provider reads its own
    // reply; such sightings count as (nearly) zero latency.
    for (id, at) in early_joins {
        let t = board.created_at(id).unwrap_or(at);
        seen.joins.record_us(at.saturating_sub(t));
    }
    for (id, at) in early_leaves {
        let t = board.removed_at(id).unwrap_or(at);
        seen.leaves.record_us(at.saturating_sub(t));
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    Ok(seen)
}

fn list(path: &str) -> Request {
    Request::GetChildren(GetChildrenRequest {
        path: path.to_string(),
        watch: true,
    })
}

/// Keeps an idle session alive with pings until `stop` is set.
pub async fn idle(conn: &mut Conn, stop: &AtomicBool, io_timeout: Duration) -> Result<()> {
    let ping_every = Duration::from_millis((conn.timeout_ms.max(300) / 3) as u64);
    let mut last_sent = Instant::now();
    let mut last_heard = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if last_sent.elapsed() >= ping_every {
            conn.push_ping();
            conn.flush().await?;
            last_sent = Instant::now();
        }
        if conn.read_some(Duration::from_millis(100)).await? {
            last_heard = Instant::now();
            while conn.next_reply()?.is_some() {}
        } else if last_heard.elapsed() > io_timeout.max(ping_every * 2) {
            bail!("server silent for {io_timeout:?}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_look_like_dubbo_and_carry_the_id() {
        let node = provider_node(70_000, 7);
        assert!(
            node.starts_with("dubbo%3A%2F%2F10.1.17.112%3A20880%2Fcom.example.bench.Service007%3F")
        );
        assert!(!node.contains('/'));
        assert_eq!(provider_id(&node), Some(70_000));
        assert_eq!(provider_id(&provider_node(0, 0)), Some(0));
        assert_eq!(provider_id(&provider_node(0xff_ffff, 99)), Some(0xff_ffff));
        assert_eq!(provider_id("consumer%3A%2F%2Fx"), None);
        assert_eq!(provider_id("dubbo%3A%2F%2F10.1.2%3A20880"), None);
        assert_eq!(provider_id("dubbo%3A%2F%2F10.1.256.3%3A20880"), None);
        assert_eq!(provider_id("dubbo%3A%2F%2F10.1.2.3"), None);
    }

    #[test]
    fn listings_are_read_in_place() {
        let names = [
            provider_node(5, 1),
            "other".to_string(),
            provider_node(70_000, 2),
        ];
        let mut body = Vec::new();
        body.extend_from_slice(&(names.len() as i32).to_be_bytes());
        for n in &names {
            body.extend_from_slice(&(n.len() as i32).to_be_bytes());
            body.extend_from_slice(n.as_bytes());
        }
        let mut ids = vec![9];
        listed_ids(&body, &mut ids).unwrap();
        assert_eq!(ids, vec![5, 70_000]);
        assert!(listed_ids(&body[..body.len() - 1], &mut ids).is_err());
        listed_ids(&0i32.to_be_bytes(), &mut ids).unwrap();
        assert!(ids.is_empty());
    }

    #[test]
    fn url_encoding_matches_java() {
        assert_eq!(
            url_encode("a b&c=d/e:f,g*h_i-j.k"),
            "a+b%26c%3Dd%2Fe%3Af%2Cg*h_i-j.k"
        );
    }
}

//! Sessions (ZooKeeper's SessionTracker): ids, passwords, negotiated timeouts
//! and expiry in tick buckets rather than one timer per session.
//!
//! A session's deadline is rounded up to the next bucket boundary, so all
//! the sessions that expire within one bucket sit together and the expirer
//! wakes once per bucket, however many sessions there are. ZooKeeper's
//! buckets are a whole tick wide, which lets a session outlive its timeout by
//! up to a tick (two seconds by default); Canopy's are at most
//! [`EXPIRY_RESOLUTION_MS`] wide, so ephemerals go within that of the timeout.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha1::{Digest, Sha1};

/// Widest expiry bucket, in milliseconds (narrower if the tick is shorter).
pub const EXPIRY_RESOLUTION_MS: u64 = 50;

/// The bucket width for a tick time: the tick, but at most
/// [`EXPIRY_RESOLUTION_MS`].
pub fn bucket_ms(tick_ms: u64) -> u64 {
    tick_ms.clamp(1, EXPIRY_RESOLUTION_MS)
}

/// One live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    /// The bucket (milliseconds on the tracker's clock) it expires in.
    pub expires_at: u64,
}

/// The session table.
#[derive(Debug)]
pub struct SessionTracker {
    /// Touched by every request: ahash rather than SipHash.
    sessions: HashMap<i64, Session, ahash::RandomState>,
    buckets: BTreeMap<u64, HashSet<i64>>,
    bucket_ms: u64,
    next_id: i64,
    secret: [u8; 16],
}

impl SessionTracker {
    /// `bucket_ms` is the expiry granularity (see [`bucket_ms`]);
    /// `server_id` goes in the high byte of every session id, as in ZooKeeper;
    /// `secret` derives passwords, so they can be checked without storing them.
    pub fn new(bucket_ms: u64, server_id: u8, secret: [u8; 16], wall_ms: i64) -> Self {
        // ZooKeeper's layout: the time in the middle bits, the server id on top.
        let mut next_id = ((wall_ms << 24) as u64 >> 8) as i64 | ((server_id as i64) << 56);
        if next_id == crate::tree::CONTAINER_OWNER {
            next_id += 1;
        }
        SessionTracker {
            sessions: HashMap::default(),
            buckets: BTreeMap::new(),
            bucket_ms: bucket_ms.max(1),
            next_id,
            secret,
        }
    }

    /// The id the next new session gets (never one still live, such as a
    /// session restored after a restart).
    pub fn allocate_id(&mut self) -> i64 {
        while self.sessions.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The password of a session: 16 bytes derived from the server secret.
    pub fn password(&self, session_id: i64) -> [u8; 16] {
        let mut hasher = Sha1::new();
        hasher.update(self.secret);
        hasher.update(session_id.to_be_bytes());
        let digest = hasher.finalize();
        let mut out = [0; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    fn bucket_for(&self, now_ms: u64, timeout_ms: i32) -> u64 {
        let deadline = now_ms + timeout_ms.max(0) as u64;
        deadline.div_ceil(self.bucket_ms) * self.bucket_ms
    }

    /// Registers a session (new, or restored) with its deadline starting now.
    pub fn add(&mut self, id: i64, timeout_ms: i32, now_ms: u64) {
        let expires_at = self.bucket_for(now_ms, timeout_ms);
        self.buckets.entry(expires_at).or_default().insert(id);
        self.sessions.insert(
            id,
            Session {
                id,
                timeout_ms,
                expires_at,
            },
        );
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Pushes a session's deadline out by its timeout (any packet from its
    /// client does this). False if the session is unknown.
    pub fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        let Some(session) = self.sessions.get(&id) else {
            return false;
        };
        let new_bucket = self.bucket_for(now_ms, session.timeout_ms);
        let old_bucket = session.expires_at;
        if new_bucket != old_bucket {
            if let Some(set) = self.buckets.get_mut(&old_bucket) {
                set.remove(&id);
                if set.is_empty() {
                    self.buckets.remove(&old_bucket);
                }
            }
            self.buckets.entry(new_bucket).or_default().insert(id);
            if let Some(session) = self.sessions.get_mut(&id) {
                session.expires_at = new_bucket;
            }
        }
        true
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        if let Some(set) = self.buckets.get_mut(&session.expires_at) {
            set.remove(&id);
            if set.is_empty() {
                self.buckets.remove(&session.expires_at);
            }
        }
        Some(session)
    }

    /// The sessions whose bucket has come, oldest first. They stay in the
    /// table until the close change that ends them is applied.
    pub fn expired(&self, now_ms: u64) -> Vec<i64> {
        self.buckets
            .range(..=now_ms)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_in_the_first_bucket_at_or_after_their_timeout() {
        let mut tracker = SessionTracker::new(100, 0, [7; 16], 1);
        let id = tracker.allocate_id();
        tracker.add(id, 1000, 0);
        assert_eq!(tracker.get(id).unwrap().expires_at, 1000);
        assert!(tracker.expired(999).is_empty());
        assert_eq!(tracker.expired(1000), [id]);
        // A deadline between bucket boundaries rounds up to the next one.
        tracker.touch(id, 1);
        assert_eq!(tracker.get(id).unwrap().expires_at, 1100);
        tracker.touch(id, 500);
        assert!(tracker.expired(1100).is_empty());
        assert_eq!(tracker.expired(1600), [id]);
        tracker.remove(id);
        assert!(tracker.expired(10_000).is_empty());
    }

    #[test]
    fn ids_carry_the_server_id_and_passwords_are_stable() {
        let mut tracker = SessionTracker::new(100, 3, [1; 16], 1_700_000_000_000);
        let a = tracker.allocate_id();
        let b = tracker.allocate_id();
        assert_eq!(a >> 56, 3);
        assert_eq!(b, a + 1);
        assert_eq!(tracker.password(a), tracker.password(a));
        assert_ne!(tracker.password(a), tracker.password(b));
    }
}

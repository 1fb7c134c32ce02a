//! Each distinct ACL once, numbered: nodes hold the number. Most trees use a
//! handful of ACLs, so this is ZooKeeper's ReferenceCountedACLCache in
//! spirit: an entry is freed when no node uses it any more.

use std::collections::HashMap;
use std::sync::Arc;

use canopy_protocol::Acl;

use super::node::AclId;

/// The ACLs by number, as a frozen view sees them.
pub type AclEntries = Arc<Vec<Option<Arc<Vec<Acl>>>>>;

#[derive(Debug, Default)]
pub struct AclTable {
    /// Shared with frozen views; copied on change while one holds it (the
    /// table is small).
    entries: AclEntries,
    /// How many nodes use each entry.
    uses: Vec<u32>,
    by_value: HashMap<Vec<Acl>, AclId>,
    free: Vec<AclId>,
}

impl AclTable {
    /// The number of `acl`, counting one more node using it.
    pub fn acquire(&mut self, acl: &[Acl]) -> AclId {
        if let Some(&id) = self.by_value.get(acl) {
            self.uses[id as usize] += 1;
            return id;
        }
        let entry = Some(Arc::new(acl.to_vec()));
        let entries = Arc::make_mut(&mut self.entries);
        let id = match self.free.pop() {
            Some(id) => {
                entries[id as usize] = entry;
                self.uses[id as usize] = 1;
                id
            }
            None => {
                entries.push(entry);
                self.uses.push(1);
                (entries.len() - 1) as AclId
            }
        };
        self.by_value.insert(acl.to_vec(), id);
        id
    }

    /// One more node uses `id`, which is in use.
    pub fn acquire_again(&mut self, id: AclId) {
        if let Some(uses) = self.uses.get_mut(id as usize) {
            *uses += 1;
        }
    }

    /// One node fewer uses `id`; the last one frees it.
    pub fn release(&mut self, id: AclId) {
        let Some(uses) = self.uses.get_mut(id as usize) else {
            return;
        };
        *uses = uses.saturating_sub(1);
        if *uses == 0 {
            let entries = Arc::make_mut(&mut self.entries);
            if let Some(acl) = entries[id as usize].take() {
                self.by_value.remove(acl.as_slice());
            }
            self.free.push(id);
        }
    }

    pub fn get(&self, id: AclId) -> &Arc<Vec<Acl>> {
        lookup(&self.entries, id)
    }

    pub fn frozen(&self) -> AclEntries {
        self.entries.clone()
    }

    /// Distinct ACLs in use.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    /// How many nodes use `id`, by the table's count.
    pub fn uses(&self, id: AclId) -> u32 {
        self.uses.get(id as usize).copied().unwrap_or(0)
    }
}

/// An entry of a (possibly frozen) table. A node's ACL is always there; an
/// empty list stands in if that were ever broken.
pub fn lookup(entries: &AclEntries, id: AclId) -> &Arc<Vec<Acl>> {
    static NONE: std::sync::OnceLock<Arc<Vec<Acl>>> = std::sync::OnceLock::new();
    entries
        .get(id as usize)
        .and_then(Option::as_ref)
        .unwrap_or_else(|| NONE.get_or_init(Default::default))
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_protocol::Id;

    #[test]
    fn entries_are_shared_counted_and_freed() {
        let mut table = AclTable::default();
        let open = Acl::open_unsafe();
        let digest = vec![Acl {
            perms: 1,
            id: Id::new("digest", "a:b"),
        }];
        let a = table.acquire(&open);
        assert_eq!(table.acquire(&open), a);
        let d = table.acquire(&digest);
        assert_ne!(a, d);
        let frozen = table.frozen();
        table.release(d);
        assert_eq!(table.len(), 1);
        // A frozen view keeps what it saw.
        assert_eq!(lookup(&frozen, d).as_slice(), digest.as_slice());
        table.release(a);
        assert_eq!(table.get(a).as_slice(), open.as_slice());
        table.release(a);
        assert_eq!(table.len(), 0);
        assert_eq!(table.acquire(&digest), a, "freed numbers are reused");
    }
}

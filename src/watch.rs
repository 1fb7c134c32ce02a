//! Watches (ZooKeeper's WatchManager): which connection watches which path, in
//! which mode, and who is told what when the tree changes.
//!
//! As in ZooKeeper there are two tables. The data table holds getData/exists
//! watches, persistent watches and persistent-recursive watches; the child
//! table holds getChildren watches and persistent watches. A one-shot
//! (standard) watch is removed when it fires; the others stay. A recursive
//! watch also fires for every descendant, except for child-list changes.

use std::collections::{HashMap, HashSet};

use ahash::RandomState;

use canopy_protocol::{EventType, WatcherType};

use crate::path;
use crate::tree::TreeEvent;

/// Who watches: a connection id (watches belong to connections, as in ZooKeeper).
pub type WatcherId = u64;

/// The modes one watcher holds on one path in one table, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modes(u8);

impl Modes {
    pub const STANDARD: Modes = Modes(1);
    pub const PERSISTENT: Modes = Modes(2);
    pub const RECURSIVE: Modes = Modes(4);

    pub fn has(self, mode: Modes) -> bool {
        self.0 & mode.0 != 0
    }
    fn with(self, mode: Modes) -> Modes {
        Modes(self.0 | mode.0)
    }
    fn without(self, mode: Modes) -> Modes {
        Modes(self.0 & !mode.0)
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One table: path → watcher → modes, and the reverse index. Every change
/// looks its path up here, so the maps use a fast hash (ahash) rather than
/// SipHash; the keys are not chosen by an attacker who could see the seeds.
#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<String, HashMap<WatcherId, Modes, RandomState>, RandomState>,
    by_watcher: HashMap<WatcherId, HashSet<String>, RandomState>,
}

impl Table {
    fn add(&mut self, path: &str, watcher: WatcherId, mode: Modes) -> bool {
        let modes = self
            .by_path
            .entry(path.to_string())
            .or_default()
            .entry(watcher)
            .or_default();
        let before = *modes;
        *modes = modes.with(mode);
        self.by_watcher
            .entry(watcher)
            .or_default()
            .insert(path.to_string());
        before != *modes
    }

    fn modes(&self, path: &str, watcher: WatcherId) -> Modes {
        self.by_path
            .get(path)
            .and_then(|w| w.get(&watcher))
            .copied()
            .unwrap_or_default()
    }

    /// Removes `mode` (or every mode, for `None`); true if anything was removed.
    fn remove(&mut self, path: &str, watcher: WatcherId, mode: Option<Modes>) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(modes) = watchers.get_mut(&watcher) else {
            return false;
        };
        let before = *modes;
        *modes = match mode {
            Some(mode) => modes.without(mode),
            None => Modes::default(),
        };
        let changed = before != *modes;
        if modes.is_empty() {
            watchers.remove(&watcher);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
            if let Some(paths) = self.by_watcher.get_mut(&watcher) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_watcher.remove(&watcher);
                }
            }
        }
        changed
    }

    fn remove_watcher(&mut self, watcher: WatcherId) {
        for path in self.by_watcher.remove(&watcher).unwrap_or_default() {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                watchers.remove(&watcher);
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// ZooKeeper's triggerWatch: every watcher on `path` itself fires (standard
    /// watches are used up); on ancestors only recursive watchers fire.
    fn trigger(&mut self, path: &str, with_ancestors: bool, fired: &mut Vec<WatcherId>) {
        if let Some(watchers) = self.by_path.get_mut(path) {
            let mut spent = Vec::new();
            for (watcher, modes) in watchers.iter_mut() {
                fired.push(*watcher);
                *modes = modes.without(Modes::STANDARD);
                if modes.is_empty() {
                    spent.push(*watcher);
                }
            }
            for watcher in spent {
                self.remove(path, watcher, None);
            }
        }
        if with_ancestors {
            for ancestor in path::ancestors(path) {
                if let Some(watchers) = self.by_path.get(ancestor) {
                    fired.extend(
                        watchers
                            .iter()
                            .filter(|(_, m)| m.has(Modes::RECURSIVE))
                            .map(|(w, _)| *w),
                    );
                }
            }
        }
    }

    fn watch_count(&self) -> usize {
        self.by_watcher.values().map(HashSet::len).sum()
    }
}

/// A notification to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub watcher: WatcherId,
    pub event_type: EventType,
    pub path: String,
}

/// All watches of the server.
#[derive(Debug, Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
    recursive_count: usize,
}

impl WatchManager {
    /// A getData watch, or an exists watch (on a node present or not).
    pub fn add_data_watch(&mut self, path: &str, watcher: WatcherId) {
        self.data.add(path, watcher, Modes::STANDARD);
    }

    pub fn add_child_watch(&mut self, path: &str, watcher: WatcherId) {
        self.child.add(path, watcher, Modes::STANDARD);
    }

    /// A persistent or recursive watch. As in ZooKeeper, a connection has one
    /// persistent mode per path: adding one replaces the other.
    pub fn add_persistent(&mut self, path: &str, watcher: WatcherId, recursive: bool) {
        if recursive {
            self.data.remove(path, watcher, Some(Modes::PERSISTENT));
            self.child.remove(path, watcher, Some(Modes::PERSISTENT));
        } else if self.data.remove(path, watcher, Some(Modes::RECURSIVE)) {
            self.recursive_count -= 1;
        }
        if recursive {
            if self.data.add(path, watcher, Modes::RECURSIVE) {
                self.recursive_count += 1;
            }
        } else {
            self.data.add(path, watcher, Modes::PERSISTENT);
            self.child.add(path, watcher, Modes::PERSISTENT);
        }
    }

    /// Forgets every watch of a closed connection.
    pub fn remove_watcher(&mut self, watcher: WatcherId) {
        let recursive_paths: Vec<String> = self
            .data
            .by_watcher
            .get(&watcher)
            .into_iter()
            .flatten()
            .filter(|p| self.data.modes(p, watcher).has(Modes::RECURSIVE))
            .cloned()
            .collect();
        self.recursive_count -= recursive_paths.len();
        self.data.remove_watcher(watcher);
        self.child.remove_watcher(watcher);
    }

    /// checkWatches: does the watcher hold a watch of this type on the path?
    pub fn contains(&self, path: &str, watcher: WatcherId, kind: WatcherType) -> bool {
        let data = self.data.modes(path, watcher);
        let child = self.child.modes(path, watcher);
        match kind {
            WatcherType::Children => child.has(Modes::STANDARD),
            WatcherType::Data => data.has(Modes::STANDARD),
            WatcherType::Persistent => data.has(Modes::PERSISTENT),
            WatcherType::PersistentRecursive => data.has(Modes::RECURSIVE),
            WatcherType::Any => !data.is_empty() || !child.is_empty(),
        }
    }

    /// removeWatches: true if anything was removed.
    pub fn remove(&mut self, path: &str, watcher: WatcherId, kind: WatcherType) -> bool {
        let had_recursive = self.data.modes(path, watcher).has(Modes::RECURSIVE);
        let removed = match kind {
            WatcherType::Children => self.child.remove(path, watcher, Some(Modes::STANDARD)),
            WatcherType::Data => self.data.remove(path, watcher, Some(Modes::STANDARD)),
            WatcherType::Persistent => {
                let child = self.child.remove(path, watcher, Some(Modes::PERSISTENT));
                let data = self.data.remove(path, watcher, Some(Modes::PERSISTENT));
                child || data
            }
            WatcherType::PersistentRecursive => {
                self.data.remove(path, watcher, Some(Modes::RECURSIVE))
            }
            WatcherType::Any => {
                let child = self.child.remove(path, watcher, None);
                let data = self.data.remove(path, watcher, None);
                child || data
            }
        };
        if had_recursive && !self.data.modes(path, watcher).has(Modes::RECURSIVE) {
            self.recursive_count -= 1;
        }
        removed
    }

    /// The notifications a change causes, in ZooKeeper's order, at most one
    /// per watcher per event.
    pub fn trigger(&mut self, event: &TreeEvent) -> Vec<Notification> {
        let ancestors = self.recursive_count > 0;
        let mut fired = Vec::new();
        let (event_type, path) = match event {
            TreeEvent::Created(path) => {
                self.data.trigger(path, ancestors, &mut fired);
                (EventType::NodeCreated, path)
            }
            TreeEvent::DataChanged(path) => {
                self.data.trigger(path, ancestors, &mut fired);
                (EventType::NodeDataChanged, path)
            }
            TreeEvent::Deleted(path) => {
                self.data.trigger(path, ancestors, &mut fired);
                self.child.trigger(path, false, &mut fired);
                (EventType::NodeDeleted, path)
            }
            TreeEvent::ChildrenChanged(path) => {
                self.child.trigger(path, false, &mut fired);
                (EventType::NodeChildrenChanged, path)
            }
        };
        let mut seen = HashSet::new();
        fired
            .into_iter()
            .filter(|w| seen.insert(*w))
            .map(|watcher| Notification {
                watcher,
                event_type,
                path: path.clone(),
            })
            .collect()
    }

    /// (connections watching, paths watched, total watches), both tables
    /// (mntr's zk_watch_count is the total).
    pub fn summary(&self) -> (usize, usize, usize) {
        let watchers: HashSet<&WatcherId> = self
            .data
            .by_watcher
            .keys()
            .chain(self.child.by_watcher.keys())
            .collect();
        let paths: HashSet<&String> = self
            .data
            .by_path
            .keys()
            .chain(self.child.by_path.keys())
            .collect();
        (
            watchers.len(),
            paths.len(),
            self.data.watch_count() + self.child.watch_count(),
        )
    }

    /// The data table alone: (connections, paths, watches). ZooKeeper's
    /// `wchs`, `wchc`, `wchp` and their admin commands show only this table
    /// (getData/exists, persistent and recursive watches), not child watches.
    pub fn data_summary(&self) -> (usize, usize, usize) {
        (
            self.data.by_watcher.len(),
            self.data.by_path.len(),
            self.data.watch_count(),
        )
    }

    /// Paths per watcher in the data table (`wchc`), sorted.
    pub fn data_paths_by_watcher(&self) -> HashMap<WatcherId, Vec<String>> {
        self.data
            .by_watcher
            .iter()
            .map(|(watcher, paths)| {
                let mut paths: Vec<String> = paths.iter().cloned().collect();
                paths.sort();
                (*watcher, paths)
            })
            .collect()
    }

    /// Watchers per path in the data table (`wchp`), sorted.
    pub fn data_watchers_by_path(&self) -> HashMap<String, Vec<WatcherId>> {
        self.data
            .by_path
            .iter()
            .map(|(path, watchers)| {
                let mut watchers: Vec<WatcherId> = watchers.keys().copied().collect();
                watchers.sort();
                (path.clone(), watchers)
            })
            .collect()
    }

    /// Paths watched per watcher, both tables.
    pub fn paths_by_watcher(&self) -> HashMap<WatcherId, Vec<String>> {
        let mut out: HashMap<WatcherId, Vec<String>> = HashMap::new();
        for table in [&self.data, &self.child] {
            for (watcher, paths) in &table.by_watcher {
                out.entry(*watcher)
                    .or_default()
                    .extend(paths.iter().cloned());
            }
        }
        for paths in out.values_mut() {
            paths.sort();
            paths.dedup();
        }
        out
    }

    /// Watchers per path, both tables.
    pub fn watchers_by_path(&self) -> HashMap<String, Vec<WatcherId>> {
        let mut out: HashMap<String, Vec<WatcherId>> = HashMap::new();
        for table in [&self.data, &self.child] {
            for (path, watchers) in &table.by_path {
                out.entry(path.clone()).or_default().extend(watchers.keys());
            }
        }
        for watchers in out.values_mut() {
            watchers.sort();
            watchers.dedup();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(notes: &[Notification]) -> Vec<(WatcherId, EventType)> {
        notes.iter().map(|n| (n.watcher, n.event_type)).collect()
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::default();
        w.add_data_watch("/a", 1);
        let e = TreeEvent::DataChanged("/a".into());
        assert_eq!(fired(&w.trigger(&e)), [(1, EventType::NodeDataChanged)]);
        assert!(w.trigger(&e).is_empty());
    }

    #[test]
    fn delete_notifies_a_watcher_once_even_with_data_and_child_watches() {
        let mut w = WatchManager::default();
        w.add_data_watch("/a", 1);
        w.add_child_watch("/a", 1);
        let notes = w.trigger(&TreeEvent::Deleted("/a".into()));
        assert_eq!(fired(&notes), [(1, EventType::NodeDeleted)]);
        assert_eq!(w.summary(), (0, 0, 0));
    }

    #[test]
    fn persistent_watches_stay_and_see_children() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", 1, false);
        for _ in 0..2 {
            let notes = w.trigger(&TreeEvent::ChildrenChanged("/a".into()));
            assert_eq!(fired(&notes), [(1, EventType::NodeChildrenChanged)]);
        }
        assert!(w.trigger(&TreeEvent::Created("/a/b".into())).is_empty());
    }

    #[test]
    fn a_connection_has_one_persistent_mode_per_path() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", 1, false);
        w.add_persistent("/a", 1, true);
        // Now only recursive: no child-list events, descendants seen.
        assert!(w
            .trigger(&TreeEvent::ChildrenChanged("/a".into()))
            .is_empty());
        assert_eq!(
            fired(&w.trigger(&TreeEvent::Created("/a/b".into()))),
            [(1, EventType::NodeCreated)]
        );
        w.add_persistent("/a", 1, false);
        assert!(w.trigger(&TreeEvent::Created("/a/c".into())).is_empty());
        assert_eq!(
            fired(&w.trigger(&TreeEvent::ChildrenChanged("/a".into()))),
            [(1, EventType::NodeChildrenChanged)]
        );
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_lists() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", 1, true);
        assert_eq!(
            fired(&w.trigger(&TreeEvent::Created("/a/b/c".into()))),
            [(1, EventType::NodeCreated)]
        );
        assert!(w
            .trigger(&TreeEvent::ChildrenChanged("/a/b".into()))
            .is_empty());
        assert!(w.trigger(&TreeEvent::Created("/ab".into())).is_empty());
        assert!(w.contains("/a", 1, WatcherType::PersistentRecursive));
        assert!(w.remove("/a", 1, WatcherType::Any));
        assert!(w.trigger(&TreeEvent::Created("/a/x".into())).is_empty());
    }

    #[test]
    fn closing_a_connection_drops_its_watches() {
        let mut w = WatchManager::default();
        w.add_data_watch("/a", 1);
        w.add_persistent("/b", 1, true);
        w.add_child_watch("/a", 2);
        w.remove_watcher(1);
        assert_eq!(w.summary(), (1, 1, 1));
        assert_eq!(w.recursive_count, 0);
    }
}

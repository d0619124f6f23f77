//! A map from [`NetId`] to values, indexed directly for allocated ids.
//!
//! The server's mirror is looked up by id many times per changed entity and
//! per view every tick (collection, hashing, interest, builds, field diffs),
//! and a client's replica once or twice per received move. A hash map pays a
//! hash and two cache misses (control bytes, then the bucket) for each; here
//! an id the server allocated (they count up from 0) is an index into a small
//! dense table of slots, and the values sit packed in one `Vec`, so a lookup
//! is one miss, and iteration walks contiguous memory. Change sets list
//! entities by ascending id and entities are mostly created in that order, so
//! applying one walks both tables forward, which the prefetcher follows.
//!
//! Ids are never reused, so the dense table grows with every id ever
//! allocated below [`DENSE_IDS`], at 4 bytes each (4 MB after a million
//! spawns); ids a game chose beyond it fall back to a hash map.

use bevy_platform::collections::HashMap;

use crate::net_id::NetId;

/// Ids below this are indexed directly; the table never exceeds 16 MB.
pub(crate) const DENSE_IDS: u64 = 1 << 22;

/// No value for this id.
const EMPTY: u32 = u32::MAX;

/// A map from [`NetId`] to `V` (see the module docs).
#[derive(Debug)]
pub(crate) struct IdMap<V> {
    /// The slot of each id below [`DENSE_IDS`], or [`EMPTY`].
    dense: Vec<u32>,
    /// The slot of each id from [`DENSE_IDS`] on.
    sparse: HashMap<NetId, u32>,
    /// The values, packed: removal moves the last one into the hole.
    slots: Vec<(NetId, V)>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self {
            dense: Vec::new(),
            sparse: HashMap::default(),
            slots: Vec::new(),
        }
    }
}

impl<V> IdMap<V> {
    fn slot(&self, id: NetId) -> Option<usize> {
        let slot = if id.0 < DENSE_IDS {
            *self.dense.get(id.0 as usize)?
        } else {
            *self.sparse.get(&id)?
        };
        (slot != EMPTY).then_some(slot as usize)
    }

    fn set_slot(&mut self, id: NetId, slot: u32) {
        if id.0 < DENSE_IDS {
            let i = id.0 as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, EMPTY);
            }
            self.dense[i] = slot;
        } else if slot == EMPTY {
            self.sparse.remove(&id);
        } else {
            self.sparse.insert(id, slot);
        }
    }

    /// The value of `id`.
    #[inline]
    pub fn get(&self, id: &NetId) -> Option<&V> {
        let slot = self.slot(*id)?;
        Some(&self.slots[slot].1)
    }

    /// The value of `id`, to change.
    #[inline]
    pub fn get_mut(&mut self, id: &NetId) -> Option<&mut V> {
        let slot = self.slot(*id)?;
        Some(&mut self.slots[slot].1)
    }

    /// Whether `id` has a value.
    pub fn contains_key(&self, id: &NetId) -> bool {
        self.slot(*id).is_some()
    }

    /// Sets `id`'s value, returning the one it replaces.
    pub fn insert(&mut self, id: NetId, value: V) -> Option<V> {
        if let Some(slot) = self.slot(id) {
            return Some(std::mem::replace(&mut self.slots[slot].1, value));
        }
        // More than `u32::MAX - 1` values would not fit in memory anyway.
        let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 entities");
        self.slots.push((id, value));
        self.set_slot(id, slot);
        None
    }

    /// Removes `id`'s value and returns it.
    pub fn remove(&mut self, id: &NetId) -> Option<V> {
        let slot = self.slot(*id)?;
        self.set_slot(*id, EMPTY);
        let (_, value) = self.slots.swap_remove(slot);
        if let Some(&(moved, _)) = self.slots.get(slot) {
            self.set_slot(moved, slot as u32);
        }
        Some(value)
    }

    /// The value of `id`, set to `make()` first if it has none.
    #[inline]
    pub fn get_or_insert_with(&mut self, id: NetId, make: impl FnOnce() -> V) -> &mut V {
        let slot = match self.slot(id) {
            Some(slot) => slot,
            None => {
                let slot = self.slots.len();
                // More than `u32::MAX - 1` values would not fit in memory anyway.
                self.set_slot(id, u32::try_from(slot).expect("fewer than 2^32 entities"));
                self.slots.push((id, make()));
                slot
            }
        };
        &mut self.slots[slot].1
    }

    /// Removes every value, in time proportional to their number (not to
    /// the dense table's size), keeping the capacity.
    pub fn clear(&mut self) {
        for i in 0..self.slots.len() {
            let id = self.slots[i].0;
            self.set_slot(id, EMPTY);
        }
        self.slots.clear();
    }

    /// How many ids have a value.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no id has a value.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every id and its value, in the order they were inserted as long as
    /// nothing was removed (a removal moves the last one into its place).
    pub fn iter(&self) -> impl Iterator<Item = (&NetId, &V)> {
        self.slots.iter().map(|(id, value)| (id, value))
    }

    /// Every id and its value, mutable, in the order of [`Self::iter`].
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (NetId, &mut V)> {
        self.slots.iter_mut().map(|(id, value)| (*id, value))
    }
}

impl<'a, V> IntoIterator for &'a IdMap<V> {
    type Item = (&'a NetId, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (NetId, V)>, fn(&'a (NetId, V)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.slots.iter().map(|(id, value)| (id, value))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        OrInsert(u64, u32),
        Clear,
    }

    fn id() -> impl Strategy<Value = u64> {
        // Dense and sparse ids, with collisions likely in both.
        prop_oneof![0..64u64, DENSE_IDS - 4..DENSE_IDS + 4, Just(u64::MAX)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (id(), any::<u32>()).prop_map(|(i, v)| Op::Insert(i, v)),
            4 => id().prop_map(Op::Remove),
            4 => (id(), any::<u32>()).prop_map(|(i, v)| Op::OrInsert(i, v)),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Any sequence of inserts and removals leaves the map equal to an ordinary map.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec(op(), 0..200)) {
            let mut map = IdMap::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(i, v) => {
                        prop_assert_eq!(map.insert(NetId(i), v), model.insert(i, v));
                    }
                    Op::Remove(i) => {
                        prop_assert_eq!(map.remove(&NetId(i)), model.remove(&i));
                    }
                    Op::OrInsert(i, v) => {
                        let value = map.get_or_insert_with(NetId(i), || v);
                        *value = value.wrapping_add(1);
                        let expected = model.entry(i).or_insert(v);
                        *expected = expected.wrapping_add(1);
                    }
                    Op::Clear => {
                        map.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for (i, v) in &model {
                prop_assert_eq!(map.get(&NetId(*i)), Some(v));
                prop_assert!(map.contains_key(&NetId(*i)));
            }
            let mut listed: Vec<(u64, u32)> = map.iter().map(|(id, v)| (id.0, *v)).collect();
            listed.sort_unstable();
            let expected: Vec<(u64, u32)> = model.into_iter().collect();
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn unknown_ids_have_no_value() {
        let mut map = IdMap::default();
        map.insert(NetId(5), "five");
        assert_eq!(map.get(&NetId(4)), None);
        assert_eq!(map.get(&NetId(6)), None, "beyond the dense table");
        assert_eq!(map.get(&NetId(DENSE_IDS + 5)), None);
        if let Some(v) = map.get_mut(&NetId(5)) {
            *v = "FIVE";
        }
        assert_eq!(map.get(&NetId(5)), Some(&"FIVE"));
    }
}

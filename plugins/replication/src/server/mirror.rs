//! The server's replicated view of the world: one record per replicated entity.
//!
//! Each component value is serialized once, when it changes, and the bytes are
//! shared by every client's change set, by full states and by checksums.

use bevy_ecs::entity::Entity;
use bevy_platform::collections::{HashMap, HashSet};
use glam::Vec2;

use crate::change_set::{ComponentBytes, QPos};
use crate::checksum::{StateChecksum, components_digest, entity_hash_of_digest};
use crate::net_id::{ClientId, KindId, NetId};
use crate::registry::{ComponentIndex, ReplicationRegistry, Visibility};

use crate::id_map::IdMap;

mod grid;
pub(crate) use grid::{CellAt, Grid};

/// One replicated entity as the server last replicated it.
///
/// `repr(C)`, hot fields first: interest reads the placement (position,
/// owner, flags, hashes) and every build reads `last_change` and
/// `last_mask` of each changed entity it sends, so those share the
/// record's first cache lines instead of landing wherever the compiler's
/// size-driven order puts them among the trail and the vectors.
#[derive(Debug, Clone)]
#[repr(C)]
pub(crate) struct EntityRecord {
    pub qpos: Option<QPos>,
    pub kind: KindId,
    pub always_relevant: bool,
    pub owner: Option<ClientId>,
    /// The newest of `changed_at`.
    pub last_change: u64,
    /// The components whose `changed_at` is `last_change`: all that changed
    /// after `last_change - 1`, the baseline of a chained delta in step, so
    /// such a build needs no look at `changed_at`.
    pub last_mask: u64,
    /// Hash as seen by a non-owner and by the owner (private components included).
    pub hash_public: u64,
    pub hash_owner: u64,
    /// Recent values of `qpos`, the base of position deltas.
    pub trail: super::trail::PositionTrail,
    /// Serialized component values by registry index (the position component's
    /// bytes included, for lossless change sets; clients get it as `qpos`).
    pub components: Vec<Option<ComponentBytes>>,
    /// The tick each component last changed for clients (the position: its quantum).
    pub changed_at: Vec<u64>,
    /// The tick the entity started replicating.
    pub created_at: u64,
    /// The [`components_digest`] of what a non-owner sees, as of the last
    /// [`EntityRecord::rehash`]: a move rehashes from it.
    pub digest_public: u64,
}

impl EntityRecord {
    /// Records a client-visible change of component `index` at `tick`, the
    /// current tick (never older than an earlier call's).
    pub fn touch(&mut self, index: ComponentIndex, tick: u64) {
        if let Some(t) = self.changed_at.get_mut(usize::from(index.0)) {
            *t = tick;
        }
        if tick > self.last_change {
            self.last_change = tick;
            self.last_mask = 0;
        }
        if tick == self.last_change {
            self.last_mask |= index.bit();
        }
    }

    /// The mask of components changed after `tick`.
    pub fn changed_since(&self, tick: u64) -> u64 {
        if self.last_change <= tick {
            return 0;
        }
        if self.last_change - 1 == tick {
            return self.last_mask;
        }
        self.changed_at
            .iter()
            .enumerate()
            .filter(|(_, t)| **t > tick)
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }

    /// The components a client may see: public ones, private ones only for the owner,
    /// never the position component (it travels as `qpos`).
    pub fn visible_components<'a>(
        &'a self,
        registry: &'a ReplicationRegistry,
        owner_view: bool,
    ) -> impl Iterator<Item = (u8, &'a ComponentBytes)> + 'a {
        let position = registry.position_index();
        self.components
            .iter()
            .enumerate()
            .filter_map(move |(i, bytes)| {
                let index = ComponentIndex(i as u8);
                let info = registry.component(index)?;
                let allowed = owner_view || info.visibility == Visibility::Public;
                (allowed && Some(index) != position)
                    .then_some(())
                    .and(bytes.as_ref())
                    .map(|b| (i as u8, b))
            })
    }

    /// Recomputes the entity's hashes; `components_changed` is false when
    /// only its position changed since the last rehash, so that the stored
    /// digest of its components still holds.
    pub fn rehash(&mut self, id: NetId, registry: &ReplicationRegistry, components_changed: bool) {
        if components_changed {
            self.digest_public = self.digest_as(registry, false);
        }
        self.hash_public = entity_hash_of_digest(id, self.kind, self.qpos, self.digest_public);
        // Owners see more only when some component is owner-only, and only an
        // owned entity has an owner to see it (most entities have none).
        self.hash_owner = if self.owner.is_some() && registry.has_private_components() {
            self.hash_as(id, registry, true)
        } else {
            self.hash_public
        };
    }

    /// The entity's hash as its owner (`owner_view`) or anyone else sees it now.
    fn hash_as(&self, id: NetId, registry: &ReplicationRegistry, owner_view: bool) -> u64 {
        let digest = self.digest_as(registry, owner_view);
        entity_hash_of_digest(id, self.kind, self.qpos, digest)
    }

    /// The [`components_digest`] of what the owner (`owner_view`) or anyone else sees now.
    fn digest_as(&self, registry: &ReplicationRegistry, owner_view: bool) -> u64 {
        let components = self
            .visible_components(registry, owner_view)
            .map(|(i, b)| (i, &**b));
        components_digest(components)
    }

    pub fn hash_for(&self, client: ClientId) -> u64 {
        self.placement().hash_for(client)
    }

    /// The entity's hash as `client` sees it at `tick`, the current tick.
    ///
    /// The stored hashes of entities that changed this tick are refreshed only
    /// after the packets are handed over (`collect::hash_changed`), so for those
    /// this computes the hash afresh: the few checksums due in a tick need a
    /// handful, where refreshing all first would delay every client's packets.
    pub fn current_hash_for(
        &self,
        id: NetId,
        client: ClientId,
        registry: &ReplicationRegistry,
        tick: u64,
    ) -> u64 {
        if self.last_change < tick {
            return self.hash_for(client);
        }
        let owner_view = self.owner == Some(client) && registry.has_private_components();
        self.hash_as(id, registry, owner_view)
    }

    /// What interest needs to know of the entity.
    pub fn placement(&self) -> Placement {
        Placement {
            qpos: self.qpos,
            owner: self.owner,
            always_relevant: self.always_relevant,
            hash_public: self.hash_public,
            hash_owner: self.hash_owner,
        }
    }
}

/// The part of an [`EntityRecord`] that decides who sees it, and its hashes:
/// a small copy that views can test without touching the record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    pub qpos: Option<QPos>,
    pub owner: Option<ClientId>,
    pub always_relevant: bool,
    pub hash_public: u64,
    pub hash_owner: u64,
}

impl Placement {
    /// The entity's hash as `client` sees it.
    pub fn hash_for(&self, client: ClientId) -> u64 {
        if self.owner == Some(client) {
            self.hash_owner
        } else {
            self.hash_public
        }
    }

    /// Whether `client` sees the entity wherever its view is.
    pub fn seen_everywhere_by(&self, client: ClientId) -> bool {
        self.always_relevant || self.owner == Some(client) || self.qpos.is_none()
    }
}

/// All replicated entities, and a spatial grid over those with a position.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    pub records: IdMap<EntityRecord>,
    pub by_entity: HashMap<Entity, NetId>,
    pub grid: Grid,
    /// Entities some client sees regardless of view: always relevant, owned, or without position.
    pub everywhere: HashSet<NetId>,
    /// The running sum of every record's public hash: the checksum of a room
    /// view when no component is owner-only.
    room: StateChecksum,
}

impl Mirror {
    /// An empty mirror whose grid cells are `cell_quanta` wide.
    pub fn new(cell_quanta: i32) -> Self {
        Self {
            grid: Grid::new(cell_quanta),
            ..Self::default()
        }
    }

    /// Starts tracking a new entity (hashed by the next [`Mirror::rehash`]).
    pub fn insert(&mut self, id: NetId, record: EntityRecord) {
        self.room.add(record.hash_public);
        if let Some(old) = self.records.insert(id, record) {
            self.room.remove(old.hash_public);
        }
    }

    /// Stops tracking an entity.
    pub fn remove(&mut self, id: NetId) -> Option<EntityRecord> {
        let record = self.records.remove(&id)?;
        self.room.remove(record.hash_public);
        Some(record)
    }

    /// Recomputes `id`'s hashes after a change of the components in `mask`,
    /// keeping the room checksum current.
    pub fn rehash(&mut self, id: NetId, registry: &ReplicationRegistry, mask: u64) {
        let position = registry.position_index().map_or(0, |p| p.bit());
        if let Some(record) = self.records.get_mut(&id) {
            self.room.remove(record.hash_public);
            record.rehash(id, registry, mask & !position != 0);
            self.room.add(record.hash_public);
        }
    }

    /// The checksum of a view of the whole room, as a client without owned
    /// private components sees it.
    pub fn room_checksum(&self) -> u64 {
        self.room.finish()
    }

    /// Re-files `id` in the "seen everywhere" index after its flags or position changed.
    pub fn refresh_everywhere(&mut self, id: NetId) {
        match self.records.get(&id) {
            Some(r) if r.always_relevant || r.owner.is_some() || r.qpos.is_none() => {
                self.everywhere.insert(id);
            }
            _ => {
                self.everywhere.remove(&id);
            }
        }
    }
}

/// Quantizes a position to `precision` units per quantum, saturating far away.
pub(crate) fn quantize(v: Vec2, precision: f32) -> QPos {
    let q = |c: f32| {
        let n = round_half_away(c / precision);
        if n.is_nan() {
            0
        } else {
            n.clamp(i32::MIN as f32, i32::MAX as f32) as i32
        }
    };
    QPos {
        x: q(v.x),
        y: q(v.y),
    }
}

/// `r.round()` (halves away from zero) without a call into libm: baseline
/// x86-64 has no rounding instruction, and every move quantizes twice.
/// Below 2^23 the truncation is exact, and so is the fraction `r - t`;
/// from there on every `f32` is an integer already (or not a number).
fn round_half_away(r: f32) -> f32 {
    if r.is_nan() || r.abs() >= 8_388_608.0 {
        return r;
    }
    let t = r as i32 as f32;
    let fraction = r - t;
    if fraction >= 0.5 {
        t + 1.0
    } else if fraction <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// The position a quantized value stands for.
pub fn dequantize(p: QPos, precision: f32) -> Vec2 {
    Vec2::new(p.x as f32 * precision, p.y as f32 * precision)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every `f32`, halves, near-halves and the edges of exactness included.
        #[test]
        fn rounding_agrees_with_round(
            r in prop_oneof![
                any::<u32>().prop_map(f32::from_bits),
                (-100_000i32..100_000).prop_map(|n| n as f32 + 0.5),
                (-100_000i32..100_000).prop_map(|n| (n as f32 + 0.5).next_down()),
                (-100_000i32..100_000).prop_map(|n| (n as f32 + 0.5).next_up()),
                (8_388_600i32..8_388_620).prop_map(|n| n as f32 - 0.5),
            ],
        ) {
            let (got, want) = (round_half_away(r), r.round());
            prop_assert!(got == want || (got.is_nan() && want.is_nan()), "{r}: {got} against {want}");
        }
    }

    #[test]
    fn changed_since_agrees_with_the_ticks_of_each_component() {
        let mut record = EntityRecord {
            qpos: None,
            kind: KindId(0),
            always_relevant: false,
            owner: None,
            last_change: 1,
            last_mask: 0b111,
            hash_public: 0,
            hash_owner: 0,
            trail: Default::default(),
            components: vec![None; 3],
            changed_at: vec![1; 3],
            created_at: 1,
            digest_public: 0,
        };
        // A fixed pseudo-random schedule: some ticks touch several
        // components, some none, some the same one twice.
        let mut seed = 7_u64;
        for tick in 2..60 {
            for _ in 0..(tick % 4) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                record.touch(ComponentIndex((seed >> 33) as u8 % 3), tick);
            }
            for base in 0..=tick {
                let slow = (0..3)
                    .filter(|&i| record.changed_at[i] > base)
                    .fold(0, |mask, i| mask | 1 << i);
                assert_eq!(record.changed_since(base), slow, "tick {tick}, base {base}");
            }
        }
    }
}

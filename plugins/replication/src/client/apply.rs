//! Applying one whole tick's change set to the client world.

use bevy_ecs::prelude::*;

use super::{ClientError, ClientReplica, Receipt, ReplicaEntity};
use crate::change_set::{EntityState, LimitedChangeSet, QPos};
use crate::codec::DecodeError;
use crate::net_id::{NetId, Replicated};
use crate::registry::{ComponentIndex, ReplicationRegistry};
use crate::server::dequantize;

impl ClientReplica {
    pub(super) fn apply_set(
        &mut self,
        world: &mut World,
        registry: &ReplicationRegistry,
        set: LimitedChangeSet,
    ) -> Result<Receipt, ClientError> {
        if let Some(base) = set.baseline
            && self.tick.is_none_or(|t| t < base)
        {
            self.stats.missing_baseline += 1;
            // Without any state, a full state is on its way; otherwise a link
            // of the server's chain was lost and the server must hear of it.
            if let Some(holds) = self.tick {
                self.missing = Some((holds, set.tick));
            }
            return Ok(Receipt::MissingBaseline);
        }
        validate(&set, registry)?;
        let tick = set.tick;
        self.baseline = set.baseline;

        if set.is_full() {
            let keep: std::collections::HashSet<NetId> = set.created.iter().map(|e| e.id).collect();
            let gone: Vec<NetId> = self
                .entities
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| !keep.contains(id))
                .collect();
            for id in gone {
                self.despawn(world, id);
            }
            self.stats.full_states += 1;
        }
        for state in set.created {
            self.create(world, registry, tick, state)?;
        }
        for m in set.moved {
            let Some(entry) = self.entities.get(&m.id) else {
                return Err(DecodeError::UnknownEntity(m.id.0).into());
            };
            let held = entry.position_at(set.baseline.unwrap_or(tick));
            let to =
                m.to.resolve(held)
                    .ok_or(DecodeError::UnknownEntity(m.id.0))?;
            self.place(world, registry, m.id, tick, Some(to));
        }
        for update in set.updated {
            let Some(entry) = self.entities.get_mut(&update.id) else {
                return Err(DecodeError::UnknownEntity(update.id.0).into());
            };
            let entity = entry.entity;
            for (index, bytes) in update.set {
                insert_component(world, registry, entity, index, &bytes)?;
                entry.set_component(index, bytes);
            }
            let position = registry.position_index();
            let mut bits = update.unset;
            while bits != 0 {
                let i = bits.trailing_zeros() as u8;
                bits &= bits - 1;
                if Some(ComponentIndex(i)) == position {
                    self.place(world, registry, update.id, tick, None);
                } else {
                    remove_component(world, registry, entity, i);
                    if let Some(entry) = self.entities.get_mut(&update.id) {
                        entry.unset_component(i);
                    }
                }
            }
        }
        for id in set.removed {
            self.despawn(world, id);
        }

        self.tick = Some(tick);
        self.ack = Some(tick);
        self.stats.applied += 1;
        let checksum_ok = set
            .checksum
            .map(|expected| expected == self.held_checksum());
        match checksum_ok {
            Some(true) => self.stats.checksums_ok += 1,
            Some(false) => {
                self.stats.checksum_mismatches += 1;
                self.resync_needed = true;
            }
            None => {}
        }
        Ok(Receipt::Applied { tick, checksum_ok })
    }

    fn create(
        &mut self,
        world: &mut World,
        registry: &ReplicationRegistry,
        tick: u64,
        state: EntityState,
    ) -> Result<(), ClientError> {
        // A re-sent create keeps the position history: deltas may still be based
        // on a tick before this one, when the client already held the entity.
        let (entity, positions) = match self.entities.remove(&state.id) {
            Some(entry) => {
                for i in entry.components.keys() {
                    if !state.components.iter().any(|(j, _)| j == i) {
                        remove_component(world, registry, entry.entity, *i);
                    }
                }
                if let Ok(mut e) = world.get_entity_mut(entry.entity) {
                    e.insert(Replicated { kind: state.kind });
                }
                (entry.entity, entry.positions)
            }
            None => (
                world
                    .spawn((state.id, Replicated { kind: state.kind }))
                    .id(),
                Default::default(),
            ),
        };
        self.entities.insert(
            state.id,
            ReplicaEntity {
                entity,
                kind: state.kind,
                positions,
                components: Default::default(),
                digest: None,
            },
        );
        for (index, bytes) in state.components {
            insert_component(world, registry, entity, index, &bytes)?;
            if let Some(entry) = self.entities.get_mut(&state.id) {
                entry.set_component(index, bytes);
            }
        }
        self.place(world, registry, state.id, tick, state.position);
        Ok(())
    }

    /// Sets (or clears) an entity's position in the replica and in the world.
    fn place(
        &mut self,
        world: &mut World,
        registry: &ReplicationRegistry,
        id: NetId,
        tick: u64,
        to: Option<QPos>,
    ) {
        let Some(entry) = self.entities.get_mut(&id) else {
            return;
        };
        let Some(position) = &registry.position else {
            return;
        };
        match to {
            Some(q) => {
                // Positions older than the baseline can never be a delta base
                // again (baselines only move forward). Pruned here, as the
                // entity moves, so a tick costs what changed, not what is held.
                if let Some(base) = self.baseline {
                    let keep_from = entry
                        .positions
                        .iter()
                        .rposition(|(t, _)| *t <= base)
                        .unwrap_or(0);
                    entry.positions.drain(..keep_from);
                }
                entry.positions.retain(|(t, _)| *t < tick);
                entry.positions.push((tick, q));
                if let Ok(mut e) = world.get_entity_mut(entry.entity) {
                    (position.set)(&mut e, dequantize(q, self.precision));
                }
            }
            None => {
                entry.positions.clear();
                remove_component(world, registry, entry.entity, position.index.0);
            }
        }
    }

    fn despawn(&mut self, world: &mut World, id: NetId) {
        if let Some(entry) = self.entities.remove(&id)
            && let Ok(e) = world.get_entity_mut(entry.entity)
        {
            e.despawn();
        }
    }
}

/// Rejects a change set naming components the registry does not have, before anything is applied.
fn validate(set: &LimitedChangeSet, registry: &ReplicationRegistry) -> Result<(), DecodeError> {
    let known = registry.components().len();
    let indices = set
        .created
        .iter()
        .flat_map(|e| e.components.iter().map(|(i, _)| *i))
        .chain(
            set.updated
                .iter()
                .flat_map(|u| u.set.iter().map(|(i, _)| *i)),
        );
    for i in indices {
        if usize::from(i) >= known {
            return Err(DecodeError::UnknownComponent(i));
        }
    }
    let all = if known >= 64 {
        u64::MAX
    } else {
        (1u64 << known) - 1
    };
    if let Some(u) = set.updated.iter().find(|u| u.unset & !all != 0) {
        return Err(DecodeError::UnknownComponent(u.unset.trailing_zeros() as u8));
    }
    Ok(())
}

fn insert_component(
    world: &mut World,
    registry: &ReplicationRegistry,
    entity: Entity,
    index: u8,
    bytes: &[u8],
) -> Result<(), DecodeError> {
    let info = registry
        .component(ComponentIndex(index))
        .ok_or(DecodeError::UnknownComponent(index))?;
    match world.get_entity_mut(entity) {
        Ok(mut e) => (info.fns.insert)(&mut e, bytes),
        Err(_) => Ok(()),
    }
}

fn remove_component(world: &mut World, registry: &ReplicationRegistry, entity: Entity, index: u8) {
    if let (Some(info), Ok(mut e)) = (
        registry.component(ComponentIndex(index)),
        world.get_entity_mut(entity),
    ) {
        (info.fns.remove)(&mut e);
    }
}

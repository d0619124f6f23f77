//! The field-level half of the full change set, recorded after the tick's
//! packets have left.
//!
//! Clients need only the changed components' bytes, which collection stores
//! in the mirror. The full change set also names every changed *field* with
//! its old and new value; finding those takes a reflection walk against the
//! last replicated value of each component. None of that is on the path from
//! an input to the packets that confirm it, so it runs in
//! [`ReplicationSystems::Record`](crate::ReplicationSystems::Record), after
//! `Send`: a changed component costs the latency path one encode and one
//! byte comparison, and the reflection work overlaps the network thread's
//! sending.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_platform::collections::HashMap;
use bevy_platform::collections::hash_map::Entry;

use super::ReplicationServer;
use super::collect::kind_changes;

use crate::change_set::{
    ComponentValue, EntitySnapshot, FieldChange, FieldPath, FullChangeSet, KindChanges,
};
use crate::fields::{FieldValue, diff_fields, visit_fields};
use crate::net_id::{KindId, NetId};
use crate::registry::{ComponentIndex, ReplicatedComponent, ReplicationRegistry};

/// The last recorded value of every entity's `C`, to diff fields against,
/// and the entities whose `C` collection passed on this tick.
#[derive(Resource)]
pub(crate) struct Shadows<C: Component> {
    values: HashMap<NetId, C>,
    paths: PathCache,
    /// Filled by collection, so that recording visits the changed entities
    /// without a second `Changed<C>` scan (which would double an idle tick).
    queued: Vec<(Entity, NetId)>,
}

impl<C: Component> Default for Shadows<C> {
    fn default() -> Self {
        Self {
            values: HashMap::default(),
            paths: PathCache::default(),
            queued: Vec::new(),
        }
    }
}

impl<C: Component> Shadows<C> {
    /// Forgets `id`'s value (its component was removed).
    pub fn forget(&mut self, id: NetId) {
        self.values.remove(&id);
    }

    /// Queues `entity`'s changed `C` for recording this tick.
    pub fn queue(&mut self, entity: Entity, id: NetId) {
        self.queued.push((entity, id));
    }
}

/// The interned field paths of one component.
#[derive(Default)]
struct PathCache(HashMap<Box<str>, FieldPath>);

impl PathCache {
    fn get(&mut self, path: &str) -> FieldPath {
        if let Some(p) = self.0.get(path) {
            return p.clone();
        }
        let p: FieldPath = path.into();
        self.0.insert(path.into(), p.clone());
        p
    }
}

/// Records the field changes of every `C` that collection passed on this tick.
pub(crate) fn record_field_changes<C: ReplicatedComponent>(
    index: ComponentIndex,
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
    mut shadows: ResMut<Shadows<C>>,
    components: Query<&C>,
) {
    let tick = server.tick;
    let server = &mut *server;
    let Shadows {
        values,
        paths,
        queued,
    } = &mut *shadows;
    for (id, _, _) in &server.scratch.despawned {
        values.remove(id);
    }
    let name = registry
        .component(index)
        .map_or_else(|| "".into(), |c| c.name.clone());
    let mut path = String::new();
    for (entity, id) in queued.drain(..) {
        let (Ok(value), Some(record)) = (components.get(entity), server.mirror.records.get(&id))
        else {
            continue;
        };
        let shadow = values.entry(id);
        if record.created_at != tick {
            let changes = kind_changes(&mut server.scratch.kinds, record.kind);
            path.clear();
            path.push_str(&name);
            let mut push = |field: &str, old, new| {
                changes.updated.push(FieldChange {
                    entity: id,
                    field: paths.get(field),
                    old,
                    new,
                });
            };
            match &shadow {
                Entry::Occupied(old) => diff_fields(
                    old.get().as_partial_reflect(),
                    value.as_partial_reflect(),
                    &mut path,
                    &mut push,
                ),
                Entry::Vacant(_) => {
                    visit_fields(value.as_partial_reflect(), &mut path, &mut |f, new| {
                        push(f, FieldValue::Debug("<absent>".into()), new)
                    })
                }
            }
        }
        match shadow {
            Entry::Occupied(mut o) => o.get_mut().clone_from(value),
            Entry::Vacant(v) => {
                v.insert(value.clone());
            }
        }
    }
}

/// Seals the tick's full change set: created entities' snapshots, and every
/// kind's changes, moved into a fresh shared set.
pub(crate) fn seal_change_set(
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
) {
    let tick = server.tick;
    let server = &mut *server;
    for &id in &server.scratch.created {
        let Some(record) = server.mirror.records.get(&id) else {
            continue;
        };
        let components = record
            .components
            .iter()
            .enumerate()
            .filter_map(|(i, bytes)| {
                let info = registry.component(ComponentIndex(i as u8))?;
                Some(ComponentValue {
                    component: info.name.clone(),
                    bytes: bytes.clone()?,
                })
            })
            .collect();
        kind_changes(&mut server.scratch.kinds, record.kind)
            .created
            .push(EntitySnapshot { id, components });
    }
    // A fresh set each tick: whoever still holds last tick's (the
    // persistence writer) keeps it without a copy.
    let mut set = FullChangeSet {
        tick,
        ..Default::default()
    };
    for (i, changes) in server.scratch.kinds.iter_mut().enumerate() {
        if !changes.is_empty() {
            let name = registry.kind_name(KindId(i as u16)).to_string();
            set.kinds.insert(name, std::mem::take(changes));
        }
    }
    let previous = std::mem::replace(&mut server.change_set, Arc::new(set));
    // When no one else holds last tick's set, its lists become this tick's
    // buffers: no regrowing them change by change, no freeing them here.
    if let Ok(previous) = Arc::try_unwrap(previous) {
        recycle(&mut server.scratch.kinds, previous, &registry);
    }
}

/// Hands `previous`'s per-kind lists, emptied, to the kinds whose lists were
/// taken for the new set.
fn recycle(kinds: &mut [KindChanges], mut previous: FullChangeSet, registry: &ReplicationRegistry) {
    for (i, slot) in kinds.iter_mut().enumerate() {
        if slot.is_empty()
            && let Some(mut changes) = previous.kinds.remove(registry.kind_name(KindId(i as u16)))
        {
            changes.clear();
            *slot = changes;
        }
    }
}

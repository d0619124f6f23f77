//! The field-level half of the full change set, recorded after the tick's
//! packets have left.
//!
//! Clients need only the changed components' bytes, which collection stores
//! in the mirror. The full change set also names every changed *field* with
//! its old and new value; finding those compares the bytes a change replaced
//! with the bytes it stored, leaf by leaf (see `differ`). None of that is on
//! the path from an input to the packets that confirm it, so it runs in
//! [`ReplicationSystems::Record`](crate::ReplicationSystems::Record), after
//! `Send`: a changed component costs the latency path one encode and one
//! byte comparison, and the diffing overlaps the network thread's sending.

use std::sync::Arc;

use bevy_ecs::prelude::*;

use super::ReplicationServer;
use super::collect::kind_changes;

use crate::change_set::{
    ComponentBytes, ComponentValue, EntitySnapshot, FieldChange, FullChangeSet, KindChanges,
};
use crate::net_id::{KindId, NetId};
use crate::registry::{ComponentIndex, ReplicatedComponent, ReplicationRegistry};

mod differ;
use differ::FieldDiffer;

/// The values of `C` that collection found changed this tick, as the bytes
/// it replaced and the bytes it stored, for recording to diff.
///
/// The old value is the mirror's last replicated bytes, so the server keeps
/// no second copy of every component to diff against.
#[derive(Resource)]
pub(crate) struct FieldDiffQueue<C: Component> {
    /// Filled by collection, so that recording visits the changed values
    /// without a second `Changed<C>` scan (which would double an idle tick).
    queued: Vec<QueuedChange>,
    differ: FieldDiffer<C>,
}

/// One changed value: `old` is `None` when the component was just added.
struct QueuedChange {
    id: NetId,
    kind: KindId,
    old: Option<ComponentBytes>,
    new: ComponentBytes,
}

impl<C: Component> Default for FieldDiffQueue<C> {
    fn default() -> Self {
        Self {
            queued: Vec::new(),
            differ: FieldDiffer::default(),
        }
    }
}

impl<C: Component> FieldDiffQueue<C> {
    /// Queues a change of `id`'s `C` from `old` to `new` for recording this tick.
    pub fn queue(
        &mut self,
        id: NetId,
        kind: KindId,
        old: Option<ComponentBytes>,
        new: ComponentBytes,
    ) {
        self.queued.push(QueuedChange { id, kind, old, new });
    }
}

/// Records the field changes of every `C` that collection queued this tick.
pub(crate) fn record_field_changes<C: ReplicatedComponent>(
    index: ComponentIndex,
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
    mut queue: ResMut<FieldDiffQueue<C>>,
) {
    let server = &mut *server;
    let FieldDiffQueue { queued, differ } = &mut *queue;
    let name = registry
        .component(index)
        .map_or_else(|| "".into(), |c| c.name.clone());
    for change in queued.drain(..) {
        let changes = kind_changes(&mut server.scratch.kinds, change.kind);
        let entity = change.id;
        differ.diff(
            &name,
            change.old.as_deref(),
            &change.new,
            &mut |field, old, new| {
                changes.updated.push(FieldChange {
                    entity,
                    field,
                    old,
                    new,
                })
            },
        );
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
    let created = if server.skip_full_change_set {
        &[][..]
    } else {
        &server.scratch.created[..]
    };
    for &id in created {
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

//! The systems that turn ECS changes into the tick's change sets.
//!
//! Cost follows change: each registered component is visited through Bevy's
//! `Changed` / `RemovedComponents` filters only, every changed value is
//! serialized once, and an idle tick touches nothing but empty lists.

use bevy_app::App;
use bevy_ecs::intern::Interned;
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;

use super::mirror::{EntityRecord, quantize};
use super::record::{FieldDiffQueue, record_field_changes, seal_change_set};
use super::{Moved, ReplicationServer};
use crate::ReplicationSystems;
use crate::change_set::{ComponentBytes, ComponentWrite, KindChanges};
use crate::codec::encode_component_into;
use crate::config::ReplicationConfig;
use crate::net_id::{
    AlwaysRelevant, KindId, NetId, NetIdAllocator, NewlyReplicated, Owner, Replicated,
};
use crate::registry::{ComponentIndex, PositionGetter, ReplicatedComponent, ReplicationRegistry};

/// Replicated entities whose `C` changed since the system last ran.
type ChangedQuery<'w, 's, C> =
    Query<'w, 's, (&'static NetId, &'static C), (With<Replicated>, Changed<C>)>;

pub(crate) fn add_component_systems<C: ReplicatedComponent>(
    app: &mut App,
    schedule: Interned<dyn ScheduleLabel>,
    index: ComponentIndex,
) {
    app.init_resource::<FieldDiffQueue<C>>();
    app.add_systems(
        schedule,
        (move |server: ResMut<ReplicationServer>,
               registry: Res<ReplicationRegistry>,
               queue: ResMut<FieldDiffQueue<C>>| {
            record_field_changes::<C>(index, server, registry, queue)
        })
        .in_set(ReplicationSystems::Record)
        .before(seal_change_set),
    );
    // Removals first, so that a component removed and re-inserted within one
    // tick ends up with its new value.
    app.add_systems(
        schedule,
        (
            move |server: ResMut<ReplicationServer>,
                  registry: Res<ReplicationRegistry>,
                  removed: RemovedComponents<C>,
                  alive: Query<Has<C>, With<Replicated>>| {
                collect_removed::<C>(index, server, registry, removed, alive)
            },
            move |server: ResMut<ReplicationServer>,
                  registry: Res<ReplicationRegistry>,
                  config: Res<ReplicationConfig>,
                  queue: ResMut<FieldDiffQueue<C>>,
                  getter: Option<Res<PositionGetter<C>>>,
                  changed: ChangedQuery<C>| {
                collect_changed::<C>(index, server, registry, config, queue, getter, changed)
            },
        )
            .chain()
            .in_set(ReplicationSystems::Collect),
    );
}

pub(crate) fn kind_changes(kinds: &mut Vec<KindChanges>, kind: KindId) -> &mut KindChanges {
    let i = usize::from(kind.0);
    if kinds.len() <= i {
        kinds.resize_with(i + 1, KindChanges::default);
    }
    &mut kinds[i]
}

fn collect_changed<C: ReplicatedComponent>(
    index: ComponentIndex,
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
    config: Res<ReplicationConfig>,
    mut queue: ResMut<FieldDiffQueue<C>>,
    getter: Option<Res<PositionGetter<C>>>,
    changed: ChangedQuery<C>,
) {
    let tick = server.tick;
    let server = &mut *server;
    let is_position = registry.position_index() == Some(index);
    let name = registry
        .component(index)
        .map_or_else(|| "".into(), |c| c.name.clone());
    let slot = usize::from(index.0);
    let mut encoded = Vec::new();
    let first_move = server.scratch.moved.len();
    // `for_each` takes Bevy's dense-table fast path; a `for` loop steps the
    // iterator entity by entity, which doubles the cost of an idle scan.
    changed.iter().for_each(|(&id, value)| {
        let Some(record) = server.mirror.records.get_mut(&id) else {
            return;
        };
        let created = record.created_at == tick;
        // The encoding is canonical, so equal bytes are an unchanged value
        // (a write of the same value, or one undone within the tick).
        encode_component_into(value, &mut encoded);
        if !created && record.components[slot].as_deref() == Some(encoded.as_slice()) {
            return;
        }
        let bytes: ComponentBytes = encoded.as_slice().into();
        let old = record.components[slot].replace(bytes.clone());
        let mut bit = index.bit();
        if !created && !server.skip_full_change_set {
            kind_changes(&mut server.scratch.kinds, record.kind)
                .written
                .push(ComponentWrite {
                    entity: id,
                    component: name.clone(),
                    bytes: Some(bytes.clone()),
                });
            queue.queue(id, record.kind, old, bytes);
        }
        let mut placed = false;
        if is_position && let Some(getter) = &getter {
            let q = quantize((getter.0)(value), config.position_precision);
            if record.qpos == Some(q) {
                // Moved less than a quantum: lossless change sets see it, clients need not.
                bit = 0;
            } else {
                let was_placed = record.qpos.is_some();
                // Filed in the grid below, all together.
                server.scratch.moved.push(Moved {
                    id,
                    from: record.qpos,
                    from_cell: None,
                    to: Some(q),
                    to_cell: None,
                });
                record.qpos = Some(q);
                record.trail.record(tick, record.qpos);
                placed = !was_placed;
            }
        }
        if bit != 0 {
            record.touch(index, tick);
            *server.scratch.changed.get_or_insert_with(id, || 0) |= bit;
        }
        if placed {
            server.mirror.refresh_everywhere(id);
        }
    });
    // Each move writes its grid cell, and finds where the entity is filed
    // first: two cache misses, as every room's grid is cold when its tick
    // starts. Interleaved with the collection above they were a tenth of
    // S5's room time (`perf`); in a loop of their own the core has several
    // moves' misses in flight at once.
    let ReplicationServer {
        mirror, scratch, ..
    } = server;
    for m in &mut scratch.moved[first_move..] {
        (m.from_cell, m.to_cell) = mirror.grid.relocate(m.id, m.to);
    }
}

fn collect_removed<C: ReplicatedComponent>(
    index: ComponentIndex,
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
    mut removed: RemovedComponents<C>,
    alive: Query<Has<C>, With<Replicated>>,
) {
    let server = &mut *server;
    let is_position = registry.position_index() == Some(index);
    let name = registry
        .component(index)
        .map_or_else(|| "".into(), |c| c.name.clone());
    for entity in removed.read() {
        // Despawned entities are handled as a whole; re-inserted components as changes.
        if !matches!(alive.get(entity), Ok(false)) {
            continue;
        }
        let Some(&id) = server.mirror.by_entity.get(&entity) else {
            continue;
        };
        let Some(record) = server.mirror.records.get_mut(&id) else {
            continue;
        };
        if record.components[usize::from(index.0)].take().is_none() {
            continue;
        }
        if !server.skip_full_change_set {
            kind_changes(&mut server.scratch.kinds, record.kind)
                .written
                .push(ComponentWrite {
                    entity: id,
                    component: name.clone(),
                    bytes: None,
                });
        }
        record.touch(index, server.tick);
        if is_position && let Some(q) = record.qpos.take() {
            record.trail.record(server.tick, None);
            let from_cell = server.mirror.grid.remove(id);
            server.mirror.refresh_everywhere(id);
            server.scratch.moved.push(Moved {
                id,
                from: Some(q),
                from_cell,
                to: None,
                to_cell: None,
            });
        }
        *server.scratch.changed.get_or_insert_with(id, || 0) |= index.bit();
    }
}

/// Starts a replication tick.
pub(crate) fn begin_tick(mut server: ResMut<ReplicationServer>) {
    server.tick += 1;
    let scratch = &mut server.scratch;
    scratch.changed.clear();
    scratch.created.clear();
    scratch.moved.clear();
    scratch.despawned.clear();
    scratch.hashed = false;
    // Normally already empty (sealing takes them); clearing keeps recycled capacity.
    scratch.kinds.iter_mut().for_each(KindChanges::clear);
}

/// Entities that stopped replicating: despawned, or their [`Replicated`] removed.
pub(crate) fn detect_despawns(
    mut server: ResMut<ReplicationServer>,
    mut removed: RemovedComponents<Replicated>,
    alive: Query<(), With<Replicated>>,
) {
    let server = &mut *server;
    for entity in removed.read() {
        if alive.contains(entity) {
            continue;
        }
        let Some(id) = server.mirror.by_entity.remove(&entity) else {
            continue;
        };
        let Some(record) = server.mirror.remove(id) else {
            continue;
        };
        server.mirror.grid.remove(id);
        server.mirror.everywhere.remove(&id);
        if !server.skip_full_change_set {
            kind_changes(&mut server.scratch.kinds, record.kind)
                .deleted
                .push(id);
        }
        server
            .scratch
            .despawned
            .push((id, record.kind, record.qpos));
    }
}

/// Gives replicated entities without a [`NetId`] a fresh one.
pub(crate) fn assign_net_ids(
    mut commands: Commands,
    mut allocator: ResMut<NetIdAllocator>,
    unnamed: Query<Entity, (With<Replicated>, Without<NetId>)>,
) {
    for entity in &unnamed {
        commands.entity(entity).insert(allocator.allocate());
    }
}

type NewEntity<'a> = (
    Entity,
    &'a NetId,
    &'a Replicated,
    Option<&'a Owner>,
    Has<AlwaysRelevant>,
);

/// Starts tracking entities that began replicating this tick.
pub(crate) fn register_entities(
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
    mut allocator: ResMut<NetIdAllocator>,
    mut queue: ResMut<NewlyReplicated>,
    new: Query<NewEntity>,
) {
    if queue.0.is_empty() {
        return;
    }
    let tick = server.tick;
    let server = &mut *server;
    for &entity in &queue.0 {
        // Gone again, or queued twice (removed and re-added): nothing new to track.
        let Ok((entity, &id, replicated, owner, always_relevant)) = new.get(entity) else {
            continue;
        };
        if server.mirror.by_entity.contains_key(&entity) {
            continue;
        }
        allocator.observe(id);
        if server.mirror.records.contains_key(&id) {
            tracing::error!(
                ?id,
                ?entity,
                "duplicate NetId; the entity is not replicated"
            );
            continue;
        }
        server.mirror.insert(
            id,
            EntityRecord {
                kind: replicated.kind,
                created_at: tick,
                owner: owner.map(|o| o.0),
                always_relevant,
                components: vec![None; registry.components().len()],
                changed_at: vec![tick; registry.components().len()],
                last_change: tick,
                last_mask: registry.components_mask(),
                qpos: None,
                trail: Default::default(),
                hash_public: 0,
                hash_owner: 0,
                digest_public: 0,
            },
        );
        server.mirror.by_entity.insert(entity, id);
        server.mirror.refresh_everywhere(id);
        server.scratch.created.push(id);
        server.scratch.changed.insert(id, u64::MAX);
    }
    queue.0.clear();
}

/// Closes collection: records the tick in the history, which is all the
/// per-client builds need. The full change set is sealed after sending
/// (`record::seal_change_set`), and changed entities are rehashed then too
/// ([`hash_changed`]).
pub(crate) fn finish_tick(mut server: ResMut<ReplicationServer>, config: Res<ReplicationConfig>) {
    let tick = server.tick;
    let server = &mut *server;
    let changed = server.scratch.changed.iter().map(|(id, mask)| (*id, *mask));
    server
        .history
        .push(tick, changed, config.history_ticks as usize);
}

/// Refreshes the stored hashes of the entities changed this tick, and with
/// them the mirror's room sum, unless that happened already this tick.
///
/// Runs in `Record`, after the packets are handed over: hashing every
/// changed entity is work no packet waits for, since the few checksums due
/// in a tick hash what they need afresh (`EntityRecord::current_hash_for`).
/// Only a due checksum that is the room sum itself needs it earlier, and
/// `send` calls [`rehash_changed`] first on those ticks.
pub(crate) fn hash_changed(
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
) {
    rehash_changed(&mut server, &registry);
}

/// See [`hash_changed`].
pub(crate) fn rehash_changed(server: &mut ReplicationServer, registry: &ReplicationRegistry) {
    if server.scratch.hashed {
        return;
    }
    for (id, mask) in &server.scratch.changed {
        server.mirror.rehash(*id, registry, *mask);
    }
    server.scratch.hashed = true;
}

//! Whole-room state as persistence stores it, and the algebra of full change sets.
//!
//! A [`WorldSnapshot`] is every replicated entity with its kind and component
//! bytes at one tick. Replaying [`FullChangeSet`]s onto it in tick order yields
//! the state of any later tick; [`FullChangeSet::compose`] folds two
//! consecutive change sets into one with the same effect, which lets a writer
//! that falls behind coalesce ticks without losing anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::change_set::{
    ComponentBytes, ComponentName, ComponentValue, ComponentWrite, EntitySnapshot, FieldChange,
    FieldPath, FullChangeSet, KindChanges,
};
use crate::net_id::NetId;

/// The replicated state of a room at one tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorldSnapshot {
    /// The tick this state is the result of.
    pub tick: u64,
    /// Every replicated entity.
    pub entities: BTreeMap<NetId, SnapshotEntity>,
}

/// One entity in a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEntity {
    /// Its kind name.
    pub kind: String,
    /// Component bytes by registered component name.
    pub components: BTreeMap<String, Vec<u8>>,
}

/// Why a change set cannot be applied to a snapshot.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// The change set is not newer than the snapshot.
    #[error("change set of tick {set} does not follow snapshot tick {snapshot}")]
    OutOfOrder {
        /// The change set's tick.
        set: u64,
        /// The snapshot's tick.
        snapshot: u64,
    },
}

impl WorldSnapshot {
    /// Applies one tick's changes: deletions first (an id may be deleted and
    /// re-created in one tick), then creations, then component writes.
    pub fn apply(&mut self, set: &FullChangeSet) -> Result<(), SnapshotError> {
        if set.tick <= self.tick && !(set.tick == 0 && self.tick == 0) {
            return Err(SnapshotError::OutOfOrder {
                set: set.tick,
                snapshot: self.tick,
            });
        }
        for changes in set.kinds.values() {
            for id in &changes.deleted {
                self.entities.remove(id);
            }
        }
        for (kind, changes) in &set.kinds {
            for created in &changes.created {
                let components = created
                    .components
                    .iter()
                    .map(|c| (c.component.to_string(), c.bytes.to_vec()))
                    .collect();
                self.entities.insert(
                    created.id,
                    SnapshotEntity {
                        kind: kind.clone(),
                        components,
                    },
                );
            }
        }
        for changes in set.kinds.values() {
            for write in &changes.written {
                if let Some(entity) = self.entities.get_mut(&write.entity) {
                    match &write.bytes {
                        Some(bytes) => entity
                            .components
                            .insert(write.component.to_string(), bytes.to_vec()),
                        None => entity.components.remove(&*write.component),
                    };
                }
            }
        }
        self.tick = set.tick;
        Ok(())
    }
}

/// The net effect of some ticks on one entity.
#[derive(Clone, Debug, Default)]
struct Effect {
    kind: String,
    /// The entity existed before and was deleted.
    deleted: bool,
    /// The entity was (re)created with these components.
    created: Option<BTreeMap<ComponentName, ComponentBytes>>,
    /// Component writes on an entity that was not (re)created, by component, in order.
    written: BTreeMap<ComponentName, Option<ComponentBytes>>,
    /// Field changes on an entity that was not (re)created: (first old, last new).
    fields: BTreeMap<FieldPath, FieldChange>,
}

impl FullChangeSet {
    /// Folds `next` (the following tick or ticks) into `self`: applying the
    /// result to a snapshot equals applying `self`, then `next`. Field-level
    /// updates keep the first old and the last new value.
    pub fn compose(&mut self, next: FullChangeSet) {
        let tick = self.tick.max(next.tick);
        let mut effects = effects(std::mem::take(self));
        for (id, b) in effects_in_order(next) {
            match effects.get_mut(&id) {
                None => {
                    effects.insert(id, b);
                }
                Some(a) => fold(a, b),
            }
        }
        *self = materialize(effects, tick);
    }
}

fn effects(set: FullChangeSet) -> BTreeMap<NetId, Effect> {
    effects_in_order(set).into_iter().collect()
}

/// Per-entity net effects of one change set, in the order `apply` uses:
/// deletions, creations, writes (and field updates).
fn effects_in_order(set: FullChangeSet) -> Vec<(NetId, Effect)> {
    let mut map: BTreeMap<NetId, Effect> = BTreeMap::new();
    for (kind, changes) in &set.kinds {
        for id in &changes.deleted {
            ensure(&mut map, *id, kind);
            if let Some(e) = map.get_mut(id) {
                e.deleted = true;
            }
        }
    }
    for (kind, changes) in &set.kinds {
        for created in &changes.created {
            ensure(&mut map, created.id, kind);
            if let Some(e) = map.get_mut(&created.id) {
                e.kind = kind.clone();
                e.created = Some(
                    created
                        .components
                        .iter()
                        .map(|c| (c.component.clone(), c.bytes.clone()))
                        .collect(),
                );
            }
        }
    }
    for (kind, changes) in &set.kinds {
        for write in &changes.written {
            ensure(&mut map, write.entity, kind);
            let Some(e) = map.get_mut(&write.entity) else {
                continue;
            };
            match &mut e.created {
                Some(components) => {
                    match &write.bytes {
                        Some(bytes) => components.insert(write.component.clone(), bytes.clone()),
                        None => components.remove(&write.component),
                    };
                }
                None => {
                    e.written
                        .insert(write.component.clone(), write.bytes.clone());
                }
            }
        }
        for change in &changes.updated {
            ensure(&mut map, change.entity, kind);
            if let Some(e) = map.get_mut(&change.entity)
                && e.created.is_none()
            {
                merge_field(&mut e.fields, change.clone());
            }
        }
    }
    map.into_iter().collect()
}

/// Makes sure `id` has an effect entry, of `kind` if new.
fn ensure(map: &mut BTreeMap<NetId, Effect>, id: NetId, kind: &str) {
    map.entry(id).or_insert_with(|| Effect {
        kind: kind.to_string(),
        ..Effect::default()
    });
}

fn merge_field(fields: &mut BTreeMap<FieldPath, FieldChange>, change: FieldChange) {
    match fields.get_mut(&change.field) {
        Some(existing) => existing.new = change.new,
        None => {
            fields.insert(change.field.clone(), change);
        }
    }
}

/// `a` then `b` on the same entity.
fn fold(a: &mut Effect, b: Effect) {
    if b.deleted {
        // Whatever `a` did is undone; the entity is gone (or replaced, if `b` re-creates it).
        let existed_before = a.deleted || a.created.is_none();
        a.deleted = existed_before;
        a.created = b.created;
        a.written.clear();
        a.fields.clear();
        a.kind = b.kind;
        return;
    }
    if let Some(components) = b.created {
        // Created without a deletion: `a` must have deleted it.
        a.created = Some(components);
        a.written.clear();
        a.fields.clear();
        a.kind = b.kind;
        return;
    }
    match &mut a.created {
        Some(components) => {
            for (component, bytes) in b.written {
                match bytes {
                    Some(bytes) => components.insert(component, bytes),
                    None => components.remove(&component),
                };
            }
        }
        None => {
            a.written.extend(b.written);
            for (_, change) in b.fields {
                merge_field(&mut a.fields, change);
            }
        }
    }
}

fn materialize(effects: BTreeMap<NetId, Effect>, tick: u64) -> FullChangeSet {
    let mut set = FullChangeSet {
        tick,
        kinds: BTreeMap::new(),
    };
    for (id, e) in effects {
        if !e.deleted && e.created.is_none() && e.written.is_empty() && e.fields.is_empty() {
            continue;
        }
        let changes: &mut KindChanges = set.kinds.entry(e.kind).or_default();
        if e.deleted {
            changes.deleted.push(id);
        }
        if let Some(components) = e.created {
            changes.created.push(EntitySnapshot {
                id,
                components: components
                    .into_iter()
                    .map(|(component, bytes)| ComponentValue { component, bytes })
                    .collect(),
            });
        }
        changes.written.extend(
            e.written
                .into_iter()
                .map(|(component, bytes)| ComponentWrite {
                    entity: id,
                    component,
                    bytes,
                }),
        );
        changes.updated.extend(e.fields.into_values());
    }
    set
}

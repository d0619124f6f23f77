//! The two kinds of change set.
//!
//! * [`FullChangeSet`] — per room and tick, everything that changed, field by
//!   field with old and new values, grouped by entity kind. Lossless: it is what
//!   is stored, replayed, shown in tools and sent to privileged observers.
//! * [`LimitedChangeSet`] — per client and tick, only what that client may see,
//!   as a delta against a tick the client holds (the previous change set
//!   sent, or the last one it acknowledged; see ARCHITECTURE.md, "Delivery
//!   semantics"). Positions travel quantized ([`QPos`]); component values travel as their serialized bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fields::FieldValue;
use crate::net_id::{KindId, NetId};

mod component_bytes;
pub use component_bytes::ComponentBytes;

/// Everything that changed in a room during one tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FullChangeSet {
    /// The tick these changes happened in.
    pub tick: u64,
    /// Changes grouped by entity kind name (`npcs`, `buildings`, …).
    pub kinds: BTreeMap<String, KindChanges>,
}

impl FullChangeSet {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.kinds.values().all(KindChanges::is_empty)
    }

    /// The number of created, field-updated and deleted entries together.
    pub fn len(&self) -> usize {
        self.kinds
            .values()
            .map(|k| k.created.len() + k.updated.len() + k.deleted.len())
            .sum()
    }
}

/// The changes to the entities of one kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindChanges {
    /// Entities that started replicating, with every replicated component.
    pub created: Vec<EntitySnapshot>,
    /// Field-level updates of existing entities.
    pub updated: Vec<FieldChange>,
    /// The new serialized value of every component behind `updated`, or `None`
    /// for a removed component: what a replay applies.
    pub written: Vec<ComponentWrite>,
    /// Entities that stopped replicating (despawned or unmarked).
    pub deleted: Vec<NetId>,
}

impl KindChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
            && self.updated.is_empty()
            && self.written.is_empty()
            && self.deleted.is_empty()
    }

    /// Empties every list, keeping their capacity.
    pub fn clear(&mut self) {
        self.created.clear();
        self.updated.clear();
        self.written.clear();
        self.deleted.clear();
    }
}

/// A registered component name, shared by every change that names it.
/// Serialized as a plain string.
pub type ComponentName = std::sync::Arc<str>;

/// An entity with all of its replicated components.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntitySnapshot {
    /// The entity.
    pub id: NetId,
    /// Its components, by registered name, in registration order.
    pub components: Vec<ComponentValue>,
}

/// One component's serialized value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentValue {
    /// The registered component name.
    pub component: ComponentName,
    /// The value, encoded with the replication codec.
    pub bytes: ComponentBytes,
}

/// A component written (or removed) in an update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentWrite {
    /// The entity.
    pub entity: NetId,
    /// The registered component name.
    pub component: ComponentName,
    /// The new value, or `None` when the component was removed.
    pub bytes: Option<ComponentBytes>,
}

/// A field path such as `position.x`. Interned: every change of the same
/// field shares one allocation (a busy tick has thousands of them). Serialized
/// as a plain string.
pub type FieldPath = std::sync::Arc<str>;

/// One leaf field that changed, e.g. `{entity: 7, field: "position.x", old: 1.0, new: 1.5}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The entity.
    pub entity: NetId,
    /// The field path, starting with the component name.
    pub field: FieldPath,
    /// The value before the tick.
    pub old: FieldValue,
    /// The value after the tick.
    pub new: FieldValue,
}

/// A position quantized to the replication precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QPos {
    /// x in quanta.
    pub x: i32,
    /// y in quanta.
    pub y: i32,
}

/// What one client receives for one tick.
///
/// Applying it to a client state at any tick `S` with `baseline <= S < tick`
/// yields exactly the server's visible state for this client at `tick`.
/// A `baseline` of `None` marks a full state, which replaces the client's
/// state whatever it was.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LimitedChangeSet {
    /// The server tick this change set brings the client to.
    pub tick: u64,
    /// The tick this is a delta against (the client must hold it or a later
    /// one); `None` for a full state.
    pub baseline: Option<u64>,
    /// A hash of the client's whole visible state at `tick`, every few ticks.
    pub checksum: Option<u64>,
    /// Entities entering view (or all visible entities, in a full state).
    pub created: Vec<EntityState>,
    /// Entities whose quantized position changed.
    pub moved: Vec<Move>,
    /// Entities with other visible components set or removed.
    pub updated: Vec<EntityUpdate>,
    /// Entities that left view or were despawned.
    pub removed: Vec<NetId>,
}

impl LimitedChangeSet {
    /// Whether a delta carries nothing (no creation, move, update or removal);
    /// it may still carry a checksum.
    pub fn is_empty_delta(&self) -> bool {
        self.created.is_empty()
            && self.moved.is_empty()
            && self.updated.is_empty()
            && self.removed.is_empty()
    }
}

impl LimitedChangeSet {
    /// Whether this is a full state.
    pub fn is_full(&self) -> bool {
        self.baseline.is_none()
    }
}

/// An entity as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityState {
    /// The entity.
    pub id: NetId,
    /// Its kind.
    pub kind: KindId,
    /// Its quantized position, if it has one.
    pub position: Option<QPos>,
    /// Its visible components other than the position, by registry index.
    pub components: Vec<(u8, ComponentBytes)>,
}

/// A new quantized position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// The entity.
    pub id: NetId,
    /// Where it is now.
    pub to: MoveTo,
}

/// How a new position is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveTo {
    /// The position itself.
    Absolute(QPos),
    /// The difference to the position the client holds, which the server knows
    /// because the client acknowledged it. Usually one byte per axis.
    Delta(QPos),
}

impl MoveTo {
    /// The resulting position, given what the client holds.
    pub fn resolve(self, held: Option<QPos>) -> Option<QPos> {
        match self {
            MoveTo::Absolute(p) => Some(p),
            MoveTo::Delta(d) => held.map(|h| QPos {
                x: h.x.wrapping_add(d.x),
                y: h.y.wrapping_add(d.y),
            }),
        }
    }
}

/// Components set or removed on an entity the client already has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityUpdate {
    /// The entity.
    pub id: NetId,
    /// Components with new values, by registry index.
    pub set: Vec<(u8, ComponentBytes)>,
    /// Mask of components (bit = registry index) that were removed.
    pub unset: u64,
}

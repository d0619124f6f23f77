//! Network identity: which entities replicate, under which stable id, of which kind, owned by whom.

use bevy_ecs::lifecycle::HookContext;
use bevy_ecs::prelude::*;
use bevy_ecs::world::DeferredWorld;
use serde::{Deserialize, Serialize};

/// A stable network id: the same for an entity on the server, in every client and in
/// persisted state, across restarts. Never derived from `Entity` bits, which are
/// neither stable nor meaningful outside one world.
#[derive(
    Component, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NetId(pub u64);

/// Identifies a connected client to the replication server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// The index of a registered entity kind (see [`crate::AppReplicateExt::replicate_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KindId(pub u16);

/// Opts an entity into replication as an entity of `kind`.
///
/// If the entity has no [`NetId`] when it is first replicated, the server assigns
/// the next free one; games with their own stable ids insert a `NetId` themselves.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
#[component(on_add = queue_newly_replicated)]
pub struct Replicated {
    /// The entity's kind, which groups it in change sets.
    pub kind: KindId,
}

/// Entities that gained [`Replicated`] since the server last registered new
/// entities. A hook fills it so that registering costs what was added, where an
/// `Added<Replicated>` filter would test every replicated entity every tick.
#[derive(Resource, Default)]
pub(crate) struct NewlyReplicated(pub Vec<Entity>);

fn queue_newly_replicated(mut world: DeferredWorld, ctx: HookContext) {
    // Absent in apps without the server plugin (a client's replica).
    if let Some(mut queue) = world.get_resource_mut::<NewlyReplicated>() {
        queue.0.push(ctx.entity);
    }
}

/// The client that owns an entity: it alone receives the entity's private components,
/// and it always sees the entity regardless of its view.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner(pub ClientId);

/// Marks an entity every client sees, wherever its view is (scoreboards, weather, …).
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlwaysRelevant;

/// Hands out [`NetId`]s to replicated entities that arrive without one.
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct NetIdAllocator {
    next: u64,
}

impl NetIdAllocator {
    /// Returns a fresh id, above every id seen so far.
    pub fn allocate(&mut self) -> NetId {
        let id = NetId(self.next);
        self.next += 1;
        id
    }

    /// Records an id chosen elsewhere so that it is never handed out again.
    pub fn observe(&mut self, id: NetId) {
        self.next = self.next.max(id.0.saturating_add(1));
    }
}

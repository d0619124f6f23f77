//! Wires the village into the replication plugin.
//!
//! The game (`crate::sim`) knows nothing of replication; this module decides
//! what replicates and how: every simulated entity replicates under its
//! [`SimId`] as its [`NetId`] (so ids survive restarts and persistence), grouped
//! by [`Kind`], with these components:
//!
//! | component | why |
//! |---|---|
//! | `Position` | quantized, drives interest |
//! | `Velocity` | lets clients extrapolate between ticks |
//! | `Npc` | what a villager is doing and carrying |
//! | `ResourceNode`, `Building` | the economy players see |
//! | `Player` | avatars and their loads |
//! | `Health` | the swarm's hit points |
//!
//! `Needs` and `SearchCooldown` change every tick and are AI internals, so they
//! stay on the server (they are still in the room's state hash and in persistence).

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use kasagi_replication::{
    AppReplicateExt, KindId, NetId, Replicated, ReplicationConfig, ReplicationPlugin,
    ReplicationServer, ReplicationSystems,
};

use crate::room::{RoomSchedule, Tick, TickSet};
use crate::sim::{Building, Health, Kind, Npc, Player, Position, ResourceNode, SimId, Velocity};

/// Server-side: replicates the village of a room.
#[derive(Default)]
pub struct VillageReplicationPlugin {
    /// Replication settings.
    pub config: ReplicationConfig,
}

impl Plugin for VillageReplicationPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(
            ReplicationPlugin::in_schedule(RoomSchedule).with_config(self.config.clone()),
        );
        register_village(app);
        // A resumed room continues its tick numbering; so does replication.
        if let Some(tick) = app.world().get_resource::<Tick>().map(|t| t.get()) {
            app.world_mut()
                .resource_mut::<ReplicationServer>()
                .start_at(tick);
        }
        // Change collection belongs to the Replicate stage; building and
        // encoding each client's change set is the Send stage.
        app.configure_sets(
            RoomSchedule,
            (
                (
                    ReplicationSystems::Prepare,
                    ReplicationSystems::Collect,
                    ReplicationSystems::Finish,
                )
                    .in_set(TickSet::Replicate),
                (ReplicationSystems::Send, ReplicationSystems::Record).in_set(TickSet::Send),
            ),
        );
        app.add_systems(
            RoomSchedule,
            mark_replicated
                .in_set(TickSet::Replicate)
                .before(ReplicationSystems::Prepare),
        );
    }
}

/// Registers the village's replicated components and kinds, in protocol order.
/// Servers and clients both call it, so their protocol hashes agree.
pub fn register_village(app: &mut App) {
    app.replicate_position::<Position>(|p| p.0, Position)
        .replicate::<Velocity>()
        .replicate::<Npc>()
        .replicate::<ResourceNode>()
        .replicate::<Building>()
        .replicate::<Player>()
        .replicate::<Health>();
    for kind in Kind::ALL {
        let id = app.replicate_kind(kind.plural());
        debug_assert_eq!(id, kind_id(kind), "kinds register in Kind::ALL order");
    }
}

/// The replication kind of a village [`Kind`].
pub fn kind_id(kind: Kind) -> KindId {
    KindId(kind as u16)
}

/// Opts every simulated entity into replication, under its sim id.
fn mark_replicated(
    mut commands: Commands,
    new: Query<(Entity, &SimId, &Kind), Without<Replicated>>,
) {
    for (entity, id, kind) in &new {
        commands.entity(entity).insert((
            Replicated {
                kind: kind_id(*kind),
            },
            NetId(u64::from(id.0)),
        ));
    }
}

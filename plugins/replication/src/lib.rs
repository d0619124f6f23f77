//! Kasagi replication: game code mutates components; this plugin, and nothing
//! in the game code, turns those mutations into change sets.
//!
//! It knows nothing of sockets or storage. Each tick it produces
//!
//! * one [`FullChangeSet`] for the room — every created entity, every field
//!   change (`position.x: 1.0 → 1.5`), every deletion, grouped by entity kind —
//!   for persistence, replay, tools and privileged observers, and
//! * for each connected client, the encoded packets of a [`LimitedChangeSet`]:
//!   only what that client may see, as a delta against the state it last
//!   acknowledged, quantized, id-gap coded and split at MTU boundaries.
//!
//! The [`client`] module applies those packets to a client `World`.
//!
//! # Use
//!
//! ```
//! use bevy_app::prelude::*;
//! use bevy_ecs::prelude::*;
//! use bevy_reflect::Reflect;
//! use kasagi_replication::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Component, Reflect, Serialize, Deserialize, Clone, PartialEq)]
//! struct Health(u16);
//!
//! let mut app = App::new();
//! app.add_plugins(ReplicationPlugin::default());
//! app.replicate::<Health>();
//! let npcs = app.replicate_kind("npcs");
//! app.world_mut().spawn((Replicated { kind: npcs }, Health(100)));
//! app.update();
//! let set = app.world().resource::<ReplicationServer>().full_change_set();
//! assert_eq!(set.kinds["npcs"].created.len(), 1);
//! ```
//!
//! # Delivery semantics
//!
//! * A change set for tick `T` with baseline `B` holds, for one client: every
//!   entity that entered its view after `B` (all visible components), every
//!   visible component changed after `B` on entities it held at `B` (current
//!   values), every position that changed quantum after `B`, every entity that
//!   left view or was despawned after `B`.
//! * Applied to a client state at any tick `S` with `B <= S < T`, it yields
//!   exactly the server's visible state for that client at `T`. Change sets with
//!   `T <= S` are stale and dropped; lost ones need no retransmission, because the
//!   next change set carries everything since the (unchanged) baseline again.
//! * The baseline is the newest tick the client acknowledged. A client that
//!   never acknowledged, asked for a resync, or fell more than
//!   [`ReplicationConfig::history_ticks`] behind gets a full state (no baseline),
//!   which replaces whatever it held.
//! * Every [`ReplicationConfig::checksum_interval`] ticks the change set carries
//!   a checksum of the client's whole visible state at `T`; a client that
//!   disagrees after applying it asks for a full state.

#![warn(missing_docs)]

pub mod change_set;
pub mod checksum;
pub mod client;
pub mod codec;
mod config;
pub mod fields;
mod id_map;
mod net_id;
mod registry;
pub mod server;
pub mod snapshot;

pub use change_set::{FieldPath, FullChangeSet, LimitedChangeSet, QPos};
pub use config::ReplicationConfig;
pub use net_id::{AlwaysRelevant, ClientId, KindId, NetId, NetIdAllocator, Owner, Replicated};
pub use registry::{
    AppReplicateExt, ComponentIndex, ComponentInfo, MAX_COMPONENTS, PROTOCOL_VERSION,
    ReplicatedComponent, ReplicationRegistry, Visibility,
};
pub use server::{ReplicationServer, SendTotals, View};
pub use snapshot::{SnapshotEntity, SnapshotError, WorldSnapshot};

use bevy_app::{App, Plugin, PostUpdate};
use bevy_ecs::intern::Interned;
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;

/// Everything most users need.
pub mod prelude {
    pub use crate::client::{ClientReplica, ClientReplicationPlugin};
    pub use crate::{
        AlwaysRelevant, AppReplicateExt, ClientId, FullChangeSet, KindId, LimitedChangeSet, NetId,
        Owner, Replicated, ReplicationConfig, ReplicationPlugin, ReplicationRegistry,
        ReplicationServer, ReplicationSystems, View,
    };
}

/// The server-side replication stages, run in this order.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicationSystems {
    /// Starts the tick: despawns, new ids, newly replicated entities.
    Prepare,
    /// Per registered component: changes and removals.
    Collect,
    /// Records the tick in the history.
    Finish,
    /// Interest, then each client's limited change set, encoded.
    Send,
    /// Field-level changes (old → new), then the sealed full change set, and
    /// the changed entities' hashes. After `Send` because no client packet
    /// needs them: a transport that takes packets between `Send` and `Record`
    /// has them before this work runs.
    Record,
}

/// The server replication plugin.
///
/// Runs in [`PostUpdate`] by default; a game server with its own tick schedule
/// passes that instead ([`ReplicationPlugin::in_schedule`]) and orders
/// [`ReplicationSystems`] after its simulation.
pub struct ReplicationPlugin {
    /// Settings.
    pub config: ReplicationConfig,
    /// The schedule replication runs in.
    pub schedule: Interned<dyn ScheduleLabel>,
}

impl Default for ReplicationPlugin {
    fn default() -> Self {
        Self {
            config: ReplicationConfig::default(),
            schedule: PostUpdate.intern(),
        }
    }
}

impl ReplicationPlugin {
    /// Replication in `schedule` with default settings.
    pub fn in_schedule(schedule: impl ScheduleLabel) -> Self {
        Self {
            schedule: schedule.intern(),
            ..Self::default()
        }
    }

    /// The same plugin with `config`.
    pub fn with_config(mut self, config: ReplicationConfig) -> Self {
        self.config = config;
        self
    }
}

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        app.world_mut()
            .get_resource_or_init::<ReplicationRegistry>()
            .schedule = Some(self.schedule);
        app.insert_resource(self.config.clone())
            .insert_resource(ReplicationServer::new(&self.config))
            .init_resource::<NetIdAllocator>();
        // Entities spawned before the plugin was added missed the queueing hook.
        let world = app.world_mut();
        let existing: Vec<Entity> = world
            .query_filtered::<Entity, With<Replicated>>()
            .iter(world)
            .collect();
        world.insert_resource(net_id::NewlyReplicated(existing));
        let s = self.schedule;
        app.configure_sets(
            s,
            (
                ReplicationSystems::Prepare,
                ReplicationSystems::Collect,
                ReplicationSystems::Finish,
                ReplicationSystems::Send,
                ReplicationSystems::Record,
            )
                .chain(),
        );
        app.add_systems(
            s,
            (
                server::collect::begin_tick,
                server::collect::detect_despawns,
                server::collect::assign_net_ids,
                server::collect::register_entities,
            )
                .chain()
                .in_set(ReplicationSystems::Prepare),
        );
        app.add_systems(
            s,
            server::collect::finish_tick.in_set(ReplicationSystems::Finish),
        );
        app.add_systems(
            s,
            server::send::send_change_sets.in_set(ReplicationSystems::Send),
        );
        app.add_systems(
            s,
            (
                server::record::seal_change_set,
                server::collect::hash_changed,
            )
                .in_set(ReplicationSystems::Record),
        );
    }
}

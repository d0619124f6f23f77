//! The village: the example game Kasagi ships with.
//!
//! Plain Bevy ECS and nothing else — no networking, no persistence, no
//! replication. NPCs wander a 2D map, get hungry and tired, eat at resource
//! nodes that deplete and regrow, haul surplus food to buildings (building
//! them up or filling their stores) and rest inside finished ones. Players move
//! by [`PlayerInput`] messages and can gather and build too.
//!
//! All randomness derives from the world seed and every rate is per second of
//! simulation time with a fixed `dt`, so the same world file and seed give the
//! same [`state_hash`] after N ticks however fast the ticks are run.

pub mod admin;
mod components;
mod economy;
mod generate;
mod index;
pub mod input;
mod movement;
mod params;
mod players;
mod rng;
mod state;
mod state_hash;
pub mod swarm;
mod tuning;
mod villagers;
mod world_def;

pub use components::{
    Activity, Building, Kind, Needs, Npc, Player, Position, ResourceNode, SearchCooldown, SimId,
    Velocity,
};
pub use generate::populate;
pub use index::{SimIndex, StaticGrid, StaticIndex};
pub use params::SimParams;
pub use players::{PlayerAction, PlayerInput, ScriptedPlayers, despawn_player, spawn_player};
pub use rng::EntityRng;
pub use state::{EntityState, SimState};
pub use state_hash::{format_hash, state_hash};
pub use swarm::{Health, SwarmDef, Swarmer};
pub use tuning::Tuning;
pub use world_def::{
    Interest, MAX_ENTITIES_PER_KIND, MAX_MAP_SIDE, MAX_TICK_HZ, MapDef, Population, WorldDef,
    WorldFileError,
};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;

use crate::room::{RoomSchedule, TickSet};

/// Adds the village simulation to a room and spawns its world: the tick-0
/// world of the definition, or a persisted [`SimState`].
pub struct VillagePlugin {
    /// The world's rules and, for a new room, its generation parameters.
    pub def: WorldDef,
    /// The state to resume from instead of generating the world.
    pub from: Option<SimState>,
}

impl VillagePlugin {
    /// The plugin for a new world.
    pub fn new(def: WorldDef) -> Self {
        Self { def, from: None }
    }

    /// The plugin for a room resuming `state` (its tick counter included).
    pub fn restored(def: WorldDef, state: SimState) -> Self {
        Self {
            def,
            from: Some(state),
        }
    }
}

impl Plugin for VillagePlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<PlayerInput>();
        app.add_systems(
            RoomSchedule,
            players::scripted_inputs
                .run_if(resource_exists::<ScriptedPlayers>)
                .in_set(TickSet::Receive),
        );
        // Chained: inputs first, then minds, then motion, then the economy.
        // A fixed order is what makes the simulation deterministic.
        app.add_systems(
            RoomSchedule,
            (
                players::apply_player_inputs,
                swarm::drift,
                villagers::villager_behaviour,
                movement::integrate_motion,
                economy::regrow_resources,
            )
                .chain()
                .in_set(TickSet::Simulate),
        );
        if let Some(swarm) = self.def.swarm {
            app.insert_resource(swarm::SwarmRules {
                moving: swarm.moving,
            });
        }
        match &self.from {
            Some(state) => {
                state.restore(app.world_mut(), &self.def);
                app.insert_resource(crate::room::Tick::new(state.tick));
            }
            None => populate(app.world_mut(), &self.def),
        }
    }
}

/// Counts the world's entities per [`Kind`], in [`Kind::ALL`] order.
pub fn count_by_kind(world: &mut World) -> [(Kind, u64); 5] {
    let mut counts = Kind::ALL.map(|k| (k, 0u64));
    let mut query = world.query::<&Kind>();
    for kind in query.iter(world) {
        counts[*kind as usize].1 += 1;
    }
    counts
}

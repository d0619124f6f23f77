//! World generation: turns a [`WorldDef`] into tick-0 entities.

use std::f32::consts::TAU;

use bevy_ecs::prelude::*;
use glam::Vec2;
use rand::RngExt;
use rand_pcg::Pcg32;

use super::index::{SimIndex, StaticGrid, StaticIndex};
use super::rng::{EntityRng, stream_rng};
use super::{
    Activity, Building, Kind, Needs, Npc, Player, Position, ResourceNode, SearchCooldown, SimId,
    SimParams, Velocity, WorldDef,
};

/// Spawns the world described by `def` into an empty `world` and inserts the
/// lookup resources. Kinds are generated from independent RNG streams, so
/// changing one count leaves the placement of the other kinds unchanged.
pub fn populate(world: &mut World, def: &WorldDef) {
    let params = SimParams::from_def(def);
    let size = params.map_size;
    let tuning = &def.tuning;
    let mut index = SimIndex::default();
    let mut statics = StaticIndex {
        resources: StaticGrid::new(size, tuning.index_cell),
        buildings: StaticGrid::new(size, tuning.index_cell),
    };

    let mut rng = stream_rng(def.seed, 1);
    for _ in 0..def.population.resources {
        let pos = random_point(&mut rng, size);
        let capacity = rng.random_range(range(tuning.resource_capacity));
        let node = ResourceNode {
            amount: capacity * rng.random_range(0.5..=1.0f32),
            capacity,
            regrow_per_sec: rng.random_range(range(tuning.resource_regrow_per_sec)),
        };
        let id = spawn(world, &mut index, def.seed, Kind::Resource, pos, node);
        statics.resources.insert(id, pos);
    }

    let mut rng = stream_rng(def.seed, 2);
    for _ in 0..def.population.buildings {
        let pos = random_point(&mut rng, size);
        let finished = rng.random::<f32>() < tuning.finished_building_share;
        let building = Building {
            progress: if finished {
                1.0
            } else {
                rng.random_range(0.0..0.9f32)
            },
            storage: 0.0,
            capacity: tuning.building_capacity,
        };
        let id = spawn(world, &mut index, def.seed, Kind::Building, pos, building);
        statics.buildings.insert(id, pos);
    }

    let mut rng = stream_rng(def.seed, 3);
    for _ in 0..def.population.npcs {
        let pos = random_point(&mut rng, size);
        let needs = Needs {
            hunger: rng.random_range(0.0..0.6f32),
            energy: rng.random_range(0.4..=1.0f32),
        };
        let npc = Npc {
            activity: Activity::Wander,
            carried: 0.0,
        };
        let heading = Vec2::from_angle(rng.random_range(0.0..TAU)) * tuning.npc_speed;
        spawn(
            world,
            &mut index,
            def.seed,
            Kind::Npc,
            pos,
            (npc, needs, SearchCooldown(0), Velocity(heading)),
        );
    }

    let mut rng = stream_rng(def.seed, 4);
    for slot in 0..def.population.players {
        let pos = random_point(&mut rng, size);
        let player = Player { slot, carried: 0.0 };
        spawn(
            world,
            &mut index,
            def.seed,
            Kind::Player,
            pos,
            (player, Velocity::default()),
        );
    }

    // The swarm: one stream for placement, each swarmer's own generator for
    // its velocity (the same generator then drives its drift).
    let mut rng = stream_rng(def.seed, 5);
    for _ in 0..def.swarm.map_or(0, |s| s.entities) {
        let pos = random_point(&mut rng, size);
        let id = index.next_id();
        let mut own = EntityRng::new(def.seed, id);
        let bundle = super::swarm::swarmer_bundle(&mut own);
        let entity = world
            .spawn((id, Kind::Swarmer, Position(pos), own, bundle))
            .id();
        index.insert(id, entity);
    }

    world.insert_resource(index);
    world.insert_resource(statics);
    world.insert_resource(params);
}

fn spawn(
    world: &mut World,
    index: &mut SimIndex,
    seed: u64,
    kind: Kind,
    pos: Vec2,
    bundle: impl Bundle,
) -> SimId {
    let id = index.next_id();
    let entity = world
        .spawn((id, kind, Position(pos), EntityRng::new(seed, id), bundle))
        .id();
    index.insert(id, entity);
    id
}

fn random_point(rng: &mut Pcg32, size: Vec2) -> Vec2 {
    Vec2::new(rng.random_range(0.0..size.x), rng.random_range(0.0..size.y))
}

fn range((lo, hi): (f32, f32)) -> std::ops::RangeInclusive<f32> {
    lo..=hi
}

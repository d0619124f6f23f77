//! The whole simulation state of a room as plain data: what persistence
//! archives and what a restarted room is rebuilt from.
//!
//! [`SimState`] holds every component of every simulated entity, server-only
//! ones included (needs, search cooldowns, generators), plus the two counters
//! that are not derivable from the entities (the next sim id and player slot).
//! Restoring it and running the same inputs continues the simulation exactly
//! as the original room would have: [`state_hash`](super::state_hash) is a
//! hash over this canonical form.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::index::{SimIndex, StaticGrid, StaticIndex};
use super::players::NextPlayerSlot;
use super::rng::EntityRng;
use super::{
    Building, Health, Kind, Needs, Npc, Player, Position, ResourceNode, SearchCooldown, SimId,
    SimParams, Swarmer, Velocity, WorldDef,
};

/// Every simulated entity and counter of a room at one tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimState {
    /// The tick this is the state after.
    pub tick: u64,
    /// The next unused sim id (ids are never reused, so this is not `max + 1`).
    pub next_id: u32,
    /// The next player slot to hand out.
    pub next_player_slot: u32,
    /// Every entity, in id order.
    pub entities: Vec<EntityState>,
}

/// One simulated entity: its id, kind and whichever components it has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Field names are the component names.
pub struct EntityState {
    pub id: SimId,
    pub kind: Kind,
    pub position: Option<Position>,
    pub velocity: Option<Velocity>,
    pub needs: Option<Needs>,
    pub npc: Option<Npc>,
    pub node: Option<ResourceNode>,
    pub building: Option<Building>,
    pub player: Option<Player>,
    pub cooldown: Option<SearchCooldown>,
    pub rng: Option<EntityRng>,
    pub health: Option<Health>,
    /// Whether the entity drifts by the swarm rule (`Swarmer`).
    pub swarmer: bool,
}

type Item<'a> = (
    &'a SimId,
    &'a Kind,
    (
        Option<&'a Position>,
        Option<&'a Velocity>,
        Option<&'a Needs>,
        Option<&'a Npc>,
        Option<&'a ResourceNode>,
        Option<&'a Building>,
        Option<&'a Player>,
        Option<&'a SearchCooldown>,
        Option<&'a EntityRng>,
        Option<&'a Health>,
        Has<Swarmer>,
    ),
);

impl SimState {
    /// Copies the simulation state out of `world` at `tick`.
    ///
    /// This runs on the tick thread (every archive interval), so it only copies;
    /// encoding happens wherever the copy is sent.
    pub fn capture(world: &mut World, tick: u64) -> Self {
        let mut query = world.query::<Item>();
        let mut entities: Vec<EntityState> = query
            .iter(world)
            .map(
                |(
                    &id,
                    &kind,
                    (
                        position,
                        velocity,
                        needs,
                        npc,
                        node,
                        building,
                        player,
                        cd,
                        rng,
                        health,
                        swarmer,
                    ),
                )| {
                    EntityState {
                        id,
                        kind,
                        position: position.copied(),
                        velocity: velocity.copied(),
                        needs: needs.copied(),
                        npc: npc.copied(),
                        node: node.copied(),
                        building: building.copied(),
                        player: player.copied(),
                        cooldown: cd.copied(),
                        rng: rng.cloned(),
                        health: health.copied(),
                        swarmer,
                    }
                },
            )
            .collect();
        entities.sort_unstable_by_key(|e| e.id);
        Self {
            tick,
            next_id: world
                .get_resource::<SimIndex>()
                .map_or(0, |i| i.next_id().0),
            next_player_slot: world.get_resource::<NextPlayerSlot>().map_or(0, |n| n.0),
            entities,
        }
    }

    /// Spawns this state into an empty `world` of the world `def`, with the
    /// lookup resources rebuilt exactly as world generation builds them.
    pub fn restore(&self, world: &mut World, def: &WorldDef) {
        let params = SimParams::from_def(def);
        let cell = def.tuning.index_cell;
        let mut index = SimIndex::with_next_id(SimId(self.next_id));
        let mut statics = StaticIndex {
            resources: StaticGrid::new(params.map_size, cell),
            buildings: StaticGrid::new(params.map_size, cell),
        };
        // Id order is generation order, so grid cells list their entities in
        // the same order as in the original room and nearest-search ties break alike.
        for e in &self.entities {
            let mut entity = world.spawn((e.id, e.kind));
            macro_rules! put {
                ($($field:ident),*) => {$(
                    if let Some(c) = e.$field.clone() {
                        entity.insert(c);
                    }
                )*};
            }
            put!(
                position, velocity, needs, npc, node, building, player, cooldown, rng, health
            );
            if e.swarmer {
                entity.insert(Swarmer);
            }
            index.insert(e.id, entity.id());
            let pos = e.position.map(|p| p.0).unwrap_or_default();
            match e.kind {
                Kind::Resource => statics.resources.insert(e.id, pos),
                Kind::Building => statics.buildings.insert(e.id, pos),
                Kind::Npc | Kind::Player | Kind::Swarmer => {}
            }
        }
        world.insert_resource(index);
        world.insert_resource(statics);
        world.insert_resource(params);
        world.insert_resource(NextPlayerSlot(self.next_player_slot));
    }

    /// The canonical state hash (XXH3-64): equal exactly when every entity has
    /// the same kind and bit-identical simulation components. Generators are
    /// bookkeeping and left out, as are the counters.
    pub fn hash(&self) -> u64 {
        let mut h = Xxh3::new();
        for e in &self.entities {
            h.update(&e.id.0.to_le_bytes());
            h.update(&[e.kind as u8]);
            // Each optional component is tagged so that absence is distinguishable.
            if let Some(p) = e.position {
                floats(&mut h, 1, &[p.0.x, p.0.y]);
            }
            if let Some(v) = e.velocity {
                floats(&mut h, 2, &[v.0.x, v.0.y]);
            }
            if let Some(n) = e.needs {
                floats(&mut h, 3, &[n.hunger, n.energy]);
            }
            if let Some(n) = e.npc {
                let target = n.activity.target().map_or(u32::MAX, |t| t.0);
                h.update(&[4, n.activity.tag()]);
                h.update(&target.to_le_bytes());
                floats(&mut h, 5, &[n.carried]);
            }
            if let Some(r) = e.node {
                floats(&mut h, 6, &[r.amount, r.capacity, r.regrow_per_sec]);
            }
            if let Some(b) = e.building {
                floats(&mut h, 7, &[b.progress, b.storage, b.capacity]);
            }
            if let Some(c) = e.cooldown {
                h.update(&[10]);
                h.update(&c.0.to_le_bytes());
            }
            if let Some(p) = e.player {
                h.update(&[8]);
                h.update(&p.slot.to_le_bytes());
                floats(&mut h, 9, &[p.carried]);
            }
            if let Some(hp) = e.health {
                h.update(&[11]);
                h.update(&hp.0.to_le_bytes());
            }
            if e.swarmer {
                h.update(&[12]);
            }
        }
        h.digest()
    }
}

fn floats(h: &mut Xxh3, tag: u8, values: &[f32]) {
    h.update(&[tag]);
    for v in values {
        h.update(&v.to_bits().to_le_bytes());
    }
}

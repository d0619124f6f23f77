//! Villager behaviour: needs drive a small state machine of activities.
//!
//! ```text
//!  Wander ──hungry──▶ SeekFood ──arrived──▶ Eat ──sated, food left──▶ Haul ──arrived──▶ Wander
//!     │                  ▲  node emptied ─────┘                          (builds or stores)
//!     └──tired──▶ SeekRest ──arrived──▶ Rest ──rested or starving──▶ Wander
//! ```
//!
//! Villagers never die, so entity counts stay as configured; a villager that
//! finds nothing to eat keeps wandering and retries after a cooldown.

use bevy_ecs::prelude::*;
use glam::Vec2;
use rand::RngExt;

use super::index::{SimIndex, StaticIndex};
use super::rng::EntityRng;
use super::{
    Activity, Building, Needs, Npc, Position, ResourceNode, SearchCooldown, SimId, SimParams,
    Velocity,
};

type VillagerItem<'a> = (
    &'a Position,
    &'a mut Velocity,
    &'a mut Needs,
    &'a mut Npc,
    &'a mut SearchCooldown,
    &'a mut EntityRng,
);

/// Resource nodes with their positions.
type NodeQuery<'w, 's> = Query<'w, 's, (&'static Position, &'static mut ResourceNode)>;
/// Buildings with their positions.
type BuildingQuery<'w, 's> = Query<'w, 's, (&'static Position, &'static mut Building)>;

/// Advances every villager's needs and activity by one tick and sets its velocity.
pub fn villager_behaviour(
    params: Res<SimParams>,
    index: Res<SimIndex>,
    statics: Res<StaticIndex>,
    mut villagers: Query<VillagerItem>,
    mut nodes: NodeQuery<'_, '_>,
    mut buildings: BuildingQuery<'_, '_>,
) {
    let t = &params.tuning;
    let dt = params.dt;
    for (pos, mut vel, mut needs, mut npc, mut cooldown, mut rng) in &mut villagers {
        let pos = pos.0;
        let mut new_vel = vel.0;
        let mut new_needs = *needs;
        let mut new_npc = *npc;
        let mut new_cooldown = cooldown.0.saturating_sub(1);

        match npc.activity {
            Activity::Wander => {
                let mut chosen = None;
                if new_cooldown == 0 {
                    if needs.hunger >= t.hungry_at {
                        chosen = statics
                            .resources
                            .nearest(pos, t.sight, |id| {
                                node_has_food(&index, &nodes, id, t.eat_per_sec * dt)
                            })
                            .map(|(id, _)| Activity::SeekFood(id));
                    } else if needs.energy <= t.tired_at {
                        chosen = statics
                            .buildings
                            .nearest(pos, t.sight, |id| building_finished(&index, &buildings, id))
                            .map(|(id, _)| Activity::SeekRest(id));
                    }
                    let wants_something = needs.hunger >= t.hungry_at || needs.energy <= t.tired_at;
                    if chosen.is_none() && wants_something {
                        let jitter = rng.0.random_range(0..=t.search_cooldown_ticks);
                        new_cooldown = t.search_cooldown_ticks.saturating_add(jitter);
                    }
                }
                match chosen {
                    Some(activity) => new_npc.activity = activity,
                    None => {
                        let turn = rng.0.random::<f32>() < t.wander_turn_per_sec * dt;
                        if turn || new_vel == Vec2::ZERO {
                            let angle = rng.0.random_range(0.0..std::f32::consts::TAU);
                            new_vel = Vec2::from_angle(angle) * t.npc_speed;
                        }
                    }
                }
            }
            Activity::SeekFood(target) => match lookup(&index, &nodes, target) {
                Some((at, node)) if node.amount > 0.0 => {
                    new_vel = steer(pos, at, t.npc_speed, dt, t.reach);
                    if new_vel == Vec2::ZERO {
                        new_npc.activity = Activity::Eat(target);
                    }
                }
                _ => new_npc.activity = Activity::Wander,
            },
            Activity::Eat(target) => {
                new_vel = Vec2::ZERO;
                match index.get(target).and_then(|e| nodes.get_mut(e).ok()) {
                    Some((_, mut node)) if needs.hunger > t.sated_at => {
                        let bite = (t.eat_per_sec * dt).min(node.amount);
                        if bite > 0.0 {
                            node.amount -= bite;
                            new_needs.hunger = (new_needs.hunger - bite).max(0.0);
                        } else {
                            new_npc.activity = Activity::Wander;
                        }
                    }
                    Some((_, mut node)) => {
                        // Sated: take some food along for the village.
                        let load = (t.haul_load - new_npc.carried).max(0.0).min(node.amount);
                        if load > 0.0 {
                            node.amount -= load;
                            new_npc.carried += load;
                        }
                        new_npc.activity = match statics.buildings.nearest(pos, t.sight, |_| true) {
                            Some((id, _)) if new_npc.carried > 0.0 => Activity::Haul(id),
                            _ => Activity::Wander,
                        };
                    }
                    None => new_npc.activity = Activity::Wander,
                }
            }
            Activity::Haul(target) => {
                match index.get(target).and_then(|e| buildings.get_mut(e).ok()) {
                    Some((at, mut building)) => {
                        new_vel = steer(pos, at.0, t.npc_speed, dt, t.reach);
                        if new_vel == Vec2::ZERO {
                            deliver(&mut building, new_npc.carried, t.build_per_food);
                            new_npc.carried = 0.0;
                            new_npc.activity = Activity::Wander;
                        }
                    }
                    None => new_npc.activity = Activity::Wander,
                }
            }
            Activity::SeekRest(target) => {
                match index.get(target).and_then(|e| buildings.get(e).ok()) {
                    Some((at, _)) => {
                        new_vel = steer(pos, at.0, t.npc_speed, dt, t.reach);
                        if new_vel == Vec2::ZERO {
                            new_npc.activity = Activity::Rest(target);
                        }
                    }
                    None => new_npc.activity = Activity::Wander,
                }
            }
            Activity::Rest(_) => {
                new_vel = Vec2::ZERO;
                new_needs.energy = (new_needs.energy + t.rest_per_sec * dt).min(1.0);
                let starving = needs.hunger >= (t.hungry_at + 1.0) / 2.0;
                if new_needs.energy >= t.rested_at || starving {
                    new_npc.activity = Activity::Wander;
                }
            }
        }

        new_needs.hunger = (new_needs.hunger + t.hunger_per_sec * dt).min(1.0);
        if new_vel != Vec2::ZERO {
            new_needs.energy = (new_needs.energy - t.tiredness_per_sec * dt).max(0.0);
        }
        commit(&mut vel, &mut needs, &mut npc, new_vel, new_needs, new_npc);
        cooldown.set_if_neq(SearchCooldown(new_cooldown));
    }
}

/// Writes back only what changed, so change detection sees real changes only.
fn commit(
    vel: &mut Mut<Velocity>,
    needs: &mut Mut<Needs>,
    npc: &mut Mut<Npc>,
    new_vel: Vec2,
    new_needs: Needs,
    new_npc: Npc,
) {
    vel.set_if_neq(Velocity(new_vel));
    needs.set_if_neq(new_needs);
    npc.set_if_neq(new_npc);
}

/// Velocity that walks from `from` towards `to` without overshooting; zero once within `reach`.
fn steer(from: Vec2, to: Vec2, speed: f32, dt: f32, reach: f32) -> Vec2 {
    let offset = to - from;
    let dist = offset.length();
    if dist <= reach {
        Vec2::ZERO
    } else {
        // Stop at the target rather than oscillating around it.
        offset / dist * speed.min(dist / dt)
    }
}

/// Hauled food builds an unfinished building, or fills a finished one's store.
pub(crate) fn deliver(building: &mut Building, food: f32, build_per_food: f32) {
    if building.is_finished() {
        building.storage = (building.storage + food).min(building.capacity);
    } else {
        building.progress = (building.progress + food * build_per_food).min(1.0);
    }
}

fn lookup<'a>(
    index: &SimIndex,
    nodes: &'a NodeQuery<'_, '_>,
    id: SimId,
) -> Option<(Vec2, &'a ResourceNode)> {
    let (pos, node) = nodes.get(index.get(id)?).ok()?;
    Some((pos.0, node))
}

fn node_has_food(index: &SimIndex, nodes: &NodeQuery<'_, '_>, id: SimId, bite: f32) -> bool {
    lookup(index, nodes, id).is_some_and(|(_, n)| n.amount >= bite)
}

fn building_finished(index: &SimIndex, buildings: &BuildingQuery<'_, '_>, id: SimId) -> bool {
    index
        .get(id)
        .and_then(|e| buildings.get(e).ok())
        .is_some_and(|(_, b)| b.is_finished())
}

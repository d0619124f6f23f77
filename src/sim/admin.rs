//! Direct edits of the world, for game masters and tools: spawn, despawn, teleport, set a field.

use bevy_ecs::prelude::*;
use glam::Vec2;
use rand::RngExt;

use super::index::{SimIndex, StaticIndex};
use super::rng::EntityRng;
use super::{
    Activity, Building, Kind, Needs, Npc, Player, Position, ResourceNode, SearchCooldown, SimId,
    SimParams, Velocity,
};

/// Fields [`set_field`] can write.
pub const SETTABLE_FIELDS: [&str; 6] = [
    "resource_node.amount",
    "building.progress",
    "building.storage",
    "needs.hunger",
    "needs.energy",
    "player.carried",
];

/// Spawns a villager at `at` (clamped to the map) and returns its id.
pub fn spawn_npc(world: &mut World, at: Vec2) -> SimId {
    let params = world.resource::<SimParams>().clone();
    let id = world.resource::<SimIndex>().next_id();
    let mut rng = EntityRng::new(params.seed, id);
    let heading =
        Vec2::from_angle(rng.0.random_range(0.0..std::f32::consts::TAU)) * params.tuning.npc_speed;
    let entity = world
        .spawn((
            id,
            Kind::Npc,
            Position(at.clamp(Vec2::ZERO, params.map_size)),
            rng,
            Npc {
                activity: Activity::Wander,
                carried: 0.0,
            },
            Needs {
                hunger: 0.0,
                energy: 1.0,
            },
            SearchCooldown(0),
            Velocity(heading),
        ))
        .id();
    world.resource_mut::<SimIndex>().insert(id, entity);
    id
}

/// Despawns any simulated entity; `false` if there is none with `id`.
pub fn despawn_entity(world: &mut World, id: SimId) -> bool {
    let Some(entity) = world.resource::<SimIndex>().get(id) else {
        return false;
    };
    // Static entities leave the spatial index too, or searches would keep
    // finding them (and a restored room, whose index is rebuilt, would not).
    let kind = world.get::<Kind>(entity).copied();
    let pos = world.get::<Position>(entity).map(|p| p.0);
    if let (Some(kind @ (Kind::Resource | Kind::Building)), Some(pos)) = (kind, pos)
        && let Some(mut statics) = world.get_resource_mut::<StaticIndex>()
    {
        match kind {
            Kind::Resource => statics.resources.remove(id, pos),
            _ => statics.buildings.remove(id, pos),
        }
    }
    world.despawn(entity);
    world.resource_mut::<SimIndex>().remove(id);
    true
}

/// Moves a villager or player to `to` (clamped to the map). Static entities
/// (resources, buildings) cannot be moved: the spatial index assumes they stay.
pub fn teleport(world: &mut World, id: SimId, to: Vec2) -> Result<(), String> {
    let map = world.resource::<SimParams>().map_size;
    let entity = world
        .resource::<SimIndex>()
        .get(id)
        .ok_or("no such entity")?;
    match world.get::<Kind>(entity) {
        Some(Kind::Npc | Kind::Player | Kind::Swarmer) => {}
        _ => return Err("only villagers and players can be teleported".into()),
    }
    if let Some(mut p) = world.get_mut::<Position>(entity) {
        p.0 = to.clamp(Vec2::ZERO, map);
    }
    Ok(())
}

/// Reads a settable field.
pub fn get_field(world: &World, id: SimId, field: &str) -> Result<f64, String> {
    let entity = world
        .resource::<SimIndex>()
        .get(id)
        .ok_or("no such entity")?;
    let e = world.entity(entity);
    let value = match field {
        "resource_node.amount" => e.get::<ResourceNode>().map(|r| r.amount),
        "building.progress" => e.get::<Building>().map(|b| b.progress),
        "building.storage" => e.get::<Building>().map(|b| b.storage),
        "needs.hunger" => e.get::<Needs>().map(|n| n.hunger),
        "needs.energy" => e.get::<Needs>().map(|n| n.energy),
        "player.carried" => e.get::<Player>().map(|p| p.carried),
        _ => {
            return Err(format!(
                "unknown field {field:?}; settable: {}",
                SETTABLE_FIELDS.join(", ")
            ));
        }
    };
    value
        .map(f64::from)
        .ok_or_else(|| format!("the entity has no {field}"))
}

/// Writes a settable field, clamped to the field's valid range.
pub fn set_field(world: &mut World, id: SimId, field: &str, value: f64) -> Result<(), String> {
    get_field(world, id, field)?;
    if !value.is_finite() {
        return Err("the value must be finite".into());
    }
    let entity = world
        .resource::<SimIndex>()
        .get(id)
        .ok_or("no such entity")?;
    let v = value as f32;
    let mut e = world.entity_mut(entity);
    match field {
        "resource_node.amount" => {
            if let Some(mut r) = e.get_mut::<ResourceNode>() {
                r.amount = v.clamp(0.0, r.capacity);
            }
        }
        "building.progress" => {
            if let Some(mut b) = e.get_mut::<Building>() {
                b.progress = v.clamp(0.0, 1.0);
            }
        }
        "building.storage" => {
            if let Some(mut b) = e.get_mut::<Building>() {
                b.storage = v.clamp(0.0, b.capacity);
            }
        }
        "needs.hunger" => {
            if let Some(mut n) = e.get_mut::<Needs>() {
                n.hunger = v.clamp(0.0, 1.0);
            }
        }
        "needs.energy" => {
            if let Some(mut n) = e.get_mut::<Needs>() {
                n.energy = v.clamp(0.0, 1.0);
            }
        }
        "player.carried" => {
            if let Some(mut p) = e.get_mut::<Player>() {
                p.carried = v.max(0.0);
            }
        }
        _ => unreachable!("checked by get_field"),
    }
    Ok(())
}

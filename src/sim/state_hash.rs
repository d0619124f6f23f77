//! The canonical state hash of a village world.
//!
//! Two worlds hash equal exactly when every simulated entity, identified by its
//! [`SimId`], has the same kind and the same simulation component values
//! (compared bit for bit). Entities are visited in id order, so the hash does
//! not depend on spawn order, archetype layout or `Entity` bits. Generators
//! ([`super::EntityRng`]) are internal bookkeeping and are not part of it.

use bevy_ecs::prelude::*;
use xxhash_rust::xxh3::Xxh3;

use super::{
    Building, Kind, Needs, Npc, Player, Position, ResourceNode, SearchCooldown, SimId, Velocity,
};

type HashedItem<'a> = (
    &'a SimId,
    &'a Kind,
    Option<&'a Position>,
    Option<&'a Velocity>,
    Option<&'a Needs>,
    Option<&'a Npc>,
    Option<&'a ResourceNode>,
    Option<&'a Building>,
    Option<&'a Player>,
    Option<&'a SearchCooldown>,
);

/// Hashes the simulation state of `world` (XXH3-64 over a canonical byte stream).
pub fn state_hash(world: &mut World) -> u64 {
    let mut query = world.query::<HashedItem>();
    let mut items: Vec<HashedItem> = query.iter(world).collect();
    items.sort_unstable_by_key(|item| *item.0);

    let mut h = Xxh3::new();
    for (id, kind, pos, vel, needs, npc, node, building, player, cooldown) in items {
        h.update(&id.0.to_le_bytes());
        h.update(&[*kind as u8]);
        // Each optional component is tagged so that absence is distinguishable.
        if let Some(p) = pos {
            floats(&mut h, 1, &[p.0.x, p.0.y]);
        }
        if let Some(v) = vel {
            floats(&mut h, 2, &[v.0.x, v.0.y]);
        }
        if let Some(n) = needs {
            floats(&mut h, 3, &[n.hunger, n.energy]);
        }
        if let Some(n) = npc {
            let target = n.activity.target().map_or(u32::MAX, |t| t.0);
            h.update(&[4, n.activity.tag()]);
            h.update(&target.to_le_bytes());
            floats(&mut h, 5, &[n.carried]);
        }
        if let Some(r) = node {
            floats(&mut h, 6, &[r.amount, r.capacity, r.regrow_per_sec]);
        }
        if let Some(b) = building {
            floats(&mut h, 7, &[b.progress, b.storage, b.capacity]);
        }
        if let Some(c) = cooldown {
            h.update(&[10]);
            h.update(&c.0.to_le_bytes());
        }
        if let Some(p) = player {
            h.update(&[8]);
            h.update(&p.slot.to_le_bytes());
            floats(&mut h, 9, &[p.carried]);
        }
    }
    h.digest()
}

fn floats(h: &mut Xxh3, tag: u8, values: &[f32]) {
    h.update(&[tag]);
    for v in values {
        h.update(&v.to_bits().to_le_bytes());
    }
}

/// Formats a state hash the way summaries print it: 16 lowercase hex digits.
pub fn format_hash(hash: u64) -> String {
    format!("{hash:016x}")
}

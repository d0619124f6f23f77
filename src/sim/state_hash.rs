//! The canonical state hash of a village world.
//!
//! Two worlds hash equal exactly when every simulated entity, identified by its
//! [`SimId`](super::SimId), has the same kind and the same simulation component
//! values (compared bit for bit). Entities are visited in id order, so the hash
//! does not depend on spawn order, archetype layout or `Entity` bits.
//! Generators ([`super::EntityRng`]) are internal bookkeeping and are not part
//! of it. The hash is defined over [`SimState`], the form persistence
//! archives, so a writer can hash a captured state off the tick thread.

use bevy_ecs::prelude::*;

use super::SimState;

/// Hashes the simulation state of `world` (XXH3-64 over a canonical byte stream).
pub fn state_hash(world: &mut World) -> u64 {
    SimState::capture(world, 0).hash()
}

/// Formats a state hash the way summaries print it: 16 lowercase hex digits.
pub fn format_hash(hash: u64) -> String {
    format!("{hash:016x}")
}

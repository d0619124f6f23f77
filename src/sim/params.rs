//! The constants every village system reads.

use bevy_ecs::prelude::*;
use glam::Vec2;

use super::{Tuning, WorldDef};

/// Per-room simulation constants, fixed at world creation.
#[derive(Resource, Clone, Debug)]
pub struct SimParams {
    /// Simulation seconds per tick (`1 / tick_hz`), independent of wall time.
    pub dt: f32,
    /// The map's extent; positions stay within `0..=map_size`.
    pub map_size: Vec2,
    /// The world seed, for generators of entities spawned later.
    pub seed: u64,
    /// Gameplay constants.
    pub tuning: Tuning,
}

impl SimParams {
    /// The constants for a world definition.
    pub fn from_def(def: &WorldDef) -> Self {
        Self {
            dt: 1.0 / def.tick_hz as f32,
            map_size: Vec2::new(def.map.width, def.map.height),
            seed: def.seed,
            tuning: def.tuning.clone(),
        }
    }
}

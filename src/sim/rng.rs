//! Seeded randomness: every random draw comes from the world seed.
//!
//! Each entity owns its own generator, seeded from the world seed and its
//! [`SimId`]. Draws therefore never depend on the order in which entities are
//! visited, which keeps runs reproducible even if systems are reordered or
//! parallelised, and lets a restored room continue exactly where it stopped.

use bevy_ecs::prelude::*;
use rand::SeedableRng;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

use super::SimId;

/// An entity's private random number generator.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRng(pub Pcg32);

impl EntityRng {
    /// The generator for entity `id` of a world seeded with `seed`.
    pub fn new(seed: u64, id: SimId) -> Self {
        let id = u64::from(id.0);
        Self(Pcg32::new(splitmix64(seed ^ splitmix64(id)), id))
    }
}

/// A generator for one named stream of world generation (resources, npcs, …),
/// so that changing one count does not reshuffle the others.
pub fn stream_rng(seed: u64, stream: u64) -> Pcg32 {
    Pcg32::seed_from_u64(splitmix64(seed.wrapping_add(splitmix64(stream))))
}

/// SplitMix64's finaliser: turns nearby integers into unrelated seeds.
const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

//! Flags that override a world file, shared by `kasagi sim` and `kasagi serve`.

use clap::Args;

use super::CliError;
use crate::sim::{Interest, MAX_ENTITIES_PER_KIND, SwarmDef, WorldDef};

/// The `moving` probability a swarm gets when `--entities` adds one to a world without.
const DEFAULT_MOVING: f32 = 0.25;

/// Overrides applied to the loaded world file, then validated like the file itself.
#[derive(Debug, Clone, Default, Args)]
pub struct WorldFlags {
    /// Override the world file's RNG seed.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Override the world file's NPC count.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_ENTITIES_PER_KIND)))]
    pub npcs: Option<u32>,
    /// Swarm size (adds a swarm to a world without one).
    #[arg(long, value_name = "E", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_ENTITIES_PER_KIND)))]
    pub entities: Option<u32>,
    /// Probability that a swarmer moves on a tick, 0..=1.
    #[arg(long, value_name = "P")]
    pub moving: Option<f32>,
    /// What each player sees: `off` (everything) or a view radius in world units.
    #[arg(long, value_name = "off|R")]
    pub interest: Option<Interest>,
}

impl WorldFlags {
    /// Applies the flags to `def` and validates the result.
    pub fn apply(&self, def: &mut WorldDef) -> Result<(), CliError> {
        if let Some(seed) = self.seed {
            def.seed = seed;
        }
        if let Some(npcs) = self.npcs {
            def.population.npcs = npcs;
        }
        if self.entities.is_some() || self.moving.is_some() {
            let swarm = def.swarm.get_or_insert(SwarmDef {
                entities: 0,
                moving: DEFAULT_MOVING,
            });
            if let Some(entities) = self.entities {
                swarm.entities = entities;
            }
            if let Some(moving) = self.moving {
                swarm.moving = moving;
            }
        }
        if let Some(interest) = self.interest {
            def.interest = Some(interest);
        }
        def.validate("<flags>")
            .map_err(|e| CliError::Usage(e.to_string()))
    }
}

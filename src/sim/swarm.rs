//! The swarm: Kasagi's synthetic replication benchmark, as a population of the village.
//!
//! Defined exactly so that other replication systems can run the same load:
//! each swarmer has a `Position` (uniform on the map), a `Velocity` (speed
//! uniform in [10, 50) units/s, random direction) and a [`Health`] of 100.
//! Each tick, each swarmer independently
//!
//! * moves with probability [`SwarmDef::moving`]: `pos += vel · dt`, wrapping
//!   at the map edges; on a tick it moves it turns to a new random direction
//!   (same speed) with probability 1/30;
//! * loses 1 hp with probability `0.01 · dt`; 0 wraps to 100.
//!
//! In a swarm world a joining player's avatar is a swarmer too: it drifts like
//! the others and ignores movement inputs, so that `--interest R` views are
//! centred on an entity moving like the rest.
//!
//! Every draw comes from the entity's own [`EntityRng`], so runs are
//! reproducible and recovery re-simulates them exactly.

use std::f32::consts::TAU;

use bevy_ecs::prelude::*;
use glam::Vec2;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{EntityRng, Position, SimParams, Velocity};

/// Speeds of swarmers, units per second: uniform in `[SPEED.0, SPEED.1)`.
pub const SPEED: (f32, f32) = (10.0, 50.0);
/// Chance per moving tick that a swarmer picks a new direction.
pub const TURN_CHANCE: f32 = 1.0 / 30.0;
/// Health lost per second, as a probability rate of losing 1 hp.
pub const HP_LOSS_PER_SEC: f32 = 0.01;
/// Health a swarmer starts with and wraps back to.
pub const FULL_HEALTH: u16 = 100;

/// The swarm of a world file: how many swarmers and how restless they are.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmDef {
    /// Swarmers at tick 0 (`--entities`).
    pub entities: u32,
    /// Probability that a swarmer moves on a given tick (`--moving`), in `[0, 1]`.
    pub moving: f32,
}

/// Marks an entity driven by [`drift`] rather than by AI or inputs.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swarmer;

/// A swarmer's hit points, replicated as one `u16`.
#[derive(
    Component, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, bevy_reflect::Reflect,
)]
pub struct Health(pub u16);

/// The swarm's rules for this room (absent in worlds without a swarm).
#[derive(Resource, Clone, Copy, Debug)]
pub struct SwarmRules {
    /// Per-tick probability of moving.
    pub moving: f32,
}

/// A swarmer's components at spawn: a random velocity and full health.
pub fn swarmer_bundle(rng: &mut EntityRng) -> (Swarmer, Velocity, Health) {
    (Swarmer, Velocity(random_velocity(rng)), Health(FULL_HEALTH))
}

fn random_velocity(rng: &mut EntityRng) -> Vec2 {
    let speed = rng.0.random_range(SPEED.0..SPEED.1);
    Vec2::from_angle(rng.0.random_range(0.0..TAU)) * speed
}

/// Moves, turns and wears down every swarmer for one tick.
///
/// Components are written only when they change, so change detection (and
/// replication) sees exactly the swarmers that moved, turned or lost health.
pub fn drift(
    params: Res<SimParams>,
    rules: Option<Res<SwarmRules>>,
    mut swarm: Query<(&mut Position, &mut Velocity, &mut Health, &mut EntityRng), With<Swarmer>>,
) {
    let Some(rules) = rules else {
        return;
    };
    let dt = params.dt;
    let size = params.map_size;
    let hp_loss = HP_LOSS_PER_SEC * dt;
    for (mut pos, mut vel, mut health, mut rng) in &mut swarm {
        if rng.0.random::<f32>() < rules.moving {
            let p = (pos.0 + vel.0 * dt).rem_euclid(size);
            // `rem_euclid` of a value just below zero can round up to `size`.
            let p = Vec2::new(wrap_edge(p.x, size.x), wrap_edge(p.y, size.y));
            pos.set_if_neq(Position(p));
            if rng.0.random::<f32>() < TURN_CHANCE {
                let speed = vel.0.length();
                let turned = Vec2::from_angle(rng.0.random_range(0.0..TAU)) * speed;
                vel.set_if_neq(Velocity(turned));
            }
        }
        if rng.0.random::<f32>() < hp_loss {
            let hp = if health.0 <= 1 {
                FULL_HEALTH
            } else {
                health.0 - 1
            };
            health.0 = hp;
        }
    }
}

fn wrap_edge(v: f32, side: f32) -> f32 {
    if v >= side { 0.0 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_stays_on_the_map() {
        let size = Vec2::splat(1000.0);
        let p = (Vec2::new(999.9, -0.000_01) + Vec2::new(0.5, 0.0)).rem_euclid(size);
        let p = Vec2::new(wrap_edge(p.x, size.x), wrap_edge(p.y, size.y));
        assert!(
            p.x >= 0.0 && p.x < 1000.0 && p.y >= 0.0 && p.y < 1000.0,
            "{p}"
        );
        assert!((p.x - 0.4).abs() < 1e-3);
    }

    #[test]
    fn speeds_and_health_start_in_range() {
        for id in 0..200 {
            let mut rng = EntityRng::new(7, super::super::SimId(id));
            let (_, v, h) = swarmer_bundle(&mut rng);
            let speed = v.0.length();
            assert!((SPEED.0 - 1e-3..SPEED.1 + 1e-3).contains(&speed), "{speed}");
            assert_eq!(h, Health(FULL_HEALTH));
        }
    }
}

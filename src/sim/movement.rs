//! Integrates velocities into positions and keeps everything on the map.

use bevy_ecs::prelude::*;
use glam::Vec2;

use super::{Position, SimParams, Swarmer, Velocity};

/// Moves every entity with a velocity by `velocity * dt`, bouncing off the map edges.
///
/// Entities at rest are not touched, so change detection only reports movers.
/// Swarmers move by their own rule ([`super::swarm::drift`]).
pub fn integrate_motion(
    params: Res<SimParams>,
    mut movers: Query<(&mut Position, &mut Velocity), Without<Swarmer>>,
) {
    let size = params.map_size;
    for (mut pos, mut vel) in &mut movers {
        if vel.0 == Vec2::ZERO {
            continue;
        }
        let mut p = pos.0 + vel.0 * params.dt;
        let mut v = vel.0;
        for axis in 0..2 {
            if p[axis] < 0.0 {
                p[axis] = -p[axis];
                v[axis] = v[axis].abs();
            } else if p[axis] > size[axis] {
                p[axis] = 2.0 * size[axis] - p[axis];
                v[axis] = -v[axis].abs();
            }
            // A step longer than the map could still overshoot after reflection.
            p[axis] = p[axis].clamp(0.0, size[axis]);
        }
        pos.set_if_neq(Position(p));
        vel.set_if_neq(Velocity(v));
    }
}

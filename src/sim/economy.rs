//! The food economy: resource nodes regrow towards their capacity.

use bevy_ecs::prelude::*;

use super::{ResourceNode, SimParams};

/// Regrows every depleted resource node; full nodes are left untouched.
pub fn regrow_resources(params: Res<SimParams>, mut nodes: Query<&mut ResourceNode>) {
    for mut node in &mut nodes {
        if node.amount < node.capacity {
            let grown = (node.amount + node.regrow_per_sec * params.dt).min(node.capacity);
            node.amount = grown;
        }
    }
}

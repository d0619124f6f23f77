//! Player avatars: moved by inputs, gather food and build like villagers.

use bevy_ecs::prelude::*;
use glam::Vec2;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::index::{SimIndex, StaticIndex};
use super::rng::EntityRng;
use super::villagers::deliver;
use super::{Building, Player, Position, ResourceNode, SimParams, Swarmer, Velocity};

/// One player's intent for a tick. Inputs come from the network when serving and
/// from scripted inputs in headless runs ([`ScriptedPlayers`]); the simulation treats both alike.
#[derive(Message, Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayerInput {
    /// The player's slot in the room.
    pub slot: u32,
    /// Desired direction and throttle; clamped to length 1, non-finite means stop.
    pub movement: Vec2,
    /// An optional action at the player's position.
    pub action: Option<PlayerAction>,
}

/// Something a player does where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlayerAction {
    /// Take food from a resource node within reach.
    Gather,
    /// Deliver carried food to a building within reach.
    Build,
}

/// Inserted to make players walk on their own (headless simulation runs).
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct ScriptedPlayers;

/// Stands in for real players: each player now and then changes direction and
/// tries an action, drawing from its own seeded generator.
pub fn scripted_inputs(
    params: Res<SimParams>,
    mut players: Query<(&Player, &mut EntityRng)>,
    mut inputs: MessageWriter<PlayerInput>,
) {
    // About one decision per second of simulation time.
    let p = params.dt.min(1.0);
    for (player, mut rng) in &mut players {
        if rng.0.random::<f32>() >= p {
            continue;
        }
        let movement = Vec2::from_angle(rng.0.random_range(0.0..std::f32::consts::TAU));
        let action = match rng.0.random_range(0..4u8) {
            0 => Some(PlayerAction::Gather),
            1 => Some(PlayerAction::Build),
            _ => None,
        };
        inputs.write(PlayerInput {
            slot: player.slot,
            movement,
            action,
        });
    }
}

/// Applies this tick's inputs to the player avatars.
pub fn apply_player_inputs(
    params: Res<SimParams>,
    index: Res<SimIndex>,
    statics: Res<StaticIndex>,
    mut inputs: MessageReader<PlayerInput>,
    // Swarm avatars drift like every swarmer and ignore movement.
    mut players: Query<(&Position, &mut Velocity, &mut Player), Without<Swarmer>>,
    mut nodes: Query<&mut ResourceNode, Without<Player>>,
    mut buildings: Query<&mut Building, (Without<Player>, Without<ResourceNode>)>,
) {
    let t = &params.tuning;
    for input in inputs.read() {
        let Some((pos, mut vel, mut player)) =
            players.iter_mut().find(|(_, _, p)| p.slot == input.slot)
        else {
            tracing::debug!(
                slot = input.slot,
                "input for an unknown player slot ignored"
            );
            continue;
        };
        let movement = if input.movement.is_finite() {
            input.movement.clamp_length_max(1.0)
        } else {
            Vec2::ZERO
        };
        vel.set_if_neq(Velocity(movement * t.player_speed));

        match input.action {
            Some(PlayerAction::Gather) => {
                let found = statics.resources.nearest(pos.0, t.reach, |_| true);
                if let Some((id, _)) = found
                    && let Some(mut node) = index.get(id).and_then(|e| nodes.get_mut(e).ok())
                {
                    let take = (t.haul_load - player.carried).max(0.0).min(node.amount);
                    node.amount -= take;
                    player.carried += take;
                }
            }
            Some(PlayerAction::Build) => {
                let found = statics.buildings.nearest(pos.0, t.reach, |_| true);
                if let Some((id, _)) = found
                    && let Some(mut building) =
                        index.get(id).and_then(|e| buildings.get_mut(e).ok())
                    && player.carried > 0.0
                {
                    deliver(&mut building, player.carried, t.build_per_food);
                    player.carried = 0.0;
                }
            }
            None => {}
        }
    }
}

/// Spawns a new player avatar at a seeded random spot and returns its id and slot.
/// Slots are never reused within a room, so stale inputs cannot move a newcomer.
pub fn spawn_player(world: &mut World) -> (super::SimId, u32) {
    let slot = world
        .query::<&Player>()
        .iter(world)
        .map(|p| p.slot + 1)
        .max()
        .unwrap_or(0)
        .max(world.get_resource::<NextPlayerSlot>().map_or(0, |n| n.0));
    world.insert_resource(NextPlayerSlot(slot + 1));
    let params = world.resource::<SimParams>().clone();
    let world_has_swarm = world.contains_resource::<super::swarm::SwarmRules>();
    let id = world.resource::<SimIndex>().next_id();
    let mut rng = EntityRng::new(params.seed, id);
    let at = Vec2::new(
        rng.0.random_range(0.0..params.map_size.x),
        rng.0.random_range(0.0..params.map_size.y),
    );
    let mut avatar = world.spawn((
        id,
        super::Kind::Player,
        Position(at),
        Player { slot, carried: 0.0 },
    ));
    if world_has_swarm {
        // In a swarm world the avatar is a swarmer: it drifts like the rest.
        avatar.insert(super::swarm::swarmer_bundle(&mut rng));
    } else {
        avatar.insert(Velocity::default());
    }
    let entity = avatar.insert(rng).id();
    world.resource_mut::<SimIndex>().insert(id, entity);
    (id, slot)
}

/// Despawns the player avatar `id`.
pub fn despawn_player(world: &mut World, id: super::SimId) {
    super::admin::despawn_entity(world, id);
}

/// The next player slot to hand out.
#[derive(Resource, Clone, Copy, Debug, Default)]
pub(crate) struct NextPlayerSlot(pub u32);

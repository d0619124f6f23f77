//! Everything that changes a room from outside its schedule, as data.
//!
//! The simulation is deterministic: given the state after tick `n` and the
//! inputs applied before tick `n + 1`, tick `n + 1` always ends in the same
//! state. So a room is fully described by a [`SimState`](super::SimState) plus
//! the [`SimInput`]s that followed it, which is how persistence records a room
//! and how recovery and the replay tool bring it back. Every outside change
//! therefore goes through [`apply_input`]; when an [`InputJournal`] resource
//! is present it records each input that took effect, in order.

use bevy_ecs::prelude::*;
use glam::Vec2;
use serde::{Deserialize, Serialize};

use super::{PlayerInput, SimId, admin, players};

/// One change to a room made between ticks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SimInput {
    /// A player's intent, read by the next tick.
    Player(PlayerInput),
    /// A new player avatar joins.
    SpawnPlayer,
    /// A villager is spawned by a game master.
    SpawnNpc {
        /// Where (clamped to the map).
        at: Vec2,
    },
    /// An entity is removed (a player leaving, or a game master's despawn).
    Despawn(SimId),
    /// A villager or player is moved.
    Teleport {
        /// Which entity.
        id: SimId,
        /// Where to (clamped to the map).
        to: Vec2,
    },
    /// A game master writes one numeric field.
    SetField {
        /// Which entity.
        id: SimId,
        /// A field of [`admin::SETTABLE_FIELDS`].
        field: String,
        /// The new value.
        value: f64,
    },
}

/// What an input did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The change is made.
    Done,
    /// An entity was spawned, with its player slot if it is a player.
    Spawned {
        /// The new entity.
        id: SimId,
        /// The player slot, for avatars.
        slot: Option<u32>,
    },
}

/// The inputs applied since the journal was last drained, in order.
///
/// Present only when something (persistence) wants the record; draining it
/// once per tick yields exactly the inputs that tick consumed.
#[derive(Resource, Debug, Default)]
pub struct InputJournal(Vec<SimInput>);

impl InputJournal {
    /// Takes the recorded inputs, leaving the journal empty.
    pub fn drain(&mut self) -> Vec<SimInput> {
        std::mem::take(&mut self.0)
    }
}

/// Applies `input` to `world` and journals it if it took effect.
///
/// An input that fails changes nothing, so replaying only the journaled ones
/// reproduces the room exactly.
pub fn apply_input(world: &mut World, input: SimInput) -> Result<Applied, String> {
    let applied = match &input {
        SimInput::Player(p) => {
            world.write_message(*p);
            Applied::Done
        }
        SimInput::SpawnPlayer => {
            let (id, slot) = players::spawn_player(world);
            Applied::Spawned {
                id,
                slot: Some(slot),
            }
        }
        SimInput::SpawnNpc { at } => Applied::Spawned {
            id: admin::spawn_npc(world, *at),
            slot: None,
        },
        SimInput::Despawn(id) => {
            if !admin::despawn_entity(world, *id) {
                return Err("no such entity".into());
            }
            Applied::Done
        }
        SimInput::Teleport { id, to } => {
            admin::teleport(world, *id, *to)?;
            Applied::Done
        }
        SimInput::SetField { id, field, value } => {
            admin::set_field(world, *id, field, *value)?;
            Applied::Done
        }
    };
    if let Some(mut journal) = world.get_resource_mut::<InputJournal>() {
        journal.0.push(input);
    }
    Ok(applied)
}

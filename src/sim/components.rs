//! The village's components: plain data, no behaviour.
//!
//! Every value that matters to the game lives in these components, so that a
//! world's state is fully described by them (see [`super::state_hash`]).
//! Cross-entity references are [`SimId`]s, never `Entity`, because entity
//! bits are not stable across processes while sim ids are.
//!
//! Components derive `Reflect` so that tools (and the replication plugin the
//! app wires in) can enumerate their fields without any code in the game.

use bevy_ecs::prelude::*;
use bevy_reflect::Reflect;
use glam::Vec2;
use serde::{Deserialize, Serialize};

/// A stable, dense id of a simulated entity: the same in every run of the same
/// world, across restarts and processes. Ids are handed out in spawn order.
#[derive(
    Component,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Reflect,
)]
pub struct SimId(pub u32);

/// What an entity is; the grouping used by summaries and change sets.
#[derive(
    Component,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Reflect,
)]
pub enum Kind {
    /// A villager driven by needs.
    Npc,
    /// A food source.
    Resource,
    /// A building.
    Building,
    /// A player avatar.
    Player,
    /// A member of the synthetic benchmark swarm (see `sim::swarm`).
    Swarmer,
}

impl Kind {
    /// All kinds, in summary order.
    pub const ALL: [Kind; 5] = [
        Kind::Npc,
        Kind::Resource,
        Kind::Building,
        Kind::Player,
        Kind::Swarmer,
    ];

    /// The plural name used in summaries, e.g. `npcs`.
    pub const fn plural(self) -> &'static str {
        match self {
            Kind::Npc => "npcs",
            Kind::Resource => "resources",
            Kind::Building => "buildings",
            Kind::Player => "players",
            Kind::Swarmer => "swarm",
        }
    }
}

/// Where an entity is, in world units; always inside the map.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, Reflect)]
pub struct Position(pub Vec2);

/// How an entity moves, in world units per second.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, Reflect)]
pub struct Velocity(pub Vec2);

/// A villager's needs, each kept in `0.0..=1.0`.
#[derive(Component, Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Reflect)]
pub struct Needs {
    /// 0 is sated, 1 is starving; rises over time, falls by eating.
    pub hunger: f32,
    /// 0 is exhausted, 1 is fully rested; falls while walking, rises by resting.
    pub energy: f32,
}

/// A villager's mind: what it is doing now and what it carries.
#[derive(Component, Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Reflect)]
pub struct Npc {
    /// The current activity.
    pub activity: Activity,
    /// Food carried towards a building.
    pub carried: f32,
}

/// Ticks a villager waits before searching for a target again after a failed
/// search, so that a famine does not turn into a search storm. Kept apart from
/// [`Npc`] because it ticks down every tick while `Npc` changes rarely.
#[derive(
    Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Reflect,
)]
pub struct SearchCooldown(pub u16);

/// What a villager is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Reflect)]
pub enum Activity {
    /// Walking about, turning now and then.
    Wander,
    /// Walking to a resource node to eat.
    SeekFood(SimId),
    /// Eating at a resource node.
    Eat(SimId),
    /// Carrying surplus food to a building.
    Haul(SimId),
    /// Walking to a finished building to rest.
    SeekRest(SimId),
    /// Resting inside a building.
    Rest(SimId),
}

impl Activity {
    /// How many activities there are.
    pub const COUNT: usize = 6;

    /// A stable small number per activity (0..COUNT), used in hashes and encodings.
    pub const fn tag(self) -> u8 {
        match self {
            Activity::Wander => 0,
            Activity::SeekFood(_) => 1,
            Activity::Eat(_) => 2,
            Activity::Haul(_) => 3,
            Activity::SeekRest(_) => 4,
            Activity::Rest(_) => 5,
        }
    }

    /// The entity this activity is about, if any.
    pub const fn target(self) -> Option<SimId> {
        match self {
            Activity::Wander => None,
            Activity::SeekFood(t)
            | Activity::Eat(t)
            | Activity::Haul(t)
            | Activity::SeekRest(t)
            | Activity::Rest(t) => Some(t),
        }
    }
}

/// A food source that is eaten down and regrows.
#[derive(Component, Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Reflect)]
pub struct ResourceNode {
    /// Food available now, in `0.0..=capacity`.
    pub amount: f32,
    /// The most food the node holds.
    pub capacity: f32,
    /// Food regrown per second.
    pub regrow_per_sec: f32,
}

/// A building: constructed by hauled food, then a place to rest and to store food.
#[derive(Component, Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Reflect)]
pub struct Building {
    /// Construction progress in `0.0..=1.0`; 1 is finished.
    pub progress: f32,
    /// Food stored, in `0.0..=capacity`.
    pub storage: f32,
    /// The most food the building stores.
    pub capacity: f32,
}

impl Building {
    /// Whether construction is done.
    pub fn is_finished(&self) -> bool {
        self.progress >= 1.0
    }
}

/// A player avatar, moved by [`super::PlayerInput`].
#[derive(Component, Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Reflect)]
pub struct Player {
    /// The player's slot in the room, the address of its inputs.
    pub slot: u32,
    /// Food carried towards a building.
    pub carried: f32,
}

//! Gameplay constants, overridable per world file.

use serde::{Deserialize, Serialize};

/// Gameplay constants. Rates are per second of simulation time, so a world
/// plays the same at any tick rate (up to the discretisation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tuning {
    /// Villager walking speed, units/s.
    pub npc_speed: f32,
    /// Player speed cap, units/s.
    pub player_speed: f32,
    /// How close counts as "at" a target, in units.
    pub reach: f32,
    /// Chance per second that a wandering villager turns.
    pub wander_turn_per_sec: f32,
    /// Hunger gained per second.
    pub hunger_per_sec: f32,
    /// Energy lost per second while walking.
    pub tiredness_per_sec: f32,
    /// Energy regained per second while resting.
    pub rest_per_sec: f32,
    /// Hunger above which a villager goes to eat.
    pub hungry_at: f32,
    /// Hunger below which a villager stops eating.
    pub sated_at: f32,
    /// Energy below which a villager goes to rest.
    pub tired_at: f32,
    /// Energy above which a villager stops resting.
    pub rested_at: f32,
    /// Food eaten per second while eating; one unit of food removes one unit of hunger.
    pub eat_per_sec: f32,
    /// Food a sated villager takes along to haul to a building.
    pub haul_load: f32,
    /// Construction progress per unit of hauled food.
    pub build_per_food: f32,
    /// Resource node capacity range (min, max).
    pub resource_capacity: (f32, f32),
    /// Resource regrowth range per second (min, max).
    pub resource_regrow_per_sec: (f32, f32),
    /// Building storage capacity.
    pub building_capacity: f32,
    /// Share of buildings that start finished.
    pub finished_building_share: f32,
    /// How far a villager looks for food or shelter, in units.
    pub sight: f32,
    /// Ticks a villager waits after finding no target (plus up to as many again
    /// at random, so that disappointed crowds do not retry in lockstep).
    pub search_cooldown_ticks: u16,
    /// Cell size of the static spatial index, in units.
    pub index_cell: f32,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            npc_speed: 12.0,
            player_speed: 20.0,
            reach: 2.0,
            wander_turn_per_sec: 0.5,
            hunger_per_sec: 0.01,
            tiredness_per_sec: 0.008,
            rest_per_sec: 0.1,
            hungry_at: 0.7,
            sated_at: 0.1,
            tired_at: 0.2,
            rested_at: 0.95,
            eat_per_sec: 0.2,
            haul_load: 0.5,
            build_per_food: 0.02,
            resource_capacity: (5.0, 20.0),
            resource_regrow_per_sec: (0.02, 0.1),
            building_capacity: 50.0,
            finished_building_share: 0.6,
            sight: 256.0,
            search_cooldown_ticks: 30,
            index_cell: 32.0,
        }
    }
}

impl Tuning {
    /// Checks every constant; on failure returns the field and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("tuning.npc_speed", self.npc_speed),
            ("tuning.player_speed", self.player_speed),
            ("tuning.reach", self.reach),
            ("tuning.eat_per_sec", self.eat_per_sec),
            ("tuning.building_capacity", self.building_capacity),
            ("tuning.index_cell", self.index_cell),
            ("tuning.sight", self.sight),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0 && v <= 1.0e6) {
                return Err((field, format!("= {v} must be a number in (0, 1e6]")));
            }
        }
        let non_negative = [
            ("tuning.wander_turn_per_sec", self.wander_turn_per_sec),
            ("tuning.hunger_per_sec", self.hunger_per_sec),
            ("tuning.tiredness_per_sec", self.tiredness_per_sec),
            ("tuning.rest_per_sec", self.rest_per_sec),
            ("tuning.haul_load", self.haul_load),
            ("tuning.build_per_food", self.build_per_food),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && (0.0..=1.0e6).contains(&v)) {
                return Err((field, format!("= {v} must be a number in [0, 1e6]")));
            }
        }
        let unit = [
            ("tuning.hungry_at", self.hungry_at),
            ("tuning.sated_at", self.sated_at),
            ("tuning.tired_at", self.tired_at),
            ("tuning.rested_at", self.rested_at),
            (
                "tuning.finished_building_share",
                self.finished_building_share,
            ),
        ];
        for (field, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                return Err((field, format!("= {v} must be in [0, 1]")));
            }
        }
        if self.sated_at >= self.hungry_at {
            return Err(("tuning.sated_at", "must be below tuning.hungry_at".into()));
        }
        if self.tired_at >= self.rested_at {
            return Err(("tuning.tired_at", "must be below tuning.rested_at".into()));
        }
        for (field, (lo, hi)) in [
            ("tuning.resource_capacity", self.resource_capacity),
            (
                "tuning.resource_regrow_per_sec",
                self.resource_regrow_per_sec,
            ),
        ] {
            if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= 1.0e6) {
                return Err((
                    field,
                    format!("= ({lo}, {hi}) must satisfy 0 <= min <= max <= 1e6"),
                ));
            }
        }
        Ok(())
    }
}

//! The tick pipeline: the schedule, its ordered system sets and the tick counter.

use bevy_app::App;
use bevy_ecs::message::{MessageUpdateSystems, message_update_system};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};
use serde::{Deserialize, Serialize};

/// The one schedule a room runs per tick.
#[derive(ScheduleLabel, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoomSchedule;

/// The stages of a tick, always run in this order.
///
/// Each stage may be empty; the order is fixed so that every plugin can rely on it:
/// what a client sent is visible to the simulation of the same tick, and what the
/// simulation changed is replicated, sent and persisted in that same tick.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TickSet {
    /// Decoded, validated client messages become ECS inputs for this tick.
    Receive,
    /// Game systems: movement, needs, AI, economy. Pure ECS, no networking.
    Simulate,
    /// Component changes become this tick's change sets.
    Replicate,
    /// Change sets are encoded per client and handed to the transport.
    Send,
    /// Change sets are handed to the background persistence writer.
    Persist,
}

/// The number of ticks a room has completed; tick 1 is the first simulated tick.
///
/// The driver advances it *before* running the schedule, so systems of tick `n`
/// read `n`. A freshly created room is at tick 0: its initial state.
#[derive(
    Resource, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Tick(u64);

impl Tick {
    /// A tick counter positioned at `n` (used when restoring a persisted room).
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The current tick number.
    pub const fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn advance(&mut self) {
        self.0 += 1;
    }
}

/// Sets up the room schedule on an empty app.
pub(super) fn configure(app: &mut App) {
    let mut schedule = Schedule::new(RoomSchedule);
    // A room is single-threaded on purpose: parallelism comes from running many
    // rooms at once, and a single-threaded room is deterministic by construction.
    schedule.set_executor(SingleThreadedExecutor::new());
    schedule.configure_sets(
        (
            TickSet::Receive,
            TickSet::Simulate,
            TickSet::Replicate,
            TickSet::Send,
            TickSet::Persist,
        )
            .chain(),
    );
    // Messages are double-buffered; swap the buffers once per tick, before anything
    // writes this tick's messages, so readers see every message for two ticks.
    schedule.add_systems(
        message_update_system
            .in_set(MessageUpdateSystems)
            .before(TickSet::Receive),
    );
    app.add_schedule(schedule);
    app.main_mut().update_schedule = Some(RoomSchedule.intern());
    app.init_resource::<Tick>();
}

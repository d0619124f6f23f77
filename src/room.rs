//! A room: one world simulation, run as an actor.
//!
//! Each room owns a Bevy [`App`] with its own [`World`] and a single
//! [`RoomSchedule`], and nothing else reaches into it: the outside world talks
//! to a room through messages written before a tick and reads results after it.
//! That makes rooms independent units of work that can later be ticked in
//! parallel across cores without locks.
//!
//! One call to [`Room::tick`] advances the [`Tick`] counter and runs the
//! schedule once, with the system sets of [`TickSet`] in pipeline order.
//! *When* a room ticks is the [`TickDriver`]'s business: as fast as possible
//! for headless simulation runs, at the world's rate for serving.

mod driver;
mod pipeline;

pub use driver::{Pace, TickDriver, TickStats};
pub use pipeline::{RoomSchedule, Tick, TickSet};

use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::world::World;

/// One world simulation: an [`App`] whose update runs exactly one [`RoomSchedule`] tick.
pub struct Room {
    app: App,
    ready: bool,
}

impl Room {
    /// Builds an empty room whose schedule has the tick pipeline configured.
    ///
    /// Add plugins (the game, replication, persistence) through [`Room::app_mut`]
    /// before the first tick.
    pub fn new() -> Self {
        let mut app = App::empty();
        pipeline::configure(&mut app);
        Self { app, ready: false }
    }

    /// The room's app, for adding plugins, systems and resources.
    pub fn app_mut(&mut self) -> &mut App {
        &mut self.app
    }

    /// The room's world, for reading state between ticks.
    pub fn world(&self) -> &World {
        self.app.world()
    }

    /// The room's world, for writing inputs or inspecting state between ticks.
    pub fn world_mut(&mut self) -> &mut World {
        self.app.world_mut()
    }

    /// The number of ticks completed so far.
    pub fn tick_count(&self) -> u64 {
        self.world().resource::<Tick>().get()
    }

    /// Runs one whole tick (Receive → Simulate → Replicate → Send → Persist)
    /// and returns how long it took on the wall clock.
    pub fn tick(&mut self) -> Duration {
        let start = Instant::now();
        // Plugins get their `finish`/`cleanup` calls once they report ready,
        // as under Bevy's own runners.
        if !self.ready && self.app.plugins_state() == bevy_app::PluginsState::Ready {
            self.app.finish();
            self.app.cleanup();
            self.ready = true;
        }
        self.app.world_mut().resource_mut::<Tick>().advance();
        self.app.update();
        start.elapsed()
    }
}

impl Default for Room {
    fn default() -> Self {
        Self::new()
    }
}

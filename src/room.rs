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

// SAFETY: the server's room pool hands a room from one worker thread to the
// next (never to two at once). Of an `App`, only its runner is not `Send`: a
// boxed `FnOnce` without a `Send` bound. `Room::new` sets it to `run_once`, a
// function that captures nothing, and a room never calls it. The `World` is
// `Send`; a non-send resource in it would be checked by Bevy at every access
// (a panic, not undefined behaviour), and rooms insert none.
unsafe impl Send for Room {}

/// The runner a room is built with and never calls.
fn run_once(mut app: App) -> bevy_app::AppExit {
    app.update();
    bevy_app::AppExit::Success
}

impl Room {
    /// Builds an empty room whose schedule has the tick pipeline configured.
    ///
    /// Add plugins (the game, replication, persistence) through [`Room::app_mut`]
    /// before the first tick.
    pub fn new() -> Self {
        let mut app = App::empty();
        // A room is never run by its runner (`tick` calls `update`); this one,
        // a plain function, is what makes moving the room across threads sound.
        app.set_runner(run_once);
        pipeline::configure(&mut app);
        Self { app, ready: false }
    }

    /// The room's app, for adding plugins, systems and resources. Plugins
    /// must not replace its runner or insert non-send resources: the room
    /// moves between the server's worker threads.
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

#[cfg(test)]
mod tests {
    use bevy_ecs::prelude::*;

    use super::*;

    #[derive(Resource, Default)]
    struct Trace(Vec<(u64, TickSet)>);

    fn recorder(set: TickSet) -> impl FnMut(Res<Tick>, ResMut<Trace>) {
        move |tick, mut trace| trace.0.push((tick.get(), set))
    }

    #[test]
    fn sets_run_in_pipeline_order_and_see_the_current_tick() {
        let mut room = Room::new();
        room.world_mut().init_resource::<Trace>();
        // Added in reverse to prove the order comes from the sets, not insertion.
        let sets = [
            TickSet::Persist,
            TickSet::Send,
            TickSet::Replicate,
            TickSet::Simulate,
            TickSet::Receive,
        ];
        for set in sets {
            room.app_mut()
                .add_systems(RoomSchedule, recorder(set).in_set(set));
        }
        assert_eq!(room.tick_count(), 0);
        room.tick();
        room.tick();
        assert_eq!(room.tick_count(), 2);
        let trace = &room.world().resource::<Trace>().0;
        let order = [
            TickSet::Receive,
            TickSet::Simulate,
            TickSet::Replicate,
            TickSet::Send,
            TickSet::Persist,
        ];
        let want: Vec<_> = [1, 2]
            .into_iter()
            .flat_map(|t| order.map(|s| (t, s)))
            .collect();
        assert_eq!(trace, &want);
    }

    #[test]
    fn real_time_driver_paces_ticks() {
        let mut room = Room::new();
        let mut driver = TickDriver::new(Pace::RealTime { hz: 200.0 });
        driver.run(&mut room, 10, |_, _| {});
        // Ten 5 ms slots cannot finish in less than 50 ms of wall time.
        assert!(driver.stats().elapsed >= Duration::from_millis(50));
        assert_eq!(driver.stats().ticks, 10);
        assert_eq!(room.tick_count(), 10);
    }
}

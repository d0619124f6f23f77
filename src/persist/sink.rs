//! The room side: a system in the Persist stage hands each tick to the writer.
//!
//! It never blocks: the job goes through `try_send`, and when the writer's
//! queue is full the tick is folded into a held job that goes with the next
//! tick instead (nothing is dropped; the writer counts the coalescing).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use crossbeam_channel::{Sender, TrySendError};
use kasagi_replication::ReplicationServer;

use super::PersistHandle;
use super::job::{Archive, TickJob};
use super::writer::Job;
use crate::room::{Room, RoomSchedule, Tick, TickSet};
use crate::sim::input::InputJournal;
use crate::sim::{SimState, WorldDef};

/// Adds the persistence system to a room. It does nothing until
/// [`attach`] gives the room a writer, so recovery can replay ticks first.
pub struct PersistPlugin;

impl Plugin for PersistPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            RoomSchedule,
            persist_tick
                .run_if(resource_exists::<PersistSink>)
                .in_set(TickSet::Persist),
        );
    }
}

/// A room's link to the writer.
#[derive(Resource)]
pub struct PersistSink {
    world: String,
    def: Arc<WorldDef>,
    handle: PersistHandle,
    archive_interval: u64,
    /// Set by the writer when it needs a whole state (after dropping ticks).
    wants_state: Arc<AtomicBool>,
    /// A job the full queue did not take yet; later ticks fold into it.
    held: Option<TickJob>,
}

/// How a room starts relative to what the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// At exactly the latest persisted tick: just continue.
    Continue,
    /// Anywhere else (a new room, or a recovery that stopped early): archive
    /// the starting state and begin a new lineage of ops.
    NewLineage,
}

/// Connects `room` to the writer: from now on every tick is persisted.
pub fn attach(room: &mut Room, world: &str, def: WorldDef, handle: PersistHandle, start: Start) {
    let wants_state = Arc::new(AtomicBool::new(false));
    let def = Arc::new(def);
    let _ = handle.sender.send(Job::Open {
        world: world.to_string(),
        wants_state: wants_state.clone(),
    });
    if start == Start::NewLineage {
        let tick = room.tick_count();
        let state = SimState::capture(room.world_mut(), tick);
        let archive = Archive {
            state,
            def: def.clone(),
        };
        let _ = handle
            .sender
            .send(Job::Tick(TickJob::state_only(world, archive, true)));
    }
    let archive_interval = handle.config.archive_interval.max(1);
    let world_mut = room.world_mut();
    // Every persisted tick carries its full change set.
    if let Some(mut server) = world_mut.get_resource_mut::<ReplicationServer>() {
        server.set_full_change_set(true);
    }
    world_mut.init_resource::<InputJournal>();
    world_mut.insert_resource(PersistSink {
        world: world.to_string(),
        def,
        handle,
        archive_interval,
        wants_state,
        held: None,
    });
}

/// Hands the room's current whole state to the writer, waiting for room in
/// its queue (server shutdown: no tick is waiting any more).
pub fn archive_now(room: &mut Room) {
    if let Some((job, sender)) = archive_job(room) {
        let _ = sender.send(Job::Tick(job));
    }
}

/// Hands the room's current whole state to the writer if its queue has room
/// (a room closing while others tick on the same worker); `false` when it
/// has not: the job is held, as a tick's is, and the caller tries again.
pub fn try_archive(room: &mut Room) -> bool {
    let Some((job, sender)) = archive_job(room) else {
        return true;
    };
    match sender.try_send(Job::Tick(job)) {
        Err(TrySendError::Full(Job::Tick(job))) => {
            if let Some(mut sink) = room.world_mut().get_resource_mut::<PersistSink>() {
                sink.held = Some(job);
            }
            false
        }
        // Handed over, or the writer is gone (nothing to wait for).
        _ => true,
    }
}

/// The room's whole state as a job for the writer, after any ticks held
/// back; `None` when the room does not persist.
fn archive_job(room: &mut Room) -> Option<(TickJob, Sender<Job>)> {
    let tick = room.tick_count();
    let state = SimState::capture(room.world_mut(), tick);
    let mut sink = room.world_mut().get_resource_mut::<PersistSink>()?;
    let archive = Archive {
        state,
        def: sink.def.clone(),
    };
    let job = TickJob::state_only(&sink.world, archive, false);
    let job = match sink.held.take() {
        Some(mut held) => {
            held.absorb(job);
            held
        }
        None => job,
    };
    Some((job, sink.handle.sender.clone()))
}

/// Disconnects `room` from the writer, handing over any ticks still held.
pub fn detach(room: &mut Room) {
    if let Some(mut sink) = room.world_mut().remove_resource::<PersistSink>()
        && let Some(job) = sink.held.take()
    {
        let _ = sink.handle.sender.send(Job::Tick(job));
    }
}

fn persist_tick(world: &mut World) {
    let tick = world.resource::<Tick>().get();
    let inputs = world.resource_mut::<InputJournal>().drain();
    // Shared, not copied: the tick thread pays a reference count.
    let changes = world
        .resource::<ReplicationServer>()
        .shared_full_change_set();
    let (archive_due, def) = {
        let sink = world.resource::<PersistSink>();
        let due = tick.is_multiple_of(sink.archive_interval)
            || sink.wants_state.swap(false, Ordering::Relaxed);
        (due, sink.def.clone())
    };
    let archive = archive_due.then(|| Archive {
        state: SimState::capture(world, tick),
        def,
    });
    let mut sink = world.resource_mut::<PersistSink>();
    let mut job = TickJob::tick(&sink.world, tick, inputs, changes, archive);
    if let Some(mut held) = sink.held.take() {
        held.absorb(job);
        job = held;
    }
    match sink.handle.sender.try_send(Job::Tick(job)) {
        Ok(()) => {}
        Err(TrySendError::Full(Job::Tick(job))) => sink.held = Some(job),
        Err(TrySendError::Full(_)) => {}
        Err(TrySendError::Disconnected(_)) => {
            tracing::error!(
                world = sink.world,
                tick,
                "the persistence writer is gone; tick not persisted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::{PersistConfig, PersistHandle};

    #[test]
    fn a_closing_room_never_waits_for_a_full_writer_and_loses_nothing() {
        let def = WorldDef::load("assets/worlds/village.ron").unwrap();
        let mut room = crate::serve::build_room(def.clone(), None);
        // A writer queue of one, already full with the room's `Open`.
        let (sender, queue) = crossbeam_channel::bounded(1);
        let handle = PersistHandle {
            sender,
            stats: Arc::default(),
            config: PersistConfig::default(),
        };
        attach(&mut room, "closing", def, handle, Start::Continue);
        room.tick();
        assert!(
            !try_archive(&mut room),
            "the queue is full: refused at once"
        );
        assert!(
            room.world().resource::<PersistSink>().held.is_some(),
            "the refused archive is held, not dropped"
        );
        assert!(matches!(queue.recv().unwrap(), Job::Open { .. }));
        assert!(try_archive(&mut room));
        let Job::Tick(job) = queue.recv().unwrap() else {
            panic!("expected the archive");
        };
        assert_eq!(job.state.map(|a| a.state.tick), Some(room.tick_count()));
    }
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use kasagi::persist::{self, PersistConfig, PersistService, Recovery, SnapshotStore, Start};
use kasagi::room::{Pace, Room, TickDriver};
use kasagi::serve::build_room;
use kasagi::sim::{MapDef, Population, ScriptedPlayers, Tuning, VillagePlugin, WorldDef};

/// A small village that ticks fast even in debug builds.
pub fn small_world(seed: u64) -> WorldDef {
    WorldDef {
        name: "test-village".into(),
        seed,
        tick_hz: 30,
        map: MapDef {
            width: 256.0,
            height: 256.0,
        },
        population: Population {
            npcs: 150,
            resources: 16,
            buildings: 8,
            players: 4,
        },
        tuning: Tuning::default(),
        swarm: None,
        interest: None,
    }
}

/// A room running `def` with scripted players.
pub fn village_room(def: &WorldDef) -> Room {
    let mut room = Room::new();
    room.app_mut().add_plugins(VillagePlugin::new(def.clone()));
    room.world_mut().insert_resource(ScriptedPlayers);
    room
}

/// Runs `ticks` ticks as fast as possible.
pub fn run(room: &mut Room, ticks: u64) {
    TickDriver::new(Pace::AsFastAsPossible).run(room, ticks, |_, _| {});
}

/// A served room of `def` named `village`, persisted from its first tick
/// through a writer over `store`.
pub fn persisted_village(
    def: &WorldDef,
    store: Box<dyn SnapshotStore>,
    config: PersistConfig,
) -> (PersistService, Room) {
    let service = PersistService::start(store, config);
    let mut room = build_room(def.clone(), None);
    persist::attach(
        &mut room,
        "village",
        def.clone(),
        service.handle(),
        Start::NewLineage,
    );
    (service, room)
}

/// Rebuilds the room `village` from `store`, as a restarted server would.
pub fn recover_village(store: Box<dyn SnapshotStore>) -> (Room, Recovery) {
    let service = PersistService::start(store, PersistConfig::default());
    let loaded = service
        .handle()
        .load("village")
        .unwrap()
        .expect("persisted");
    let (room, _, report) =
        persist::recover(loaded, |def, state| build_room(def, Some(state))).unwrap();
    (room, report)
}

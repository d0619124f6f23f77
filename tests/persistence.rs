//! Persistence end to end, in process: a served room persists every tick to a
//! real store, and a room rebuilt from the store is the live room, bit for bit.

mod common;

use common::{persisted_village, recover_village};

use std::time::Duration;

use glam::Vec2;
use kasagi::persist::{
    self, EmbeddedStore, PersistConfig, PersistService, Retention, SnapshotStore, Start,
};
use kasagi::room::Room;
use kasagi::serve::build_room;
use kasagi::sim::input::{SimInput, apply_input};
use kasagi::sim::{PlayerAction, PlayerInput, SimId, WorldDef, state_hash};

/// The inputs a busy room gets before `tick`: joins, movement, game-master edits.
fn inputs(tick: u64) -> Vec<SimInput> {
    let mut out = Vec::new();
    if tick == 3 || tick == 70 {
        out.push(SimInput::SpawnPlayer);
    }
    if tick > 3 {
        let angle = (tick as f32 * 0.37).sin() * 3.0;
        out.push(SimInput::Player(PlayerInput {
            slot: 4,
            movement: Vec2::from_angle(angle),
            action: tick.is_multiple_of(7).then_some(PlayerAction::Gather),
        }));
    }
    match tick {
        40 => out.push(SimInput::SpawnNpc {
            at: Vec2::new(10.0, 20.0),
        }),
        55 => out.push(SimInput::Teleport {
            id: SimId(3),
            to: Vec2::new(100.0, 100.0),
        }),
        60 => out.push(SimInput::SetField {
            id: SimId(5),
            field: "needs.hunger".into(),
            value: 0.9,
        }),
        // A villager and a resource node (a static entity) disappear.
        90 => {
            out.push(SimInput::Despawn(SimId(7)));
            out.push(SimInput::Despawn(SimId(152)));
        }
        _ => {}
    }
    out
}

/// Ticks `room` to `to`, feeding it [`inputs`]; returns the hash after each tick.
fn drive(room: &mut Room, to: u64) -> Vec<(u64, u64)> {
    drive_with(room, to, |_| {})
}

/// [`drive`], calling `after` after each tick.
fn drive_with(room: &mut Room, to: u64, mut after: impl FnMut(&mut Room)) -> Vec<(u64, u64)> {
    let mut hashes = Vec::new();
    while room.tick_count() < to {
        let next = room.tick_count() + 1;
        for input in inputs(next) {
            let _ = apply_input(room.world_mut(), input);
        }
        room.tick();
        hashes.push((next, state_hash(room.world_mut())));
        after(room);
    }
    hashes
}

fn embedded(dir: &std::path::Path) -> Box<dyn SnapshotStore> {
    Box::new(EmbeddedStore::open(dir.join("kasagi.redb"), Retention::default()).unwrap())
}

fn world() -> WorldDef {
    let mut def = common::small_world(11);
    def.name = "village".into();
    def
}

#[test]
fn a_recovered_room_is_the_live_room_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let def = world();
    let config = PersistConfig {
        archive_interval: 50,
        ..PersistConfig::default()
    };
    let (service, mut live) = persisted_village(&def, embedded(dir.path()), config);
    // Waiting for the writer after every tick makes every tick its own write,
    // as in a room that ticks slower than its store writes.
    let handle = service.handle();
    assert!(handle.flush(Duration::from_secs(30)));
    let hashes = drive_with(&mut live, 137, |_| {
        assert!(handle.flush(Duration::from_secs(30)));
    });
    let stats = service.stats().snapshot();
    assert_eq!(stats.persisted_ticks, 137, "{stats:?}");
    // The starting whole state, then one write per tick.
    assert_eq!((stats.writes, stats.coalesced_ticks), (138, 0), "{stats:?}");
    assert_eq!(stats.last_tick, 137);
    // Whole states at ticks 0 (the start), 50 and 100.
    assert_eq!(stats.full_states, 3, "{stats:?}");
    drop(service);

    let (mut recovered, report) = recover_village(embedded(dir.path()));
    assert!(report.is_exact(), "{report:?}");
    assert_eq!(report.full_state_tick, 100);
    assert_eq!(report.tick, 137);
    assert_eq!(report.replayed_ticks, 37);
    assert_eq!(
        report.verified_ticks, 36,
        "every tick but the first is checked"
    );
    assert_eq!(report.state_hash, hashes.last().unwrap().1);

    // Generators and counters came back too: both rooms go on identically.
    persist::detach(&mut live);
    let a = drive(&mut live, 200);
    let b = drive(&mut recovered, 200);
    assert_eq!(a, b);
}

#[test]
fn ticks_faster_than_the_store_coalesce_and_still_recover_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let def = world();
    let config = PersistConfig {
        archive_interval: 40,
        // A tiny queue: the room folds ticks into held jobs as well.
        queue_capacity: 1,
        ..PersistConfig::default()
    };
    let (service, mut live) = persisted_village(&def, embedded(dir.path()), config);
    let hashes = drive(&mut live, 300);
    persist::detach(&mut live);
    assert!(service.handle().flush(Duration::from_secs(30)));
    let stats = service.stats().snapshot();
    assert_eq!(stats.persisted_ticks, 300, "{stats:?}");
    assert!(stats.coalesced_ticks > 0, "{stats:?}");
    assert!(stats.writes < 300, "{stats:?}");
    drop(service);

    let (_, report) = recover_village(embedded(dir.path()));
    assert!(report.is_exact(), "{report:?}");
    assert_eq!(report.tick, 300);
    assert_eq!(report.state_hash, hashes.last().unwrap().1);
}

#[test]
fn a_room_without_a_store_entry_starts_fresh_and_continues_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let def = world();
    let config = PersistConfig {
        archive_interval: 1_000,
        ..PersistConfig::default()
    };
    // First life: 30 ticks, only the tick-0 whole state archived.
    {
        let (service, mut room) = persisted_village(&def, embedded(dir.path()), config.clone());
        drive(&mut room, 30);
        persist::archive_now(&mut room);
        assert!(service.handle().flush(Duration::from_secs(30)));
    }
    // Second life resumes at 30 (from the shutdown's whole state) and runs to 60.
    let expected = {
        let service = PersistService::start(embedded(dir.path()), config.clone());
        let loaded = service.handle().load("village").unwrap().unwrap();
        assert_eq!(loaded.full_state.tick, 30);
        let (mut room, def, report) =
            persist::recover(loaded, |def, state| build_room(def, Some(state))).unwrap();
        assert!(report.is_exact(), "{report:?}");
        persist::attach(&mut room, "village", def, service.handle(), Start::Continue);
        let hashes = drive(&mut room, 60);
        assert!(service.handle().flush(Duration::from_secs(30)));
        hashes.last().unwrap().1
    };
    let (_, report) = recover_village(embedded(dir.path()));
    assert_eq!((report.tick, report.full_state_tick), (60, 30));
    assert_eq!(report.state_hash, expected);
    assert!(report.is_exact(), "{report:?}");
}

#[test]
fn a_stored_state_that_does_not_match_its_hash_is_refused() {
    use kasagi::persist::records::{self, StateRecord};
    let dir = tempfile::tempdir().unwrap();
    let def = world();
    {
        let (service, mut room) =
            persisted_village(&def, embedded(dir.path()), PersistConfig::default());
        drive(&mut room, 5);
        assert!(service.handle().flush(Duration::from_secs(30)));
    }
    let service = PersistService::start(embedded(dir.path()), PersistConfig::default());
    let mut loaded = service.handle().load("village").unwrap().unwrap();
    let mut record: StateRecord = records::decode(&loaded.full_state.data).unwrap();
    record.state.entities[0].position = None;
    loaded.full_state.data = records::encode(&record);
    let Err(err) = persist::recover(loaded, |def, state| build_room(def, Some(state))) else {
        panic!("a corrupt state was accepted");
    };
    assert!(err.to_string().contains("corrupt"), "{err}");
}

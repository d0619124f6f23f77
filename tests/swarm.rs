//! The swarm benchmark world follows its published definition, deterministically.

mod common;

use bevy_ecs::prelude::*;
use common::run;
use glam::Vec2;
use kasagi::room::Room;
use kasagi::sim::input::{Applied, SimInput, apply_input};
use kasagi::sim::swarm::{FULL_HEALTH, SPEED};
use kasagi::sim::{
    EntityRng, Health, Kind, PlayerInput, Position, SimState, Swarmer, Velocity, VillagePlugin,
    WorldDef, state_hash,
};

fn swarm(entities: u32, moving: f32) -> WorldDef {
    let mut def = WorldDef::load("assets/worlds/swarm.ron").expect("the shipped swarm world loads");
    let swarm = def.swarm.as_mut().expect("swarm.ron has a swarm");
    swarm.entities = entities;
    swarm.moving = moving;
    def
}

fn room(def: &WorldDef) -> Room {
    let mut room = Room::new();
    room.app_mut().add_plugins(VillagePlugin::new(def.clone()));
    room
}

type Snapshot = Vec<(Vec2, Vec2, u16)>;

fn snapshot(room: &mut Room) -> Snapshot {
    let world = room.world_mut();
    let mut q = world.query_filtered::<(&Position, &Velocity, &Health), With<Swarmer>>();
    q.iter(world).map(|(p, v, h)| (p.0, v.0, h.0)).collect()
}

#[test]
fn swarmers_keep_to_the_definition() {
    let def = swarm(5_000, 0.1);
    let mut room = room(&def);
    let mut before = snapshot(&mut room);
    assert_eq!(before.len(), 5_000);
    let (mut moved, mut turned, mut hurt) = (0u64, 0u64, 0u64);
    let ticks = 300;
    for _ in 0..ticks {
        run(&mut room, 1);
        let after = snapshot(&mut room);
        for ((p0, v0, h0), (p1, v1, h1)) in before.iter().zip(&after) {
            assert!(
                (0.0..1000.0).contains(&p1.x) && (0.0..1000.0).contains(&p1.y),
                "{p1}"
            );
            let speed = v1.length();
            assert!((SPEED.0 - 0.01..SPEED.1 + 0.01).contains(&speed), "{speed}");
            assert!((v0.length() - speed).abs() < 1e-3, "a turn keeps the speed");
            assert!((1..=FULL_HEALTH).contains(h1));
            if p0 != p1 {
                moved += 1;
                // pos += vel / hz, wrapping at the edges.
                let step = (*p1 - *p0 - *v0 / 30.0).abs();
                let wrapped =
                    step.x.min((step.x - 1000.0).abs()) + step.y.min((step.y - 1000.0).abs());
                assert!(wrapped < 1e-2, "{p0} + {v0}/30 -> {p1}");
            } else {
                assert_eq!(v0, v1, "only a moving swarmer turns");
            }
            if v0 != v1 {
                turned += 1;
            }
            if h0 != h1 {
                hurt += 1;
                assert!(*h1 == h0 - 1 || (*h0 == 1 && *h1 == FULL_HEALTH));
            }
        }
        before = after;
    }
    let draws = 5_000.0 * f64::from(ticks);
    let share = moved as f64 / draws;
    assert!((0.09..0.11).contains(&share), "moving share {share}");
    let turn_share = turned as f64 / moved as f64;
    assert!(
        (0.025..0.042).contains(&turn_share),
        "turns per move {turn_share}"
    );
    // 0.01 hp per second: 5000 swarmers for 10 s lose about 500 hp.
    assert!((350..650).contains(&hurt), "hp losses {hurt}");
}

#[test]
fn the_swarm_is_deterministic_and_resumes_exactly() {
    let def = swarm(2_000, 0.25);
    let mut a = room(&def);
    let mut b = room(&def);
    run(&mut a, 90);
    run(&mut b, 90);
    assert_eq!(state_hash(a.world_mut()), state_hash(b.world_mut()));

    // A captured state, restored, continues exactly like the original.
    let tick = a.tick_count();
    let state = SimState::capture(a.world_mut(), tick);
    assert!(
        state
            .entities
            .iter()
            .all(|e| e.swarmer && e.health.is_some())
    );
    let mut resumed = Room::new();
    resumed
        .app_mut()
        .add_plugins(VillagePlugin::restored(def.clone(), state));
    run(&mut a, 60);
    run(&mut resumed, 60);
    assert_eq!(state_hash(a.world_mut()), state_hash(resumed.world_mut()));

    let mut other = def.clone();
    other.seed += 1;
    let mut c = room(&other);
    run(&mut c, 90);
    run(&mut b, 60);
    assert_ne!(state_hash(b.world_mut()), state_hash(c.world_mut()));
}

#[test]
fn avatars_in_a_swarm_drift_and_ignore_movement_inputs() {
    let def = swarm(100, 1.0);
    let mut room = room(&def);
    let Ok(Applied::Spawned {
        id,
        slot: Some(slot),
    }) = apply_input(room.world_mut(), SimInput::SpawnPlayer)
    else {
        panic!("a player spawns");
    };
    let avatar = room
        .world_mut()
        .query::<(Entity, &kasagi::sim::SimId)>()
        .iter(room.world())
        .find(|(_, s)| **s == id)
        .map(|(e, _)| e)
        .unwrap();
    let world = room.world();
    assert_eq!(world.get::<Kind>(avatar), Some(&Kind::Player));
    assert!(world.get::<Swarmer>(avatar).is_some());
    assert!(world.get::<EntityRng>(avatar).is_some());
    assert_eq!(world.get::<Health>(avatar), Some(&Health(FULL_HEALTH)));
    let velocity = world.get::<Velocity>(avatar).unwrap().0;
    assert!(velocity.length() >= SPEED.0);
    let start = world.get::<Position>(avatar).unwrap().0;
    apply_input(
        room.world_mut(),
        SimInput::Player(PlayerInput {
            slot,
            movement: Vec2::new(0.0, 0.0),
            action: None,
        }),
    )
    .unwrap();
    run(&mut room, 1);
    let world = room.world();
    // Moving with probability 1: one step along its own velocity; the input's stop is ignored.
    let moved = world.get::<Position>(avatar).unwrap().0;
    let expected = (start + velocity / 30.0).rem_euclid(Vec2::splat(1000.0));
    assert!(
        (moved - expected).length() < 1e-3,
        "{start} -> {moved}, expected {expected}"
    );
    assert!(world.get::<Velocity>(avatar).unwrap().0.length() >= SPEED.0);
}

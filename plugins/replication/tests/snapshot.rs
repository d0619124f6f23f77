//! Snapshots and change sets agree: replaying the server's full change sets onto a
//! snapshot reproduces the server's state, and composed change sets replay the same.

mod common;

use bevy_ecs::prelude::*;
use common::*;
use glam::Vec2;
use kasagi_replication::prelude::*;
use kasagi_replication::{FullChangeSet, WorldSnapshot};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Spawn(f32, u16),
    Despawn(usize),
    Move(usize, f32),
    SetHealth(usize, u16),
    RemoveHealth(usize),
    Respawn(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0f32..100.0, any::<u16>()).prop_map(|(x, h)| Op::Spawn(x, h)),
        1 => any::<usize>().prop_map(Op::Despawn),
        4 => (any::<usize>(), -5f32..5.0).prop_map(|(i, d)| Op::Move(i, d)),
        2 => (any::<usize>(), any::<u16>()).prop_map(|(i, h)| Op::SetHealth(i, h)),
        1 => any::<usize>().prop_map(Op::RemoveHealth),
        1 => any::<usize>().prop_map(Op::Respawn),
    ]
}

fn apply(world: &mut World, kind: KindId, op: &Op) {
    let pick = picker(world);
    match *op {
        Op::Spawn(x, h) => {
            world.spawn((Replicated { kind }, Pos(Vec2::new(x, 0.0)), Health(h)));
        }
        Op::Despawn(i) => {
            if let Some(e) = pick(i) {
                world.despawn(e);
            }
        }
        Op::Move(i, d) => {
            if let Some(e) = pick(i)
                && let Some(mut p) = world.get_mut::<Pos>(e)
            {
                p.0.x += d;
            }
        }
        Op::SetHealth(i, h) => {
            if let Some(e) = pick(i) {
                world.entity_mut(e).insert(Health(h));
            }
        }
        Op::RemoveHealth(i) => {
            if let Some(e) = pick(i) {
                world.entity_mut(e).remove::<Health>();
            }
        }
        Op::Respawn(i) => {
            // Despawn and spawn again under the same id within one tick.
            // (Entities spawned this tick have no id yet.)
            if let Some(e) = pick(i)
                && let Some(&id) = world.get::<NetId>(e)
            {
                world.despawn(e);
                world.spawn((Replicated { kind }, id, Pos(Vec2::ZERO), Health(1)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn replaying_and_composing_change_sets_reproduce_the_server_state(
        ticks in prop::collection::vec(prop::collection::vec(op(), 0..8), 1..40),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut app, kind) = server_app(ReplicationConfig::default());
        let mut sets: Vec<FullChangeSet> = Vec::new();
        let mut states: Vec<WorldSnapshot> = vec![WorldSnapshot::default()];
        for ops in &ticks {
            for op in ops {
                apply(app.world_mut(), kind, op);
            }
            app.update();
            let server = app.world().resource::<ReplicationServer>();
            sets.push(server.full_change_set().clone());
            states.push(server.snapshot(app.world().resource::<ReplicationRegistry>()));
        }
        // Replay, tick by tick.
        let mut replayed = WorldSnapshot::default();
        for (set, want) in sets.iter().zip(&states[1..]) {
            replayed.apply(set).unwrap();
            prop_assert_eq!(&replayed, want);
        }
        // Compose everything from a cut onwards into one change set.
        let k = cut.index(sets.len());
        let mut composed = sets[k].clone();
        for set in &sets[k + 1..] {
            composed.compose(set.clone());
        }
        let mut from_cut = states[k].clone();
        from_cut.apply(&composed).unwrap();
        prop_assert_eq!(&from_cut, states.last().unwrap());
        // Stale change sets are refused.
        prop_assert!(from_cut.apply(&sets[0]).is_err());
    }
}

#[test]
fn composed_field_updates_keep_the_first_old_and_the_last_new_value() {
    let (mut app, kind) = server_app(ReplicationConfig::default());
    let e = app
        .world_mut()
        .spawn((Replicated { kind }, Pos(Vec2::ZERO), Health(1)))
        .id();
    app.update();
    let mut sets = Vec::new();
    for x in [1.0, 2.0, 3.0] {
        app.world_mut().get_mut::<Pos>(e).unwrap().0.x = x;
        app.update();
        sets.push(
            app.world()
                .resource::<ReplicationServer>()
                .full_change_set()
                .clone(),
        );
    }
    let mut composed = sets[0].clone();
    composed.compose(sets[1].clone());
    composed.compose(sets[2].clone());
    let changes = &composed.kinds["units"];
    assert_eq!(changes.updated.len(), 1);
    let change = &changes.updated[0];
    assert_eq!(&*change.field, "pos.x");
    assert_eq!(
        (&change.old, &change.new),
        (
            &kasagi_replication::fields::FieldValue::F32(0.0),
            &kasagi_replication::fields::FieldValue::F32(3.0)
        )
    );
    assert_eq!(composed.tick, sets[2].tick);
}

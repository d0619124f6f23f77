//! Interest management against its definition: after every tick, a radius view
//! holds every entity within `radius` of its center and nothing beyond
//! `radius + hysteresis`, however entities and centers move: a step at a time
//! (updated incrementally), a jump (recomputed), or not at all.

mod common;

use bevy_app::App;
use bevy_ecs::prelude::*;
use common::*;
use glam::Vec2;
use kasagi_replication::prelude::*;
use proptest::prelude::*;

const RADIUS: f32 = 60.0;
const HYSTERESIS: f32 = 8.0;
const MAP: f32 = 400.0;

/// One tick's motion: for each entity, `None` (stays), a small step, or a jump.
#[derive(Clone, Debug)]
enum Motion {
    Stay,
    Step(f32, f32),
    Jump(f32, f32),
}

fn motion() -> impl Strategy<Value = Motion> {
    prop_oneof![
        3 => Just(Motion::Stay),
        4 => (-3.0f32..3.0, -3.0f32..3.0).prop_map(|(x, y)| Motion::Step(x, y)),
        1 => (0.0f32..MAP, 0.0f32..MAP).prop_map(|(x, y)| Motion::Jump(x, y)),
    ]
}

/// Checks every client's visible set against the positions in the world.
fn check(app: &mut App, centers: &[(ClientId, Entity)]) -> Result<(), TestCaseError> {
    let positions: Vec<(NetId, Vec2)> = app
        .world_mut()
        .query::<(&NetId, &Pos)>()
        .iter(app.world())
        .map(|(id, p)| (*id, p.0))
        .collect();
    let world = app.world();
    let server = world.resource::<ReplicationServer>();
    let registry = world.resource::<ReplicationRegistry>();
    for &(client, center) in centers {
        let c = world.get::<Pos>(center).unwrap().0;
        let visible = server.visible_state(client, registry);
        for (id, p) in &positions {
            // Positions travel quantized; keep clear of the exact edges.
            let d = p.distance(c);
            if d < RADIUS - 0.2 {
                prop_assert!(visible.contains_key(id), "{id:?} at {d} must be seen");
            }
            if d > RADIUS + HYSTERESIS + 0.2 {
                prop_assert!(!visible.contains_key(id), "{id:?} at {d} must not be seen");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn radius_views_hold_exactly_what_is_near(
        start in prop::collection::vec((0.0f32..MAP, 0.0f32..MAP), 20..60),
        ticks in prop::collection::vec(prop::collection::vec(motion(), 60), 1..25),
    ) {
        let config = ReplicationConfig {
            hysteresis: HYSTERESIS,
            ..ReplicationConfig::default()
        };
        let (mut app, units) = server_app(config);
        let entities: Vec<Entity> = start
            .iter()
            .map(|&(x, y)| {
                app.world_mut()
                    .spawn((Replicated { kind: units }, Pos(Vec2::new(x, y)), Health(1)))
                    .id()
            })
            .collect();
        app.update();
        // Three clients centred on the first three entities, which move like the rest.
        let centers: Vec<(ClientId, Entity)> =
            (0..3).map(|i| (ClientId(i as u64 + 1), entities[i])).collect();
        for &(client, center) in &centers {
            let id = *app.world().get::<NetId>(center).unwrap();
            app.world_mut().resource_mut::<ReplicationServer>().connect(
                client,
                View::Radius { center: Some(id), radius: RADIUS },
            );
        }
        app.update();
        check(&mut app, &centers)?;
        for motions in ticks {
            for (e, m) in entities.iter().zip(motions) {
                let mut pos = app.world_mut().get_mut::<Pos>(*e).unwrap();
                match m {
                    Motion::Stay => {}
                    Motion::Step(x, y) => pos.0 += Vec2::new(x, y),
                    Motion::Jump(x, y) => pos.0 = Vec2::new(x, y),
                }
            }
            app.update();
            check(&mut app, &centers)?;
        }
    }
}

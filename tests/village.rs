//! The village behaves like a village and never leaves its invariants.

mod common;

use common::{run, small_world, village_room};
use kasagi::room::Room;
use kasagi::sim::{Activity, Building, Kind, Needs, Npc, Player, Position, ResourceNode, WorldDef};
use proptest::prelude::*;

/// Checks every simulation invariant; returns a description of the first violation.
fn check_invariants(room: &mut Room, def: &WorldDef) -> Result<(), String> {
    let tick = room.tick_count();
    let world = room.world_mut();
    let (w, h) = (def.map.width, def.map.height);
    let t = &def.tuning;

    let counts = kasagi::sim::count_by_kind(world);
    let want = [
        def.population.npcs,
        def.population.resources,
        def.population.buildings,
        def.population.players,
    ];
    for ((kind, n), want) in counts.iter().zip(want) {
        if *n != u64::from(want) {
            return Err(format!(
                "tick {tick}: {n} {kind:?} entities, configured {want}"
            ));
        }
    }
    for (kind, pos) in world.query::<(&Kind, &Position)>().iter(world) {
        let p = pos.0;
        if !(p.is_finite() && (0.0..=w).contains(&p.x) && (0.0..=h).contains(&p.y)) {
            return Err(format!("tick {tick}: {kind:?} off the map at {p}"));
        }
    }
    for (needs, npc) in world.query::<(&Needs, &Npc)>().iter(world) {
        if !(0.0..=1.0).contains(&needs.hunger) || !(0.0..=1.0).contains(&needs.energy) {
            return Err(format!("tick {tick}: needs out of range: {needs:?}"));
        }
        if !(0.0..=t.haul_load).contains(&npc.carried) {
            return Err(format!("tick {tick}: npc carries {}", npc.carried));
        }
    }
    for node in world.query::<&ResourceNode>().iter(world) {
        if !(node.amount >= 0.0 && node.amount <= node.capacity) {
            return Err(format!("tick {tick}: resource node out of range: {node:?}"));
        }
    }
    for b in world.query::<&Building>().iter(world) {
        if !((0.0..=1.0).contains(&b.progress) && (0.0..=b.capacity).contains(&b.storage)) {
            return Err(format!("tick {tick}: building out of range: {b:?}"));
        }
    }
    for p in world.query::<&Player>().iter(world) {
        if !(0.0..=t.haul_load).contains(&p.carried) {
            return Err(format!("tick {tick}: player carries {}", p.carried));
        }
    }
    Ok(())
}

#[test]
fn invariants_hold_over_a_long_run() {
    // Ten minutes of simulation time at 30 Hz.
    let def = small_world(1);
    let mut room = village_room(&def);
    check_invariants(&mut room, &def).unwrap();
    for _ in 0..180 {
        run(&mut room, 100);
        check_invariants(&mut room, &def).unwrap();
    }
}

#[test]
fn villagers_eat_haul_build_and_rest() {
    let def = small_world(2);
    let mut room = village_room(&def);
    let world = room.world_mut();
    let progress_sum = |world: &mut bevy_ecs::world::World| -> f32 {
        world
            .query::<&Building>()
            .iter(world)
            .map(|b| b.progress + b.storage)
            .sum()
    };
    let built_before = progress_sum(world);

    let mut seen = [false; Activity::COUNT];
    for _ in 0..120 {
        run(&mut room, 50);
        let world = room.world_mut();
        for npc in world.query::<&Npc>().iter(world) {
            seen[usize::from(npc.activity.tag())] = true;
        }
    }
    assert_eq!(
        seen,
        [true; Activity::COUNT],
        "every activity occurs in a 200 s run"
    );
    let world = room.world_mut();
    assert!(
        progress_sum(world) > built_before,
        "hauled food builds and fills buildings"
    );
    let eaten = world
        .query::<&ResourceNode>()
        .iter(world)
        .any(|n| n.amount < n.capacity);
    assert!(eaten, "some resource node was eaten from");
}

#[test]
fn scripted_players_move() {
    let def = small_world(4);
    let mut room = village_room(&def);
    let start: Vec<_> = {
        let world = room.world_mut();
        let mut q = world.query::<(&Player, &Position)>();
        q.iter(world).map(|(p, pos)| (p.slot, pos.0)).collect()
    };
    run(&mut room, 300);
    let world = room.world_mut();
    let mut q = world.query::<(&Player, &Position)>();
    let moved = q
        .iter(world)
        .filter(|(p, pos)| {
            start
                .iter()
                .any(|(slot, at)| *slot == p.slot && *at != pos.0)
        })
        .count();
    assert_eq!(moved, def.population.players as usize);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any seed, any (small) population and tick rate: the invariants hold.
    #[test]
    fn invariants_hold_for_random_worlds(
        seed in any::<u64>(),
        npcs in 0u32..300,
        resources in 0u32..30,
        buildings in 0u32..12,
        players in 0u32..6,
        tick_hz in prop::sample::select(vec![10u32, 30, 60]),
    ) {
        let mut def = small_world(seed);
        def.tick_hz = tick_hz;
        def.population.npcs = npcs;
        def.population.resources = resources;
        def.population.buildings = buildings;
        def.population.players = players;
        let mut room = village_room(&def);
        for _ in 0..6 {
            run(&mut room, 150);
            if let Err(violation) = check_invariants(&mut room, &def) {
                return Err(TestCaseError::fail(violation));
            }
        }
    }
}

//! `sim_tick`: one whole village tick at 1k, 10k and 100k NPCs.
//!
//! Worlds keep the density of `assets/worlds/village-10k.ron` (about 580 units²
//! of map, 0.07 resource nodes and 0.0175 buildings per villager), so the
//! villagers' work per tick is comparable across sizes. Each room is warmed up
//! for 20 simulated seconds first so that needs-driven behaviour is in full swing.
//!
//! Run: `cargo bench --bench sim_tick`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kasagi::room::{Pace, Room, TickDriver};
use kasagi::sim::{MapDef, Population, ScriptedPlayers, Tuning, VillagePlugin, WorldDef};

fn village(npcs: u32) -> WorldDef {
    let side = (npcs as f32 * 580.0).sqrt().max(64.0);
    WorldDef {
        name: format!("village-{npcs}"),
        seed: 42,
        tick_hz: 30,
        map: MapDef {
            width: side,
            height: side,
        },
        population: Population {
            npcs,
            resources: npcs * 7 / 100,
            buildings: npcs * 175 / 10_000,
            players: 50,
        },
        tuning: Tuning::default(),
        swarm: None,
        interest: None,
    }
}

fn sim_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim_tick");
    group.sample_size(20);
    for npcs in [1_000u32, 10_000, 100_000] {
        let def = village(npcs);
        let mut room = Room::new();
        room.app_mut().add_plugins(VillagePlugin::new(def.clone()));
        room.world_mut().insert_resource(ScriptedPlayers);
        TickDriver::new(Pace::AsFastAsPossible).run(&mut room, 600, |_, _| {});

        group.throughput(Throughput::Elements(def.population.total()));
        group.bench_with_input(BenchmarkId::from_parameter(npcs), &npcs, |b, _| {
            b.iter(|| black_box(room.tick()));
        });
    }
    group.finish();
}

criterion_group!(benches, sim_tick);
criterion_main!(benches);

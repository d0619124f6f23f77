//! `serve_tick`: one whole serving tick of a village room, the room side of S4.
//!
//! Builds the room exactly as `kasagi serve` does (`serve::build_room`),
//! connects 50 replication clients with radius-128 views (the server's default)
//! centred on villagers, which walk every tick as players do, and measures
//! one tick (receive, simulate, replicate, send, record) plus taking every
//! client's packets and acknowledging them. This is the room thread's share
//! of S4's input-to-observer path, without the network thread, the bots and
//! the machine's noise around them, so that a change to it can be measured
//! to a few per cent. `village_50_clients` builds the full change set, as a
//! room with a store does; `village_50_clients_storeless` does not, as
//! `kasagi serve --store none` (the load scenarios) runs its rooms.
//!
//! Run: `cargo bench --bench serve_tick`
//!
//! Counted: `SERVE_TICK_COUNT=N` runs exactly `N` measured ticks of the
//! storeless room instead of criterion (`SERVE_TICK_FULL=1`: of the room with
//! the full change set), for callgrind. A fixed count matters: the village's
//! cost per tick drifts as it runs, so runs of different lengths (as
//! criterion's timed ones are under valgrind) are not comparable.
//! `SERVE_TICK_FLOOR=N` sets the send floor (load shedding, 1 to 3) before
//! every counted tick, as a room that starts its ticks late does.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use kasagi::room::Room;
use kasagi::serve::build_room;
use kasagi::sim::WorldDef;
use kasagi_replication::{ClientId, NetId, ReplicationServer, View};

/// S4's client count.
const CLIENTS: u64 = 50;

/// The village's first villager id: resources (160) and buildings (50) come first.
const FIRST_VILLAGER: u64 = 210;

fn connect(room: &mut Room) {
    let mut server = room.world_mut().resource_mut::<ReplicationServer>();
    for i in 0..CLIENTS {
        let view = View::Radius {
            center: Some(NetId(FIRST_VILLAGER + i)),
            radius: 128.0,
        };
        server.connect(ClientId(i), view);
    }
}

/// One tick plus every client's packets taken and acknowledged.
fn tick(room: &mut Room) -> usize {
    room.tick();
    let mut server = room.world_mut().resource_mut::<ReplicationServer>();
    let now = server.tick();
    let mut packets = 0;
    for i in 0..CLIENTS {
        let taken = server.take_packets(ClientId(i));
        packets += taken.len();
        if !taken.is_empty() {
            let _ = server.receive_ack(ClientId(i), now);
        }
    }
    packets
}

/// [`tick`] under a symbol of its own, so that a deterministic count of the
/// measured ticks only (warm-up excluded) can be taken with
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_tick*'`
/// (see BENCHMARKS.md, "Counting instead of timing").
#[inline(never)]
fn measured_tick(room: &mut Room) -> usize {
    tick(room)
}

/// A village room with 50 clients, warmed up: full states first, then
/// steady deltas with buffers at their working size. `full_change_set`:
/// as with a store (on), or as `kasagi serve --store none` runs it (off).
fn warm_room(full_change_set: bool) -> Room {
    let village = WorldDef::load("assets/worlds/village.ron").expect("village.ron loads");
    let mut room = build_room(village, None);
    room.world_mut()
        .resource_mut::<ReplicationServer>()
        .set_full_change_set(full_change_set);
    connect(&mut room);
    for _ in 0..90 {
        tick(&mut room);
    }
    room
}

fn serve_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("serve_tick");
    group.sample_size(30);
    let mut room = warm_room(true);
    group.bench_function("village_50_clients", |b| {
        b.iter(|| black_box(measured_tick(&mut room)))
    });
    let mut room = warm_room(false);
    group.bench_function("village_50_clients_storeless", |b| {
        b.iter(|| black_box(measured_tick(&mut room)))
    });
    group.finish();
}

/// `SERVE_TICK_COUNT` ticks, measured, and nothing else (see the module docs).
fn count_ticks(ticks: u64) {
    let full = std::env::var_os("SERVE_TICK_FULL").is_some_and(|v| v == "1");
    let floor = std::env::var("SERVE_TICK_FLOOR")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut room = warm_room(full);
    let mut packets = 0;
    for _ in 0..ticks {
        room.world_mut()
            .resource_mut::<ReplicationServer>()
            .set_min_send_interval(floor);
        packets += measured_tick(&mut room);
    }
    eprintln!("{ticks} ticks, {packets} packets");
}

criterion_group!(benches, serve_tick);

fn main() {
    if let Some(ticks) = std::env::var("SERVE_TICK_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        count_ticks(ticks);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Allocations per tick on the server's hot path, so that regressions show.
//!
//! Builds rooms exactly as `kasagi serve` does (`serve::build_room`) and
//! connects replication clients that acknowledge every tick, then counts heap
//! allocations (and bytes) per tick with a counting global allocator: the
//! whole tick (receive, simulate, replicate, send) plus taking the clients'
//! packets and their acks. Three rooms:
//!
//! * `swarm-S1`: the S1 swarm (1,000 entities, a quarter moving), 16 clients
//!   seeing the whole room;
//! * `swarm-idle`: the same with nothing moving (`moving` 0);
//! * `village`: `assets/worlds/village.ron`, 16 clients with radius-128 views.
//!
//! Run: `cargo bench --bench alloc` (prints one line per room; no timing).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use kasagi::room::Room;
use kasagi::serve::build_room;
use kasagi::sim::{Interest, WorldDef};
use kasagi_replication::{ClientId, NetId, ReplicationServer, View};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn swarm(moving: f32) -> WorldDef {
    let mut def = WorldDef::load("assets/worlds/swarm.ron").expect("swarm.ron loads");
    if let Some(s) = def.swarm.as_mut() {
        s.moving = moving;
    }
    def.interest = Some(Interest::Off);
    def
}

/// The village's first villager id: resources (160) and buildings (50) come first.
const FIRST_VILLAGER: u64 = 210;

/// Connects `clients` replication clients: whole-room views, or radius views
/// centred on villagers (which move every tick, like walking players).
fn connect(room: &mut Room, clients: u64, radius: Option<f32>) {
    let mut server = room.world_mut().resource_mut::<ReplicationServer>();
    for i in 0..clients {
        let view = match radius {
            None => View::Room,
            Some(radius) => View::Radius {
                center: Some(NetId(FIRST_VILLAGER + i)),
                radius,
            },
        };
        server.connect(ClientId(i), view);
    }
}

/// One tick plus every client's packets taken and acknowledged.
fn tick(room: &mut Room, clients: u64) {
    room.tick();
    let mut server = room.world_mut().resource_mut::<ReplicationServer>();
    let now = server.tick();
    for i in 0..clients {
        let packets = server.take_packets(ClientId(i));
        if !packets.is_empty() {
            let _ = server.receive_ack(ClientId(i), now);
        }
    }
}

fn measure(name: &str, def: WorldDef, clients: u64, radius: Option<f32>) {
    let mut room = build_room(def, None);
    connect(&mut room, clients, radius);
    // Warm up: full states, then steady deltas, buffers at their working size.
    for _ in 0..60 {
        tick(&mut room, clients);
    }
    let ticks = 300;
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..ticks {
        tick(&mut room, clients);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let bytes = BYTES.load(Ordering::Relaxed) - b0;
    println!(
        "{name:<11} {clients} clients: {:>8.0} allocations/tick, {:>9.0} bytes allocated/tick",
        allocs as f64 / f64::from(ticks),
        bytes as f64 / f64::from(ticks)
    );
}

fn main() {
    measure("swarm-S1", swarm(0.25), 16, None);
    measure("swarm-idle", swarm(0.0), 16, None);
    let village = WorldDef::load("assets/worlds/village.ron").expect("village.ron loads");
    measure("village", village, 16, Some(128.0));
}

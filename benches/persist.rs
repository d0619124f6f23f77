//! `persist`: what persisting every tick costs a serving room, and how fast
//! the background writer gets ticks into each store.
//!
//! Four parts, in this order:
//!
//! 1. **Tick time with persistence off vs on** (the perf issue's S6: tick p99
//!    with persistence at most 1.05 × without). Three identical rooms of
//!    `assets/worlds/village-10k.ron`, built by [`kasagi::serve::build_room`]
//!    exactly as the server builds them, each with 50 players spawned through
//!    the input path and 50 replication clients (radius-128 views centred on
//!    their players; packets taken after every tick, as the room worker does,
//!    and acknowledged at once). One room is not persisted, one is attached to
//!    a writer over the embedded store (redb, in a temporary directory on the
//!    target disk), one to a writer over a real `redis-server` on loopback.
//!    After an unpaced warm-up the rooms tick **paced at 30 Hz** (sleeping
//!    until the next 33.3 ms slot, as the room worker does), so each writer
//!    gets the idle time it would get in production. The variants take turns
//!    in blocks of 150 ticks (5 s), rotating their order, so machine noise
//!    drifts over all of them alike; the first 3 ticks of each block are not
//!    recorded (caches are cold after another room ran). The simulation is
//!    deterministic, so every variant measures the same tick numbers doing the
//!    same work. `Room::tick` wall time (what the server's status line
//!    reports) goes into one HDR histogram per variant. Criterion is no fit
//!    for the p99 of a paced loop, hence a plain table.
//! 2. **Store footprint and a history read**: bytes the two stores hold after
//!    part 1, and how long the writer thread spends answering one
//!    `FetchHistory`-sized read (`MAX_HISTORY_TICKS`), during which it writes nothing.
//! 3. **Writer throughput**, per store, on the same two rooms: unpaced ticks,
//!    so ticks arrive as fast as the room can make them and the writer
//!    coalesces whatever queues up while it writes; reported as persisted
//!    ticks/s up to the final flush, writes, coalesced ticks and mean write
//!    time (encoding + store round trip). Then the same with a flush after
//!    every tick: one store round trip per tick, no coalescing.
//! 4. **Criterion**: the pieces persistence adds to the tick thread
//!    (`SimState::capture` every archive interval; the tick's `FullChangeSet`
//!    is shared, not copied) and, for reference, what the writer thread
//!    spends encoding them.
//!
//! Run: `cargo bench --bench persist` (about 3 minutes on 2 cores; the
//! paced part alone is 3 × 30 s). Environment: `KASAGI_BENCH_TICKS`
//! measured paced ticks per variant (default 900, i.e. 30 s each),
//! `KASAGI_BENCH_WARMUP` unpaced warm-up ticks per room (default 300),
//! `KASAGI_BENCH_THROUGHPUT_TICKS` unpaced ticks per store in part 3 (default
//! 150; 0 skips part 3; the flush-per-tick run takes a third of it).
//! A criterion filter after `--` applies to part 4 only. Without `--bench`
//! (`cargo test --benches`) every part runs a few ticks only, as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use kasagi::persist::records::{self, OpsRecord, OpsRecordRef, SnapshotRecordRef, StateRecord};
use kasagi::persist::{
    self, PersistConfig, PersistService, PersistSnapshot, Retention, SnapshotStore, Start,
    open_store,
};
use kasagi::room::Room;
use kasagi::serve::build_room;
use kasagi::sim::input::{Applied, SimInput, apply_input};
use kasagi::sim::{ScriptedPlayers, SimState, WorldDef};
use kasagi_replication::{ClientId, FullChangeSet, NetId, ReplicationServer, View};
use kasagi_store::testing::RedisServer;
use tempfile::TempDir;

// Parts 2 and 3 live next to the bench, in benches/persist/.
#[path = "persist/store_side.rs"]
mod store_side;

use store_side::{footprint, writer_throughput};

const WORLD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/worlds/village-10k.ron");
/// Replication clients (and spawned players) per room.
const CLIENTS: u64 = 50;
/// The server's default view radius (`kasagi.toml` `view_radius`).
const VIEW_RADIUS: f32 = 128.0;
/// The tick slot at the village's 30 Hz.
const SLOT: Duration = Duration::from_nanos(1_000_000_000 / 30);
/// Ticks at the start of each block that are run but not recorded.
const SETTLE: usize = 3;
/// The most ticks one `FetchHistory` asks the writer for (`MAX_HISTORY_TICKS`).
const HISTORY_TICKS: u64 = kasagi_net::protocol::MAX_HISTORY_TICKS;

struct Settings {
    warmup: u64,
    ticks: usize,
    block: usize,
    throughput_ticks: u64,
    round_trip_ticks: u64,
    criterion_time: Duration,
}

fn settings() -> Settings {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if std::env::args().any(|a| a == "--bench") {
        let throughput_ticks = env("KASAGI_BENCH_THROUGHPUT_TICKS", 150);
        Settings {
            warmup: env("KASAGI_BENCH_WARMUP", 300),
            ticks: (env("KASAGI_BENCH_TICKS", 900) as usize).max(1),
            block: 150,
            throughput_ticks,
            round_trip_ticks: throughput_ticks / 3,
            criterion_time: Duration::from_secs(2),
        }
    } else {
        Settings {
            warmup: 5,
            ticks: 10,
            block: 5,
            throughput_ticks: 10,
            round_trip_ticks: 5,
            criterion_time: Duration::from_millis(100),
        }
    }
}

fn main() {
    let settings = settings();
    let def = WorldDef::load(WORLD_FILE).expect("load village-10k.ron");
    let data = tempfile::Builder::new()
        .prefix("kasagi-persist-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory");
    // Declared before the rooms, dropped after them: writers shut down while it runs.
    let redis = RedisServer::start().expect("start redis-server");

    let mut variants = vec![
        Variant::new("off", &def, Mode::Off),
        Variant::new("on, embedded", &def, Mode::Store(embedded_store(&data))),
        Variant::new("on, redis", &def, Mode::Store(redis_store(&redis))),
    ];
    for v in &mut variants {
        let started = Instant::now();
        for _ in 0..settings.warmup {
            serve_tick(&mut v.room);
        }
        v.flush();
        eprintln!(
            "persist bench: warmed up `{}` ({} ticks, {:.1} s)",
            v.name,
            settings.warmup,
            started.elapsed().as_secs_f64()
        );
    }

    paced_ticks(&settings, &mut variants);
    footprint(&def, &data, &redis, &variants);
    if settings.throughput_ticks > 0 {
        writer_throughput(&settings, &mut variants[1..3]);
    }
    let off = &mut variants[0];
    let mut criterion = Criterion::default()
        .warm_up_time(settings.criterion_time / 3)
        .measurement_time(settings.criterion_time)
        .configure_from_args();
    tick_thread_costs(&mut criterion, &def, &mut off.room);
    criterion.final_summary();
}

/// A room as the server runs one, with `CLIENTS` players joined.
fn serving_room(def: &WorldDef) -> Room {
    let mut room = build_room(def.clone(), None);
    room.world_mut().insert_resource(ScriptedPlayers);
    for client in 1..=CLIENTS {
        let world = room.world_mut();
        let Ok(Applied::Spawned { id, .. }) = apply_input(world, SimInput::SpawnPlayer) else {
            panic!("could not spawn a player");
        };
        world.resource_mut::<ReplicationServer>().connect(
            ClientId(client),
            View::Radius {
                center: Some(NetId(u64::from(id.0))),
                radius: VIEW_RADIUS,
            },
        );
    }
    room
}

/// One tick as the room worker runs it: the tick, then every client's
/// packets taken (and, here, acknowledged at once). Returns the tick's time.
fn serve_tick(room: &mut Room) -> Duration {
    let took = room.tick();
    let mut server = room.world_mut().resource_mut::<ReplicationServer>();
    let tick = server.tick();
    for client in 1..=CLIENTS {
        let packets = server.take_packets(ClientId(client));
        if !packets.is_empty() {
            black_box(&packets);
            let _ = server.receive_ack(ClientId(client), tick);
        }
    }
    took
}

fn embedded_store(data: &TempDir) -> Box<dyn SnapshotStore> {
    let url = format!("file://{}", data.path().display());
    open_store(&url, Retention::default()).expect("open the embedded store")
}

fn redis_store(redis: &RedisServer) -> Box<dyn SnapshotStore> {
    open_store(&redis.url(), Retention::default()).expect("connect to redis")
}

/// Counters accumulated over measured stretches only.
fn add(total: &mut PersistSnapshot, before: PersistSnapshot, after: PersistSnapshot) {
    total.persisted_ticks += after.persisted_ticks - before.persisted_ticks;
    total.writes += after.writes - before.writes;
    total.coalesced_ticks += after.coalesced_ticks - before.coalesced_ticks;
    total.full_states += after.full_states - before.full_states;
    total.write_micros += after.write_micros - before.write_micros;
    total.failed_writes += after.failed_writes - before.failed_writes;
    total.dropped_ticks += after.dropped_ticks - before.dropped_ticks;
}

/// What a room does in its Persist stage.
enum Mode {
    /// Nothing: persistence off.
    Off,
    /// Persistence on, over this store.
    Store(Box<dyn SnapshotStore>),
}

/// What the writer encodes for one uncoalesced tick (see `Writer::encode`).
fn encode_tick(changes: &FullChangeSet) -> (Vec<u8>, Vec<u8>) {
    let ops = records::encode(&OpsRecordRef {
        inputs: &[],
        changes,
    });
    let snapshot = records::encode(&SnapshotRecordRef {
        from: changes.tick,
        full: changes,
    });
    (ops, snapshot)
}

struct Variant {
    name: &'static str,
    room: Room,
    service: Option<PersistService>,
    /// Every recorded tick, ns.
    all: Histogram<u64>,
    /// Recorded ticks that archive a whole state (`tick % archive_interval == 0`), ns.
    archive: Histogram<u64>,
    writer: PersistSnapshot,
}

impl Variant {
    fn new(name: &'static str, def: &WorldDef, mode: Mode) -> Self {
        let mut room = serving_room(def);
        let mut service = None;
        match mode {
            Mode::Off => {}
            Mode::Store(store) => {
                let started = PersistService::start(store, PersistConfig::default());
                persist::attach(
                    &mut room,
                    &def.name,
                    def.clone(),
                    started.handle(),
                    Start::NewLineage,
                );
                service = Some(started);
            }
        }
        let histogram = || Histogram::new_with_bounds(1_000, 10_000_000_000, 3).expect("bounds");
        Self {
            name,
            room,
            service,
            all: histogram(),
            archive: histogram(),
            writer: PersistSnapshot::default(),
        }
    }

    fn stats(&self) -> PersistSnapshot {
        self.service
            .as_ref()
            .map(|s| s.stats().snapshot())
            .unwrap_or_default()
    }

    fn flush(&self) {
        if let Some(service) = &self.service {
            assert!(
                service.handle().flush(Duration::from_secs(120)),
                "the writer of `{}` did not catch up",
                self.name
            );
        }
    }
}

fn paced_ticks(settings: &Settings, variants: &mut [Variant]) {
    let archive_interval = PersistConfig::default().archive_interval;
    let blocks = settings.ticks.div_ceil(settings.block);
    for b in 0..blocks {
        let n = settings.block.min(settings.ticks - b * settings.block);
        for i in 0..variants.len() {
            let count = variants.len();
            let v = &mut variants[(b + i) % count];
            let before = v.stats();
            let mut next = Instant::now() + SLOT;
            for t in 0..SETTLE + n {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                let took = serve_tick(&mut v.room);
                if t >= SETTLE {
                    let ns = took.as_nanos() as u64;
                    v.all.saturating_record(ns);
                    if v.room.tick_count().is_multiple_of(archive_interval) {
                        v.archive.saturating_record(ns);
                    }
                }
                next += SLOT;
                // Like the room worker: after a stall, do not catch up.
                if next + SLOT < Instant::now() {
                    next = Instant::now() + SLOT;
                }
            }
            // This block's writes finish on the writer's own time, but
            // before the next variant's block starts.
            v.flush();
            let after = v.stats();
            add(&mut v.writer, before, after);
        }
        eprintln!("persist bench: block {}/{blocks} done", b + 1);
    }

    let us = |ns: u64| ns as f64 / 1_000.0;
    let slot_ns = SLOT.as_nanos() as u64;
    let off_p50 = variants[0].all.value_at_quantile(0.50) as f64;
    let off_p99 = variants[0].all.value_at_quantile(0.99) as f64;
    println!();
    println!(
        "## tick time, village-10k, {CLIENTS} clients, paced at 30 Hz, {} ticks per variant \
         (archive every {archive_interval} ticks)",
        settings.ticks
    );
    println!();
    println!(
        "| variant | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | mean µs | p50 / off | \
         p99 / off | ticks > 33.3 ms | archive ticks: n, mean µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for v in variants.iter() {
        let h = &v.all;
        let over: u64 = h
            .iter_recorded()
            .filter(|x| x.value_iterated_to() > slot_ns)
            .map(|x| x.count_at_value())
            .sum();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} | {} | {}, {:.0} |",
            v.name,
            us(h.value_at_quantile(0.50)),
            us(h.value_at_quantile(0.90)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            h.mean() / 1_000.0,
            h.value_at_quantile(0.50) as f64 / off_p50,
            h.value_at_quantile(0.99) as f64 / off_p99,
            over,
            v.archive.len(),
            v.archive.mean() / 1_000.0,
        );
    }
    println!();
    println!("writer during the measured blocks (settle ticks included):");
    println!();
    println!(
        "| variant | persisted ticks | writes | coalesced ticks | whole states | mean write µs | \
         writer busy | failed | dropped |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for v in variants.iter().filter(|v| v.service.is_some()) {
        let w = &v.writer;
        let ticks = (blocks * SETTLE + settings.ticks) as f64;
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} % of the slots | {} | {} |",
            v.name,
            w.persisted_ticks,
            w.writes,
            w.coalesced_ticks,
            w.full_states,
            w.write_micros as f64 / w.writes.max(1) as f64,
            100.0 * w.write_micros as f64 / (ticks * SLOT.as_micros() as f64),
            w.failed_writes,
            w.dropped_ticks,
        );
    }
    println!();
}

fn tick_thread_costs(c: &mut Criterion, def: &WorldDef, room: &mut Room) {
    let tick = room.tick_count();
    let changes = room
        .world()
        .resource::<ReplicationServer>()
        .full_change_set()
        .clone();
    let state = SimState::capture(room.world_mut(), tick);
    let state_bytes = records::encode(&StateRecord {
        hash: state.hash(),
        state: state.clone(),
        def: def.clone(),
    })
    .len();
    let ops_bytes = records::encode(&OpsRecord {
        inputs: Vec::new(),
        changes: changes.clone(),
    })
    .len();
    let snapshot_bytes = records::encode(&SnapshotRecordRef {
        from: changes.tick,
        full: &changes,
    })
    .len();
    println!(
        "tick {tick}: {} entities in the whole state ({state_bytes} bytes encoded); the tick's \
         full change set has {} entries ({ops_bytes} bytes as an ops record, {snapshot_bytes} \
         bytes as a snapshot record)",
        state.entities.len(),
        changes.len(),
    );
    println!();

    let mut group = c.benchmark_group("persist_tick_thread");
    group.sample_size(30);
    group.bench_function("sim_state_capture_10k", |b| {
        b.iter(|| black_box(SimState::capture(room.world_mut(), tick)));
    });
    group.bench_function("full_change_set_clone_no_longer_paid", |b| {
        let server = room.world().resource::<ReplicationServer>();
        b.iter(|| black_box(server.full_change_set().clone()));
    });
    group.finish();

    // What the writer thread spends per write (it shares the 2 cores).
    let mut group = c.benchmark_group("persist_writer_thread");
    group.sample_size(10);
    group.bench_function("encode_ops_and_snapshot_records", |b| {
        b.iter(|| black_box(encode_tick(&changes)));
    });
    group.bench_function("encode_state_record_10k", |b| {
        b.iter(|| {
            black_box(records::encode(&StateRecord {
                hash: state.hash(),
                state: state.clone(),
                def: def.clone(),
            }))
        });
    });
    group.finish();
}

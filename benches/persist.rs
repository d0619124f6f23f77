//! `persist`: what persisting every tick costs a serving room, and how fast
//! the background writer gets ticks into each store.
//!
//! Three parts, in this order:
//!
//! 1. **Tick time with persistence off vs on** (the perf issue's S6: p99 with
//!    persistence at most 1.05 × without). Three identical rooms of
//!    `assets/worlds/village-10k.ron`, built by [`kasagi::serve::build_room`]
//!    exactly as the server builds them, each with 50 players spawned through
//!    the input path and 50 replication clients (radius-128 views centred on
//!    their players, acking every tick, packets taken after every tick, as the
//!    room worker does). One room is not persisted, one is attached to a
//!    writer over the embedded store (redb, in a temporary directory on the
//!    target disk), one to a writer over a real `redis-server` on loopback.
//!    After an unpaced warm-up the rooms tick **paced at 30 Hz** (sleeping
//!    until the next 33.3 ms slot, as the room worker does), so each writer
//!    gets the idle time it would get in production. The variants take turns
//!    in blocks of 150 ticks (5 s), rotating their order, so machine noise
//!    drifts over all of them alike; the first 3 ticks of each block are not
//!    recorded (caches cold after the other rooms ran). All three rooms run
//!    the same deterministic simulation, so every variant measures the same
//!    tick numbers with the same work. `Room::tick` wall time (what the
//!    server's status line reports) goes into one HDR histogram per variant.
//!    Criterion is no fit for p99 of a paced loop, hence a plain table.
//! 2. **Writer throughput**, per store: a room without clients (the change
//!    sets are the same, the producer is faster) ticks unpaced, so ticks may
//!    arrive faster than the store takes them and the writer coalesces;
//!    reported as persisted ticks/s up to the final flush, writes, coalesced
//!    ticks and mean write time (encoding + store round trip). Then the same
//!    with a flush after every tick: one store round trip per tick, no
//!    coalescing.
//! 3. **Criterion**, the pieces persistence adds to the tick thread
//!    (`SimState::capture` every archive interval, the clone of the tick's
//!    `FullChangeSet` every tick) and, for reference, what the writer thread
//!    spends encoding them.
//!
//! Run: `cargo bench --bench persist`. Environment:
//! `KASAGI_BENCH_TICKS` measured paced ticks per variant (default 900, i.e.
//! 30 s each; 0 skips part 1), `KASAGI_BENCH_WARMUP` unpaced warm-up ticks
//! (default 1000), `KASAGI_BENCH_THROUGHPUT_TICKS` unpaced ticks per store
//! in part 2 (default 900; 0 skips part 2; the flush-per-tick run takes a
//! third of it). Without `--bench` (`cargo test --benches`) every part runs
//! a few ticks only, as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use kasagi::persist::records::{self, OpsRecord, SnapshotRecord, StateRecord};
use kasagi::persist::{
    self, PersistConfig, PersistService, PersistSnapshot, Retention, SnapshotStore, Start,
    open_store,
};
use kasagi::room::Room;
use kasagi::serve::build_room;
use kasagi::sim::input::{Applied, SimInput, apply_input};
use kasagi::sim::{ScriptedPlayers, SimState, WorldDef};
use kasagi_replication::{ClientId, NetId, ReplicationServer, View};
use kasagi_store::testing::RedisServer;
use tempfile::TempDir;

const WORLD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/worlds/village-10k.ron");
/// Replication clients (and spawned players) per room.
const CLIENTS: u64 = 50;
/// The server's default view radius (`kasagi.toml` `view_radius`).
const VIEW_RADIUS: f32 = 128.0;
/// The tick slot at the village's 30 Hz.
const SLOT: Duration = Duration::from_nanos(1_000_000_000 / 30);
/// Ticks at the start of each block that are run but not recorded.
const SETTLE: usize = 3;

struct Settings {
    warmup: u64,
    ticks: usize,
    block: usize,
    throughput_ticks: u64,
    round_trip_ticks: u64,
    criterion_warmup: u64,
}

fn settings() -> Settings {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if std::env::args().any(|a| a == "--bench") {
        let throughput_ticks = env("KASAGI_BENCH_THROUGHPUT_TICKS", 900);
        Settings {
            warmup: env("KASAGI_BENCH_WARMUP", 1_000),
            ticks: env("KASAGI_BENCH_TICKS", 900) as usize,
            block: 150,
            throughput_ticks,
            round_trip_ticks: throughput_ticks / 3,
            criterion_warmup: 300,
        }
    } else {
        Settings {
            warmup: 5,
            ticks: 10,
            block: 5,
            throughput_ticks: 10,
            round_trip_ticks: 5,
            criterion_warmup: 5,
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
    // Every writer lives inside this function: the server outlives them.
    let redis = RedisServer::start().expect("start redis-server");

    if settings.ticks > 0 {
        paced_ticks(&settings, &def, &data, &redis);
    }
    if settings.throughput_ticks > 0 {
        writer_throughput(&settings, &def, &data, &redis);
    }
    let mut criterion = Criterion::default().configure_from_args();
    tick_thread_costs(&mut criterion, &settings, &def);
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

fn embedded_store(data: &TempDir, name: &str) -> Box<dyn SnapshotStore> {
    let url = format!("file://{}", data.path().join(name).display());
    open_store(&url, Retention::default()).expect("open the embedded store")
}

fn redis_store(redis: &RedisServer) -> Box<dyn SnapshotStore> {
    open_store(&redis.url(), Retention::default()).expect("connect to redis")
}

fn flush(service: &PersistService) {
    assert!(
        service.handle().flush(Duration::from_secs(120)),
        "the writer did not catch up"
    );
}

/// Counters accumulated over measured blocks only.
fn add(total: &mut PersistSnapshot, before: PersistSnapshot, after: PersistSnapshot) {
    total.persisted_ticks += after.persisted_ticks - before.persisted_ticks;
    total.writes += after.writes - before.writes;
    total.coalesced_ticks += after.coalesced_ticks - before.coalesced_ticks;
    total.full_states += after.full_states - before.full_states;
    total.write_micros += after.write_micros - before.write_micros;
    total.failed_writes += after.failed_writes - before.failed_writes;
    total.dropped_ticks += after.dropped_ticks - before.dropped_ticks;
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
    fn new(name: &'static str, def: &WorldDef, store: Option<Box<dyn SnapshotStore>>) -> Self {
        let mut room = serving_room(def);
        let service = store.map(|store| {
            let service = PersistService::start(store, PersistConfig::default());
            persist::attach(
                &mut room,
                &def.name,
                def.clone(),
                service.handle(),
                Start::NewLineage,
            );
            service
        });
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
            flush(service);
        }
    }
}

fn paced_ticks(settings: &Settings, def: &WorldDef, data: &TempDir, redis: &RedisServer) {
    let archive_interval = PersistConfig::default().archive_interval;
    let mut variants = [
        Variant::new("off", def, None),
        Variant::new("on, embedded", def, Some(embedded_store(data, "paced"))),
        Variant::new("on, redis", def, Some(redis_store(redis))),
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

    let blocks = settings.ticks.div_ceil(settings.block);
    for b in 0..blocks {
        let n = settings.block.min(settings.ticks - b * settings.block);
        for i in 0..variants.len() {
            let v = &mut variants[(b + i) % 3];
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
            // Writes of this block finish on the writer's own time, but
            // before the next variant's block starts.
            v.flush();
            let after = v.stats();
            add(&mut v.writer, before, after);
        }
        eprintln!("persist bench: block {}/{blocks} done", b + 1);
    }

    let us = |ns: u64| ns as f64 / 1_000.0;
    let off_p50 = variants[0].all.value_at_quantile(0.50);
    let off_p99 = variants[0].all.value_at_quantile(0.99);
    println!();
    println!(
        "## tick time, village-10k, {CLIENTS} clients, paced at 30 Hz, {} ticks per variant \
         (archive every {archive_interval} ticks)",
        settings.ticks
    );
    println!();
    println!(
        "| variant | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | mean µs | p50 / off | p99 / off | \
         archive ticks: n, mean µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for v in &variants {
        let h = &v.all;
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} | {}, {:.0} |",
            v.name,
            us(h.value_at_quantile(0.50)),
            us(h.value_at_quantile(0.90)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            h.mean() / 1_000.0,
            h.value_at_quantile(0.50) as f64 / off_p50 as f64,
            h.value_at_quantile(0.99) as f64 / off_p99 as f64,
            v.archive.len(),
            v.archive.mean() / 1_000.0,
        );
    }
    println!();
    println!("writer during the measured blocks (settle ticks included):");
    println!();
    println!(
        "| variant | persisted ticks | writes | coalesced ticks | whole states | mean write µs | failed | dropped |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for v in variants.iter().filter(|v| v.service.is_some()) {
        let w = &v.writer;
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} |",
            v.name,
            w.persisted_ticks,
            w.writes,
            w.coalesced_ticks,
            w.full_states,
            w.write_micros as f64 / w.writes.max(1) as f64,
            w.failed_writes,
            w.dropped_ticks,
        );
    }
    println!();
}

/// A room without clients, warmed up so villagers are busy.
fn producer_room(def: &WorldDef, warmup: u64) -> Room {
    let mut room = build_room(def.clone(), None);
    room.world_mut().insert_resource(ScriptedPlayers);
    for _ in 0..warmup {
        room.tick();
    }
    room
}

struct Throughput {
    store: &'static str,
    mode: &'static str,
    ticks: u64,
    produce_secs: f64,
    total_secs: f64,
    stats: PersistSnapshot,
}

fn writer_throughput(settings: &Settings, def: &WorldDef, data: &TempDir, redis: &RedisServer) {
    let mut rows = Vec::new();
    let stores: [(&'static str, Box<dyn Fn() -> Box<dyn SnapshotStore> + '_>); 2] = [
        ("embedded", Box::new(|| embedded_store(data, "throughput"))),
        ("redis", Box::new(|| redis_store(redis))),
    ];
    for (name, open) in &stores {
        let mut room = producer_room(def, settings.warmup.min(300));
        let service = PersistService::start(open(), PersistConfig::default());
        // A new world name per store, so Redis starts from nothing.
        let world = format!("throughput-{name}");
        persist::attach(
            &mut room,
            &world,
            def.clone(),
            service.handle(),
            Start::NewLineage,
        );
        flush(&service);

        // Unpaced: as fast as the room can tick.
        let before = service.stats().snapshot();
        let started = Instant::now();
        for _ in 0..settings.throughput_ticks {
            room.tick();
        }
        let produce_secs = started.elapsed().as_secs_f64();
        flush(&service);
        let total_secs = started.elapsed().as_secs_f64();
        let mut stats = PersistSnapshot::default();
        add(&mut stats, before, service.stats().snapshot());
        rows.push(Throughput {
            store: name,
            mode: "unpaced",
            ticks: settings.throughput_ticks,
            produce_secs,
            total_secs,
            stats,
        });

        // One round trip per tick.
        let handle = service.handle();
        let before = service.stats().snapshot();
        let started = Instant::now();
        let mut ticking = Duration::ZERO;
        for _ in 0..settings.round_trip_ticks {
            ticking += room.tick();
            assert!(handle.flush(Duration::from_secs(10)), "flush timed out");
        }
        let total_secs = started.elapsed().as_secs_f64();
        let mut stats = PersistSnapshot::default();
        add(&mut stats, before, service.stats().snapshot());
        rows.push(Throughput {
            store: name,
            mode: "flush every tick",
            ticks: settings.round_trip_ticks,
            produce_secs: ticking.as_secs_f64(),
            total_secs,
            stats,
        });
        eprintln!("persist bench: throughput over {name} done");
    }

    println!(
        "## writer throughput, village-10k without clients (archive every {} ticks)",
        PersistConfig::default().archive_interval
    );
    println!();
    println!(
        "| store | mode | ticks | room ticks/s | persisted ticks/s | writes | coalesced ticks | \
         whole states | mean write µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let s = &r.stats;
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {:.0} |",
            r.store,
            r.mode,
            r.ticks,
            r.ticks as f64 / r.produce_secs,
            s.persisted_ticks as f64 / r.total_secs,
            s.writes,
            s.coalesced_ticks,
            s.full_states,
            s.write_micros as f64 / s.writes.max(1) as f64,
        );
    }
    println!();
    println!(
        "(room ticks/s: ticks over the time spent ticking; persisted ticks/s: persisted \
         ticks over the time from the first tick until the writer had written them all)"
    );
    println!();
}

fn tick_thread_costs(c: &mut Criterion, settings: &Settings, def: &WorldDef) {
    let mut room = serving_room(def);
    for _ in 0..settings.criterion_warmup {
        serve_tick(&mut room);
    }
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
    println!(
        "tick {tick}: {} entities in the whole state ({state_bytes} bytes encoded); \
         the tick's full change set has {} entries ({ops_bytes} bytes encoded as an ops record)",
        state.entities.len(),
        changes.len(),
    );

    let mut group = c.benchmark_group("persist_tick_thread");
    group.sample_size(30);
    group.bench_function("sim_state_capture_10k", |b| {
        b.iter(|| black_box(SimState::capture(room.world_mut(), tick)));
    });
    group.bench_function("full_change_set_clone", |b| {
        let server = room.world().resource::<ReplicationServer>();
        b.iter(|| black_box(server.full_change_set().clone()));
    });
    group.finish();

    // What the writer thread spends per write (it shares the 2 cores).
    let mut group = c.benchmark_group("persist_writer_thread");
    group.sample_size(20);
    group.bench_function("encode_ops_and_snapshot_records", |b| {
        b.iter(|| {
            let ops = records::encode(&OpsRecord {
                inputs: Vec::new(),
                changes: changes.clone(),
            });
            let snapshot = records::encode(&SnapshotRecord {
                from: changes.tick,
                visible: records::visible_cast(&changes, &[]),
                full: changes.clone(),
            });
            black_box((ops, snapshot))
        });
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

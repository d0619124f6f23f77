//! Persistence against a real `redis-server` that misbehaves: it stalls, it is
//! killed and comes back empty. The tick never waits, and once Redis is back
//! the store again describes the live room exactly.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use glam::Vec2;
use kasagi::persist::{
    self, PersistConfig, PersistService, PersistSnapshot, Retention, open_store,
};
use kasagi::room::Room;
use kasagi::sim::input::{SimInput, apply_input};
use kasagi::sim::{PlayerInput, WorldDef, state_hash};
use kasagi_store::testing::RedisServer;

/// A room ticking at 30 Hz of wall time, as served.
struct Paced {
    room: Room,
    /// The longest tick seen: a tick that waited on Redis would take its
    /// one-second timeout.
    worst: Duration,
}

impl Paced {
    fn run_for(&mut self, wall: Duration) {
        let slot = Duration::from_micros(33_333);
        let end = Instant::now() + wall;
        let mut next = Instant::now();
        while Instant::now() < end {
            let tick = self.room.tick_count() + 1;
            if tick == 1 {
                let _ = apply_input(self.room.world_mut(), SimInput::SpawnPlayer);
            }
            // The newcomer (slot 4) walks in circles.
            let input = PlayerInput {
                slot: 4,
                movement: Vec2::from_angle(tick as f32 * 0.1),
                action: None,
            };
            let _ = apply_input(self.room.world_mut(), SimInput::Player(input));
            self.worst = self.worst.max(self.room.tick());
            next += slot;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
}

fn world() -> WorldDef {
    let mut def = common::small_world(5);
    def.name = "village".into();
    def
}

fn start(redis: &RedisServer) -> (PersistService, Paced) {
    let store = open_store(&redis.url(), Retention::default()).expect("redis store");
    let config = PersistConfig {
        archive_interval: 30,
        ..PersistConfig::default()
    };
    let (service, room) = common::persisted_village(&world(), store, config);
    (
        service,
        Paced {
            room,
            worst: Duration::ZERO,
        },
    )
}

/// Rebuilds the room from Redis and checks it is the live room.
fn assert_store_matches(redis: &RedisServer, live: &mut Room, stats: PersistSnapshot) {
    let store = open_store(&redis.url(), Retention::default()).unwrap();
    let (_, report) = common::recover_village(store);
    assert!(report.is_exact(), "{report:?} {stats:?}");
    assert_eq!(report.tick, live.tick_count(), "{stats:?}");
    assert_eq!(report.state_hash, state_hash(live.world_mut()));
}

/// Blocks every Redis client for `ms` (Redis keeps its data meanwhile).
fn pause_redis(redis: &RedisServer, ms: u64) {
    let mut conn = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    let ms = ms.to_string();
    let command = format!(
        "*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n${}\r\n{ms}\r\n$3\r\nALL\r\n",
        ms.len()
    );
    conn.write_all(command.as_bytes()).unwrap();
    let mut reply = [0u8; 5];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
}

#[test]
fn a_stalled_redis_delays_writes_not_ticks_and_they_land_in_order() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let (service, mut paced) = start(&redis);
    paced.run_for(Duration::from_millis(700));
    pause_redis(&redis, 2_500);
    paced.run_for(Duration::from_millis(2_500));
    paced.run_for(Duration::from_millis(1_500));
    persist::detach(&mut paced.room);
    assert!(service.handle().flush(Duration::from_secs(10)));
    let stats = service.stats().snapshot();

    assert!(
        stats.failed_writes > 0,
        "Redis never stalled a write: {stats:?}"
    );
    assert!(stats.recovered_writes > 0, "{stats:?}");
    assert_eq!(stats.dropped_ticks, 0, "{stats:?}");
    assert_eq!(stats.persisted_ticks, paced.room.tick_count(), "{stats:?}");
    // Not a speed target: a tick that waited on Redis would take ≥ 1 s.
    assert!(
        paced.worst < Duration::from_millis(250),
        "worst tick {:?}",
        paced.worst
    );
    assert_store_matches(&redis, &mut paced.room, stats);
}

#[test]
fn redis_killed_and_restarted_empty_gets_a_whole_state_and_no_gap() {
    let mut redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let (service, mut paced) = start(&redis);
    paced.run_for(Duration::from_millis(700));
    redis.stop();
    paced.run_for(Duration::from_millis(1_500));
    assert!(service.stats().snapshot().store_down);
    // Without --save, the new redis-server starts with nothing.
    redis.restart().unwrap();
    paced.run_for(Duration::from_millis(2_500));
    persist::detach(&mut paced.room);
    assert!(service.handle().flush(Duration::from_secs(10)));
    let stats = service.stats().snapshot();

    assert!(stats.failed_writes > 0, "{stats:?}");
    assert!(!stats.store_down, "{stats:?}");
    assert!(
        paced.worst < Duration::from_millis(250),
        "worst tick {:?}",
        paced.worst
    );
    assert_store_matches(&redis, &mut paced.room, stats);
}

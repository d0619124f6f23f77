//! Replication cost per tick and bytes per move.
//!
//! * `replication/changes_10k_10pct_100clients`: 10,000 entities on a 1000×1000
//!   map, 10 % of them moving ~1 unit per tick, 100 clients with radius-100
//!   views centred on random entities, acking every tick. Time of one
//!   replication run (collect, interest, build, encode), mutations excluded.
//! * `replication/idle_10k_100clients`: the same world with nothing changing.
//! * `replication/room_10k_10pct_50clients`: the S2 load on the replication
//!   side: 10 % of 10,000 moving, 50 clients seeing the whole room (they share
//!   one delta per tick), acks included in the time.
//! * `client/apply_10k_10pct_50replicas`: the client side of S2: one room-view
//!   change set of that load (≈ 1,000 moves, acked every tick) applied to 50
//!   replicas of the 10,000 entities, each in its own `World`, as the bots
//!   process holds them. Time of the 50 applications.
//! * Bytes per moving entity are printed once (room view, 10 % moving).
//!
//! Run: `cargo bench -p kasagi_replication --bench replication`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_ecs::prelude::*;
use bevy_reflect::Reflect;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use glam::Vec2;
use kasagi_replication::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Component, Reflect, Serialize, Deserialize, Clone, Copy, PartialEq)]
struct Pos(Vec2);

#[derive(Component, Reflect, Serialize, Deserialize, Clone, Copy, PartialEq)]
struct Health(u16);

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 1_000_000) as f32 / 1_000_000.0
    }
}

struct World10k {
    app: App,
    entities: Vec<Entity>,
    clients: Vec<ClientId>,
    rng: Lcg,
}

impl World10k {
    fn new(clients: usize, view: impl Fn(NetId) -> View) -> Self {
        let mut app = App::new();
        app.add_plugins(ReplicationPlugin::default());
        app.replicate_position::<Pos>(|p| p.0, Pos)
            .replicate::<Health>();
        let kind = app.replicate_kind("units");
        let mut rng = Lcg(7);
        let entities: Vec<Entity> = (0..10_000)
            .map(|_| {
                let at = Vec2::new(rng.unit() * 1000.0, rng.unit() * 1000.0);
                app.world_mut()
                    .spawn((Replicated { kind }, Pos(at), Health(100)))
                    .id()
            })
            .collect();
        app.update();
        let ids: Vec<ClientId> = (0..clients as u64).map(ClientId).collect();
        for id in &ids {
            let center = entities[rng.next() as usize % entities.len()];
            let net = *app.world().get::<NetId>(center).unwrap();
            app.world_mut()
                .resource_mut::<ReplicationServer>()
                .connect(*id, view(net));
        }
        let mut w = Self {
            app,
            entities,
            clients: ids,
            rng,
        };
        for _ in 0..3 {
            w.app.update();
            w.ack_all();
        }
        w
    }

    /// Client 0's packets of the current tick; acks them.
    fn take_first(&mut self) -> Vec<Vec<u8>> {
        let mut server = self.app.world_mut().resource_mut::<ReplicationServer>();
        let tick = server.tick();
        let packets = server.take_packets(self.clients[0]);
        let _ = server.receive_ack(self.clients[0], tick);
        packets
    }

    fn ack_all(&mut self) -> usize {
        let mut server = self.app.world_mut().resource_mut::<ReplicationServer>();
        let tick = server.tick();
        let mut bytes = 0;
        for &c in &self.clients {
            bytes += server.take_packets(c).iter().map(Vec::len).sum::<usize>();
            let _ = server.receive_ack(c, tick);
        }
        bytes
    }

    /// Runs `iters` ticks with `share` of the entities moving; times the
    /// replication update, and the clients' acks too when `with_acks`.
    fn run(&mut self, iters: u64, share: f32, with_acks: bool) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if share > 0.0 {
                self.move_share(share);
            }
            let start = Instant::now();
            self.app.update();
            if with_acks {
                black_box(self.ack_all());
                total += start.elapsed();
            } else {
                total += start.elapsed();
                black_box(self.ack_all());
            }
        }
        total
    }

    fn move_share(&mut self, share: f32) -> usize {
        let mut moved = 0;
        for i in 0..self.entities.len() {
            if self.rng.unit() < share {
                let e = self.entities[i];
                let step = Vec2::new(self.rng.unit() - 0.5, self.rng.unit() - 0.5) * 2.0;
                let mut p = self.app.world_mut().get_mut::<Pos>(e).unwrap();
                p.0 = (p.0 + step).clamp(Vec2::ZERO, Vec2::splat(1000.0));
                moved += 1;
            }
        }
        moved
    }
}

/// A group with this file's sampling: ticks of a 10k world are milliseconds.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group
}

fn replication(c: &mut Criterion) {
    let mut group = group(c, "replication");

    let mut w = World10k::new(100, |center| View::Radius {
        center: Some(center),
        radius: 100.0,
    });
    group.bench_function("changes_10k_10pct_100clients", |b| {
        b.iter_custom(|iters| w.run(iters, 0.10, false))
    });
    group.bench_function("idle_10k_100clients", |b| {
        b.iter_custom(|iters| w.run(iters, 0.0, false))
    });
    let mut w = World10k::new(50, |_| View::Room);
    group.bench_function("room_10k_10pct_50clients", |b| {
        b.iter_custom(|iters| w.run(iters, 0.10, true))
    });
    group.finish();

    client_apply(c);

    // Bytes per moving entity, room view, one client acking every tick.
    let mut w = World10k::new(1, |_| View::Room);
    let (mut moved, mut bytes) = (0, 0);
    for _ in 0..100 {
        moved += w.move_share(0.10);
        w.app.update();
        bytes += w.ack_all();
    }
    // Subtract the per-packet header cost to isolate the per-move cost as well.
    println!(
        "bytes per moving entity (room view, 10% of 10k moving, acked every tick): {:.2} including packet headers",
        bytes as f64 / moved as f64
    );
}

/// A client app with the bench world's protocol.
fn replica_app() -> App {
    let mut app = App::new();
    app.add_plugins(ClientReplicationPlugin::default());
    app.replicate_position::<Pos>(|p| p.0, Pos)
        .replicate::<Health>();
    app.replicate_kind("units");
    app
}

fn client_apply(c: &mut Criterion) {
    let mut group = group(c, "client");
    let mut w = World10k::new(1, |_| View::Room);
    let first = w.clients[0];
    w.app
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .request_full_state(first);
    let mut replicas: Vec<App> = (0..50).map(|_| replica_app()).collect();
    let deliver = |w: &mut World10k, replicas: &mut [App]| {
        let packets = w.take_first();
        let start = Instant::now();
        for replica in replicas.iter_mut() {
            for bytes in &packets {
                let receipt = ClientReplica::receive(replica.world_mut(), bytes);
                black_box(receipt.expect("the server's own packets apply"));
            }
        }
        start.elapsed()
    };
    w.app.update();
    deliver(&mut w, &mut replicas);
    assert!(
        replicas
            .iter()
            .all(|r| r.world().resource::<ClientReplica>().len() == 10_000)
    );
    group.bench_function("apply_10k_10pct_50replicas", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                w.move_share(0.10);
                w.app.update();
                total += deliver(&mut w, &mut replicas);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, replication);
criterion_main!(benches);

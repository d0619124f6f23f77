//! What chained deltas cost and save on a lossy link, against deltas from
//! the acknowledged tick: bytes per client and how far the replica trails.
//!
//! One room-view client with a real `ClientReplica` behind a simulated link:
//! a fixed one-way delay (half the round trip, in ticks) and independent loss
//! in both directions; acks and missing-baseline reports travel the same
//! link. The world is S1's on the replication side: 1,000 entities, a
//! quarter moving about 1 unit per tick, 30 Hz. 900 ticks per row, seeded.
//!
//! Printed per row: KB/s to the client, the replica's lag behind the server
//! (server tick − replica tick, sampled every tick: mean, p99, max) and the
//! chain repairs. A row with no loss shows the round trip's cost alone.
//!
//! Run: `cargo bench -p kasagi_replication --bench delivery`

use std::collections::VecDeque;

use bevy_app::prelude::*;
use bevy_ecs::prelude::*;
use bevy_reflect::Reflect;
use glam::Vec2;
use kasagi_replication::client::{ClientReplica, ClientReplicationPlugin};
use kasagi_replication::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Component, Reflect, Serialize, Deserialize, Clone, Copy, PartialEq)]
struct Pos(Vec2);

#[derive(Component, Reflect, Serialize, Deserialize, Clone, Copy, PartialEq)]
struct Health(u16);

const ENTITIES: usize = 1_000;
const MOVING: f32 = 0.25;
const TICKS: u64 = 900;
const HZ: f64 = 30.0;
const ME: ClientId = ClientId(0);

struct Lcg(u64);
impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Messages from the client: an ack, or a missing-baseline report.
enum Up {
    Ack(u64),
    Missing(u64, u64),
}

struct Row {
    kb_per_sec: f64,
    lag_mean: f64,
    lag_p99: u64,
    lag_max: u64,
    repairs: u64,
}

fn register(app: &mut App) -> KindId {
    app.replicate_position::<Pos>(|p| p.0, Pos)
        .replicate::<Health>();
    app.replicate_kind("units")
}

fn run(chained: bool, rtt: u64, loss: f64) -> Row {
    let config = ReplicationConfig {
        chained_deltas: chained,
        ..ReplicationConfig::default()
    };
    let mut server = App::new();
    server.add_plugins(ReplicationPlugin::default().with_config(config.clone()));
    let kind = register(&mut server);
    let mut client = App::new();
    client.add_plugins(ClientReplicationPlugin { config });
    register(&mut client);

    let mut rng = Lcg(11);
    let entities: Vec<Entity> = (0..ENTITIES)
        .map(|_| {
            let at = Vec2::new(rng.unit() as f32 * 1000.0, rng.unit() as f32 * 1000.0);
            server
                .world_mut()
                .spawn((Replicated { kind }, Pos(at), Health(100)))
                .id()
        })
        .collect();
    server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .connect(ME, View::Room);

    let one_way = rtt / 2;
    let mut down: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut up: VecDeque<(u64, Up)> = VecDeque::new();
    let (mut bytes, mut lags) = (0usize, Vec::new());
    for now in 0..TICKS {
        // The server reads what arrived, then ticks.
        while up.front().is_some_and(|(at, _)| *at <= now) {
            let (_, message) = up.pop_front().expect("checked");
            let mut state = server.world_mut().resource_mut::<ReplicationServer>();
            let _ = match message {
                Up::Ack(tick) => state.receive_ack(ME, tick),
                Up::Missing(holds, tick) => state.receive_missing_baseline(ME, holds, tick),
            };
        }
        for &e in &entities {
            if rng.unit() < f64::from(MOVING) {
                let step = Vec2::new(rng.unit() as f32 - 0.5, rng.unit() as f32 - 0.5);
                server.world_mut().get_mut::<Pos>(e).expect("spawned").0 += step * 2.0;
            }
        }
        server.update();
        let packets = server
            .world_mut()
            .resource_mut::<ReplicationServer>()
            .take_packets(ME);
        for p in packets {
            bytes += p.len();
            // The first full state is delivered reliably, as transports do.
            let first = now == 0;
            if first || rng.unit() >= loss {
                down.push_back((now + one_way, p));
            }
        }
        // The client reads what arrived and answers.
        while down.front().is_some_and(|(at, _)| *at <= now) {
            let (_, p) = down.pop_front().expect("checked");
            let _ = ClientReplica::receive(client.world_mut(), &p);
        }
        let mut replica = client.world_mut().resource_mut::<ClientReplica>();
        let answers = [
            replica.take_ack().map(Up::Ack),
            replica
                .take_missing_baseline()
                .map(|(h, t)| Up::Missing(h, t)),
        ];
        for answer in answers.into_iter().flatten() {
            if rng.unit() >= loss {
                up.push_back((now + one_way, answer));
            }
        }
        if let Some(held) = replica.tick() {
            lags.push(now + 1 - held.min(now + 1));
        }
    }
    let warm = lags.len() / 10;
    let mut lags = lags.split_off(warm);
    lags.sort_unstable();
    let stats = server
        .world()
        .resource::<ReplicationServer>()
        .client_stats(ME)
        .expect("connected");
    Row {
        kb_per_sec: bytes as f64 / TICKS as f64 * HZ / 1_000.0,
        lag_mean: lags.iter().sum::<u64>() as f64 / lags.len().max(1) as f64,
        lag_p99: lags.get(lags.len() * 99 / 100).copied().unwrap_or(0),
        lag_max: lags.last().copied().unwrap_or(0),
        repairs: stats.repairs,
    }
}

fn main() {
    println!(
        "| round trip | loss | deltas against | KB/s | lag mean | lag p99 | lag max | repairs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for rtt in [2, 6] {
        for loss in [0.0, 0.01, 0.05, 0.10] {
            for chained in [false, true] {
                let r = run(chained, rtt, loss);
                println!(
                    "| {rtt} ticks | {:.0} % | {} | {:.1} | {:.2} | {} | {} | {} |",
                    loss * 100.0,
                    if chained {
                        "previous set (chained)"
                    } else {
                        "acked tick"
                    },
                    r.kb_per_sec,
                    r.lag_mean,
                    r.lag_p99,
                    r.lag_max,
                    r.repairs,
                );
            }
        }
    }
}

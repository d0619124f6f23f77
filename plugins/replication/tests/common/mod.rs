//! A server app and client apps wired through an impairable in-memory channel.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bevy_app::prelude::*;
use bevy_ecs::prelude::*;
use bevy_reflect::Reflect;
use glam::Vec2;
use kasagi_replication::client::{ClientReplica, ClientReplicationPlugin};
use kasagi_replication::prelude::*;
use serde::{Deserialize, Serialize};

/// Where an entity is.
#[derive(Component, Reflect, Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
pub struct Pos(pub Vec2);

/// A public component.
#[derive(Component, Reflect, Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
pub struct Health(pub u16);

/// A private component: only the owner sees it.
#[derive(Component, Reflect, Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct Secret {
    pub code: u32,
    pub note: String,
}

/// Registers the test protocol in the same order on either end.
pub fn register(app: &mut App) -> KindId {
    app.replicate_position::<Pos>(|p| p.0, Pos)
        .replicate::<Health>()
        .replicate_private::<Secret>();
    app.replicate_kind("units")
}

/// The test protocol without the owner-only component: room views then
/// share one delta per tick (`server::shared`).
pub fn register_public(app: &mut App) -> KindId {
    app.replicate_position::<Pos>(|p| p.0, Pos)
        .replicate::<Health>();
    app.replicate_kind("units")
}

pub fn server_app(config: ReplicationConfig) -> (App, KindId) {
    server_app_with(config, true)
}

pub fn client_app(config: ReplicationConfig) -> App {
    client_app_with(config, true)
}

/// A server app, with or without the owner-only component in its protocol.
pub fn server_app_with(config: ReplicationConfig, private: bool) -> (App, KindId) {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::default().with_config(config));
    let kind = if private {
        register(&mut app)
    } else {
        register_public(&mut app)
    };
    (app, kind)
}

/// A client app, with or without the owner-only component in its protocol.
pub fn client_app_with(config: ReplicationConfig, private: bool) -> App {
    let mut app = App::new();
    app.add_plugins(ClientReplicationPlugin { config });
    if private {
        register(&mut app);
    } else {
        register_public(&mut app);
    }
    app
}

/// A tiny deterministic generator for channel decisions (proptest drives the seed).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
}

/// Loss, duplication and reordering (delay of up to `max_delay` ticks) rates.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    pub drop: f64,
    pub duplicate: f64,
    pub max_delay: u64,
}

impl Impairment {
    pub const NONE: Impairment = Impairment {
        drop: 0.0,
        duplicate: 0.0,
        max_delay: 0,
    };
}

/// One direction of an impaired datagram channel.
#[derive(Default)]
pub struct Channel {
    in_flight: BTreeMap<(u64, u64), Vec<u8>>,
    seq: u64,
}

impl Channel {
    pub fn send(&mut self, now: u64, bytes: Vec<u8>, imp: Impairment, rng: &mut Lcg) {
        if rng.chance(imp.drop) {
            return;
        }
        let copies = if rng.chance(imp.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = if imp.max_delay > 0 {
                rng.next() % (imp.max_delay + 1)
            } else {
                0
            };
            // The sequence number shuffles packets due on the same tick.
            self.seq += 1;
            let key = (
                now + delay,
                if imp.max_delay > 0 {
                    rng.next()
                } else {
                    self.seq
                },
            );
            self.in_flight.insert(key, bytes.clone());
        }
    }

    /// Datagrams due by `now`, in delivery order.
    pub fn receive(&mut self, now: u64) -> Vec<Vec<u8>> {
        let later = self.in_flight.split_off(&(now + 1, 0));
        std::mem::replace(&mut self.in_flight, later)
            .into_values()
            .collect()
    }
}

pub fn replica(app: &App) -> &ClientReplica {
    app.world().resource::<ClientReplica>()
}

/// Picks among the replicated entities by an arbitrary index (for random operations).
pub fn picker(world: &mut World) -> impl Fn(usize) -> Option<Entity> + use<> {
    let live: Vec<Entity> = world
        .query_filtered::<Entity, With<Replicated>>()
        .iter(world)
        .collect();
    move |i| (!live.is_empty()).then(|| live[i % live.len()])
}

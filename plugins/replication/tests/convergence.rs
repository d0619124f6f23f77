//! Clients converge on the server's visible state, whatever the channel did to their packets.
//!
//! Random worlds and mutation sequences; clients with room, radius and
//! center-less views; a channel that drops, duplicates and reorders change sets
//! and acks. Once the impairment stops, every client must hold exactly the
//! server's visible state for it (values and checksum) within 10 ticks.
//! Protocols with and without an owner-only component are both drawn: without
//! one, room views that are in step share one encoded delta per tick. So are
//! chained deltas (against the previous set sent, repaired when the client
//! reports a lost link; reports travel the same lossy channel as acks) and
//! deltas against the acknowledged tick. So are clients whose delayed acks
//! make the server hold change sets back (`backoff_after_ticks`), and a
//! server that sheds load (`set_min_send_interval`, drawn per noisy tick).

mod common;

use bevy_ecs::prelude::*;
use common::*;
use glam::Vec2;
use kasagi_replication::client::ClientReplica;
use kasagi_replication::prelude::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Spawn {
        at: (f32, f32),
        health: u16,
        owner: Option<u8>,
        always: bool,
    },
    Despawn(usize),
    Move(usize, f32, f32),
    Teleport(usize, f32, f32),
    SetHealth(usize, u16),
    RemoveHealth(usize),
    SetSecret(usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => ((0f32..400.0, 0f32..400.0), any::<u16>(), prop::option::of(0u8..3), prop::bool::weighted(0.1))
            .prop_map(|(at, health, owner, always)| Op::Spawn { at, health, owner, always }),
        1 => any::<usize>().prop_map(Op::Despawn),
        8 => (any::<usize>(), -3f32..3.0, -3f32..3.0).prop_map(|(i, dx, dy)| Op::Move(i, dx, dy)),
        1 => (any::<usize>(), 0f32..400.0, 0f32..400.0).prop_map(|(i, x, y)| Op::Teleport(i, x, y)),
        3 => (any::<usize>(), any::<u16>()).prop_map(|(i, h)| Op::SetHealth(i, h)),
        1 => any::<usize>().prop_map(Op::RemoveHealth),
        1 => (any::<usize>(), any::<u32>()).prop_map(|(i, c)| Op::SetSecret(i, c)),
    ]
}

fn apply(world: &mut World, kind: KindId, op: &Op) {
    let pick = picker(world);
    match *op {
        Op::Spawn {
            at,
            health,
            owner,
            always,
        } => {
            let mut e = world.spawn((
                Replicated { kind },
                Pos(Vec2::new(at.0, at.1)),
                Health(health),
            ));
            if let Some(o) = owner {
                e.insert((
                    Owner(ClientId(u64::from(o))),
                    Secret {
                        code: 0,
                        note: "mine".into(),
                    },
                ));
            }
            if always {
                e.insert(AlwaysRelevant);
            }
        }
        Op::Despawn(i) => {
            if let Some(e) = pick(i) {
                world.despawn(e);
            }
        }
        Op::Move(i, dx, dy) | Op::Teleport(i, dx, dy) => {
            if let Some(e) = pick(i)
                && let Some(mut p) = world.get_mut::<Pos>(e)
            {
                p.0 = if matches!(op, Op::Move(..)) {
                    p.0 + Vec2::new(dx, dy)
                } else {
                    Vec2::new(dx, dy)
                };
            }
        }
        Op::SetHealth(i, h) => {
            if let Some(e) = pick(i) {
                world.entity_mut(e).insert(Health(h));
            }
        }
        Op::RemoveHealth(i) => {
            if let Some(e) = pick(i) {
                world.entity_mut(e).remove::<Health>();
            }
        }
        Op::SetSecret(i, code) => {
            if let Some(e) = pick(i)
                && let Some(mut s) = world.get_mut::<Secret>(e)
            {
                s.code = code;
            }
        }
    }
}

struct Harness {
    server: bevy_app::App,
    kind: KindId,
    clients: Vec<(ClientId, bevy_app::App, Channel, Channel)>,
    rng: Lcg,
    now: u64,
}

impl Harness {
    /// `private`: whether the protocol has an owner-only component. Without
    /// one, in-step room views take the shared delta (`server::shared`).
    /// `chained`: deltas against the previous set sent, or against the ack.
    /// `backoff`: acks this many ticks behind hold sets back (0: never).
    fn new(seed: u64, views: &[u8], private: bool, chained: bool, backoff: u32) -> Self {
        let config = ReplicationConfig {
            mtu: 300,
            checksum_interval: 4,
            chained_deltas: chained,
            backoff_after_ticks: backoff,
            ..ReplicationConfig::default()
        };
        let (mut server, kind) = server_app_with(config.clone(), private);
        // A few entities to start with; entity 0 is the radius views' center.
        let center = server
            .world_mut()
            .spawn((Replicated { kind }, Pos(Vec2::new(200.0, 200.0)), Health(1)))
            .id();
        server.update();
        let center_id = *server.world().get::<NetId>(center).unwrap();
        let clients = views
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = ClientId(i as u64);
                let view = match v % 3 {
                    0 => View::Room,
                    1 => View::Radius {
                        center: Some(center_id),
                        radius: 60.0,
                    },
                    _ => View::Radius {
                        center: None,
                        radius: 60.0,
                    },
                };
                server
                    .world_mut()
                    .resource_mut::<ReplicationServer>()
                    .connect(id, view);
                (
                    id,
                    client_app_with(config.clone(), private),
                    Channel::default(),
                    Channel::default(),
                )
            })
            .collect();
        Self {
            server,
            kind,
            clients,
            rng: Lcg(seed),
            now: 0,
        }
    }

    /// One tick; `floor`: the server's minimum send interval during it.
    fn tick(&mut self, ops: &[Op], imp: Impairment, floor: u64) {
        self.now += 1;
        for op in ops {
            apply(self.server.world_mut(), self.kind, op);
        }
        self.server
            .world_mut()
            .resource_mut::<ReplicationServer>()
            .set_min_send_interval(floor);
        self.server.update();
        let now = self.now;
        for (id, app, down, up) in &mut self.clients {
            let packets = self
                .server
                .world_mut()
                .resource_mut::<ReplicationServer>()
                .take_packets(*id);
            for p in packets {
                down.send(now, p, imp, &mut self.rng);
            }
            for p in down.receive(now) {
                let _ = ClientReplica::receive(app.world_mut(), &p);
            }
            let mut replica = app.world_mut().resource_mut::<ClientReplica>();
            if let Some(ack) = replica.take_ack() {
                up.send(now, ack.to_le_bytes().to_vec(), imp, &mut self.rng);
            }
            // Missing-baseline reports travel as 16 bytes, acks as 8.
            if let Some((holds, tick)) = replica.take_missing_baseline() {
                let report = [holds.to_le_bytes(), tick.to_le_bytes()].concat();
                up.send(now, report, imp, &mut self.rng);
            }
            let resync = replica.take_resync_request();
            let mut server = self.server.world_mut().resource_mut::<ReplicationServer>();
            if resync {
                server.request_full_state(*id);
            }
            for message in up.receive(now) {
                let word = |i: usize| u64::from_le_bytes(message[i..i + 8].try_into().unwrap());
                // Acks of change sets outside the history window are refused; that is fine.
                let _ = if message.len() == 16 {
                    server.receive_missing_baseline(*id, word(0), word(8))
                } else {
                    server.receive_ack(*id, word(0))
                };
            }
        }
    }

    /// Clients whose replica differs from the server's visible state for them.
    fn diverged(&self) -> Vec<String> {
        let server = self.server.world().resource::<ReplicationServer>();
        let registry = self.server.world().resource::<ReplicationRegistry>();
        self.clients
            .iter()
            .filter_map(|(id, app, _, _)| {
                let want = server.visible_state(*id, registry);
                let replica = replica(app);
                let got = replica.state();
                // Idle ticks send nothing, so the replica's tick may trail; its state may not.
                (got != want).then(|| {
                    let first = want
                        .iter()
                        .find(|(k, v)| got.get(k) != Some(v))
                        .map(|(k, v)| format!("{k:?}: want {v:?}, got {:?}", got.get(k)));
                    format!(
                        "client {id:?}: at {:?} vs {}, {} entities vs {}; first difference {first:?}",
                        replica.tick(),
                        server.tick(),
                        got.len(),
                        want.len()
                    )
                })
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn clients_converge_after_impairment_stops(
        seed in any::<u64>(),
        views in prop::collection::vec(any::<u8>(), 1..5),
        noisy in prop::collection::vec(prop::collection::vec(op(), 0..12), 10..60),
        calm in prop::collection::vec(prop::collection::vec(op(), 0..6), 10),
        drop in 0.0f64..0.5,
        duplicate in 0.0f64..0.3,
        max_delay in 0u64..4,
        private in any::<bool>(),
        chained in any::<bool>(),
        // On a clean link an ack is a tick behind, so 2 and 3 hold sets back
        // only while the channel delays acks: the calm ticks get every set.
        backoff in prop::sample::select(vec![0u32, 2, 3]),
        // A server that sheds load while the channel is noisy: every client
        // gets a set every one to three ticks, the interval drawn per tick.
        floors in prop::collection::vec(1u64..=6, 60),
        shedding in any::<bool>(),
    ) {
        let mut h = Harness::new(seed, &views, private, chained, backoff);
        let imp = Impairment { drop, duplicate, max_delay };
        for (ops, &floor) in noisy.iter().zip(&floors) {
            h.tick(ops, imp, if shedding { floor } else { 1 });
        }
        let mut converged_at = None;
        for (i, ops) in calm.iter().enumerate() {
            h.tick(ops, Impairment::NONE, 1);
            if h.diverged().is_empty() {
                converged_at.get_or_insert(i + 1);
            }
        }
        let diverged = h.diverged();
        prop_assert!(diverged.is_empty(), "still diverged after 10 clean ticks: {diverged:?}");
        prop_assert!(converged_at.is_some());
        // Checksums agree too, and the client worlds hold the same values.
        let server = h.server.world().resource::<ReplicationServer>();
        for (id, app, _, _) in &h.clients {
            let replica = replica(app);
            let want = server.visible_state(*id, h.server.world().resource::<ReplicationRegistry>());
            prop_assert_eq!(replica.len(), want.len());
            prop_assert_eq!(Some(replica.checksum()), server.visible_checksum(*id));
            // A correct protocol never lets a client disagree with a checksum or see a bad packet,
            // however the channel mangled the traffic.
            let stats = replica.stats();
            prop_assert_eq!(stats.checksum_mismatches, 0);
            prop_assert_eq!(stats.rejected, 0);
            // The client world holds the replicated values.
            for (net_id, entity) in want.keys().filter_map(|n| Some((*n, replica.entity(*n)?))) {
                let server_entity = h
                    .server
                    .world()
                    .iter_entities()
                    .find(|e| e.get::<NetId>() == Some(&net_id))
                    .map(|e| e.id())
                    .expect("visible entities exist on the server");
                let client_world = app.world();
                prop_assert_eq!(client_world.get::<Health>(entity), h.server.world().get::<Health>(server_entity));
                let (cp, sp) = (client_world.get::<Pos>(entity).unwrap().0, h.server.world().get::<Pos>(server_entity).unwrap().0);
                prop_assert!((cp - sp).abs().max_element() <= 0.05, "position {cp} vs {sp}");
            }
        }
    }
}

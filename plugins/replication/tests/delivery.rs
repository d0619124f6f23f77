//! Delivery: chained deltas carry one tick of changes however late the acks
//! are, and a lost link is reported by the client and repaired by the server.

mod common;

use bevy_app::App;
use bevy_ecs::prelude::*;
use common::*;
use glam::Vec2;
use kasagi_replication::change_set::{LimitedChangeSet, MoveTo};
use kasagi_replication::client::ClientReplica;
use kasagi_replication::codec::decode_packet;
use kasagi_replication::prelude::*;

const ME: ClientId = ClientId(1);

/// A server with `n` entities in a row and one connected room-view client
/// that holds the full state and acknowledged it.
fn setup(n: usize, chained: bool) -> (App, App, Vec<Entity>) {
    let config = ReplicationConfig {
        chained_deltas: chained,
        checksum_interval: 0,
        // Every tick's set goes out, late acks or not: the tests count
        // what each one carries (tests/backoff.rs holds sets back).
        backoff_after_ticks: 0,
        ..ReplicationConfig::default()
    };
    let (mut server, kind) = server_app(config.clone());
    let entities = (0..n)
        .map(|i| {
            server
                .world_mut()
                .spawn((
                    Replicated { kind },
                    Pos(Vec2::new(i as f32, 0.0)),
                    Health(1),
                ))
                .id()
        })
        .collect();
    server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .connect(ME, View::Room);
    let mut client = client_app(config);
    server.update();
    let ack = deliver_all(&mut server, &mut client);
    server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .receive_ack(ME, ack.expect("the full state applies"))
        .unwrap();
    (server, client, entities)
}

fn nudge(server: &mut App, e: Entity) {
    server.world_mut().get_mut::<Pos>(e).unwrap().0.y += 1.0;
}

fn take(server: &mut App) -> Vec<Vec<u8>> {
    server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .take_packets(ME)
}

/// Applies this tick's packets; returns the ack the client would send.
fn deliver_all(server: &mut App, client: &mut App) -> Option<u64> {
    for p in take(server) {
        ClientReplica::receive(client.world_mut(), &p).expect("valid packet");
    }
    client
        .world_mut()
        .resource_mut::<ClientReplica>()
        .take_ack()
}

fn single_set(packets: &[Vec<u8>]) -> LimitedChangeSet {
    assert_eq!(packets.len(), 1, "one packet per tick");
    decode_packet(&packets[0]).unwrap().set
}

fn converged(server: &App, client: &App) -> bool {
    let state = server.world().resource::<ReplicationServer>();
    let registry = server.world().resource::<ReplicationRegistry>();
    client.world().resource::<ClientReplica>().state() == state.visible_state(ME, registry)
}

/// Acks arrive `lag` ticks late; each tick moves one new entity. Returns how
/// many moves each change set carried.
fn moves_per_set_with_late_acks(chained: bool, lag: usize) -> Vec<usize> {
    let (mut server, mut client, entities) = setup(20, chained);
    let mut acks = std::collections::VecDeque::new();
    let mut counts = Vec::new();
    for &e in &entities[..12] {
        nudge(&mut server, e);
        server.update();
        let packets = take(&mut server);
        counts.push(single_set(&packets).moved.len());
        for p in &packets {
            ClientReplica::receive(client.world_mut(), p).unwrap();
        }
        acks.push_back(
            client
                .world_mut()
                .resource_mut::<ClientReplica>()
                .take_ack(),
        );
        if acks.len() > lag
            && let Some(ack) = acks.pop_front().flatten()
        {
            let mut state = server.world_mut().resource_mut::<ReplicationServer>();
            state.receive_ack(ME, ack).unwrap();
        }
        assert!(converged(&server, &client));
    }
    counts
}

#[test]
fn chained_sets_carry_one_tick_however_late_the_acks() {
    assert!(
        moves_per_set_with_late_acks(true, 5)
            .iter()
            .all(|&n| n == 1),
        "{:?}",
        moves_per_set_with_late_acks(true, 5)
    );
    // Against the acknowledged tick, a set carries every move since: the lag
    // plus one once the pipeline is full.
    let acked = moves_per_set_with_late_acks(false, 5);
    assert_eq!(acked[..6], [1, 2, 3, 4, 5, 6], "{acked:?}");
    assert!(acked[6..].iter().all(|&n| n == 6), "{acked:?}");
}

#[test]
fn a_lost_link_is_reported_and_repaired_even_when_the_world_goes_idle() {
    let (mut server, mut client, entities) = setup(4, true);
    let held = client.world().resource::<ClientReplica>().tick().unwrap();

    // Tick L's change set is lost; nothing changes afterwards.
    nudge(&mut server, entities[0]);
    server.update();
    let lost = single_set(&take(&mut server));
    assert_eq!(lost.baseline, Some(held));
    assert!(!converged(&server, &client));

    // The server keeps sending while L is unacknowledged: an empty link of
    // the chain, which the client cannot apply and reports.
    server.update();
    let probe = take(&mut server);
    let probe_set = single_set(&probe);
    assert_eq!(probe_set.baseline, Some(lost.tick));
    assert!(probe_set.is_empty_delta());
    ClientReplica::receive(client.world_mut(), &probe[0]).unwrap();
    let mut replica = client.world_mut().resource_mut::<ClientReplica>();
    let report = replica.take_missing_baseline();
    assert_eq!(report, Some((held, probe_set.tick)));
    assert_eq!(replica.take_ack(), None);

    // The report breaks the chain: every set repairs against the
    // acknowledged tick, with absolute positions, until one is acknowledged.
    // The first repair is lost too.
    let (holds, tick) = report.unwrap();
    let mut state = server.world_mut().resource_mut::<ReplicationServer>();
    state.receive_missing_baseline(ME, holds, tick).unwrap();
    assert_eq!(state.client_stats(ME).unwrap().repairs, 1);
    server.update();
    let lost_repair = single_set(&take(&mut server));
    assert_eq!(lost_repair.baseline, Some(held));
    nudge(&mut server, entities[2]);
    server.update();
    let repair = take(&mut server);
    let repair_set = single_set(&repair);
    assert_eq!(repair_set.baseline, Some(held));
    assert_eq!(repair_set.moved.len(), 2);
    assert!(
        repair_set
            .moved
            .iter()
            .all(|m| matches!(m.to, MoveTo::Absolute(_)))
    );
    ClientReplica::receive(client.world_mut(), &repair[0]).unwrap();
    assert!(converged(&server, &client));
    let ack = client
        .world_mut()
        .resource_mut::<ClientReplica>()
        .take_ack();
    assert_eq!(ack, Some(repair_set.tick));

    // Its ack resumes the chain; a late report about the broken chain does
    // not cost a second repair.
    let mut state = server.world_mut().resource_mut::<ReplicationServer>();
    state.receive_ack(ME, ack.unwrap()).unwrap();
    state.receive_missing_baseline(ME, holds, tick).unwrap();
    server.update();
    assert!(
        take(&mut server).is_empty(),
        "idle and acknowledged: silent"
    );
    nudge(&mut server, entities[1]);
    server.update();
    let next = single_set(&take(&mut server));
    assert_eq!(
        next.baseline,
        Some(repair_set.tick),
        "chained on the repair"
    );
    assert!(matches!(next.moved[0].to, MoveTo::Delta(_)));
}

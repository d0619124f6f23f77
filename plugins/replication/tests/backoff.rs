//! A client that falls behind, or a server that sheds load, sends change sets
//! less often, and nothing is lost.
//!
//! Three clients watch a world where an entity moves every tick. One acks
//! every set at once. One's acks always reach the server 40 ticks late: far
//! away, but keeping up. The third acks at once, then falls 40 ticks behind
//! (it reads its sets long after they arrive), then catches up. The server
//! sends the first two every tick, and holds the third's sets back to every
//! third tick while it is behind; it still applies every set it gets, and
//! once its acks are prompt again it gets every tick and holds the server's
//! state.
//!
//! A client that stops reading altogether gets one full state while it is
//! away, not one per history window, and catches up when it reads again.
//!
//! A server that sheds load (`ReplicationServer::set_min_send_interval`,
//! as a late room does) sends every client a set every second, third or
//! sixth tick, the clients taking turns, and they lose nothing either.

mod common;

use std::collections::VecDeque;

use bevy_app::App;
use bevy_ecs::entity::Entity;
use common::*;
use glam::Vec2;
use kasagi_replication::client::ClientReplica;
use kasagi_replication::prelude::*;

const PROMPT: ClientId = ClientId(1);
const FAR: ClientId = ClientId(2);
const SLOW: ClientId = ClientId(3);

/// Delivers `client`'s packets of this tick and returns its ack, if any.
fn deliver(server: &mut App, client: ClientId, app: &mut App) -> (usize, Option<u64>) {
    let packets = server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .take_packets(client);
    for p in &packets {
        ClientReplica::receive(app.world_mut(), p).expect("valid packet");
    }
    let ack = app.world_mut().resource_mut::<ClientReplica>().take_ack();
    (packets.len(), ack)
}

fn ack(server: &mut App, client: ClientId, tick: u64) {
    server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .receive_ack(client, tick)
        .expect("an ack of a set sent");
}

/// A server with one entity (the walker) and `clients` connected with room
/// views, and the config both sides share.
fn walker_world(clients: &[ClientId]) -> (App, Entity, ReplicationConfig) {
    let config = ReplicationConfig {
        backoff_after_ticks: 3,
        checksum_interval: 30,
        // As over a transport that delivers full states reliably: the late
        // acks must not make the server send the first one again.
        full_state_resend_ticks: None,
        ..ReplicationConfig::default()
    };
    let (mut server, kind) = server_app(config.clone());
    let walker = server
        .world_mut()
        .spawn((Replicated { kind }, Pos(Vec2::ZERO), Health(1)))
        .id();
    for &client in clients {
        server
            .world_mut()
            .resource_mut::<ReplicationServer>()
            .connect(client, View::Room);
    }
    (server, walker, config)
}

/// The walker steps one unit along x, and the server ticks.
fn walk_and_tick(server: &mut App, walker: Entity) {
    server
        .world_mut()
        .get_mut::<Pos>(walker)
        .expect("the walker")
        .0
        .x += 1.0;
    server.update();
}

#[test]
fn a_client_that_falls_behind_gets_every_third_set_and_catches_up() {
    let (mut server, walker, config) = walker_world(&[PROMPT, FAR, SLOW]);
    let mut prompt = client_app(config.clone());
    let mut far = client_app(config.clone());
    let mut slow = client_app(config);
    // Acks on their way: (tick due at the server, client, ack).
    let mut late: VecDeque<(u64, ClientId, u64)> = VecDeque::new();
    let mut slow_sets = Vec::new();
    for tick in 0..300u64 {
        walk_and_tick(&mut server, walker);
        let (sent, ack_now) = deliver(&mut server, PROMPT, &mut prompt);
        assert_eq!(sent, 1, "the prompt client gets a set every tick ({tick})");
        ack(&mut server, PROMPT, ack_now.expect("applied"));
        let (sent, far_ack) = deliver(&mut server, FAR, &mut far);
        assert_eq!(sent, 1, "the far client gets a set every tick ({tick})");
        if let Some(a) = far_ack {
            late.push_back((tick + 40, FAR, a));
        }
        let (sent, slow_ack) = deliver(&mut server, SLOW, &mut slow);
        if sent > 0 {
            slow_sets.push(tick);
        }
        // Behind from tick 50 to 200.
        let delay = if (50..200).contains(&tick) { 40 } else { 0 };
        if let Some(a) = slow_ack {
            late.push_back((tick + delay, SLOW, a));
        }
        late.make_contiguous().sort_unstable();
        while late.front().is_some_and(|&(due, _, _)| due <= tick) {
            let (_, client, a) = late.pop_front().expect("due");
            ack(&mut server, client, a);
        }
    }
    let server_state = server.world().resource::<ReplicationServer>();
    let stats = |c| server_state.client_stats(c).expect("connected");
    assert_eq!(stats(PROMPT).held_back, 0);
    assert_eq!(stats(FAR).held_back, 0);

    // Held back while behind: about two ticks in three from a few ticks
    // after it fell behind until its acks came back.
    let behind = slow_sets.iter().filter(|t| (60..200).contains(*t)).count();
    assert!(
        (45..=60).contains(&behind),
        "{behind} sets in 140 ticks behind: {slow_sets:?}"
    );
    assert!(stats(SLOW).held_back >= 80, "{:?}", stats(SLOW));
    // Caught up: every tick again.
    assert!((260..300).all(|t| slow_sets.contains(&t)), "{slow_sets:?}");
    // Nothing was lost on the way: every set applied, every checksum agreed,
    // and the replica holds the server's state.
    let registry = server.world().resource::<ReplicationRegistry>();
    for (client, app) in [(FAR, &far), (SLOW, &slow)] {
        let replica = replica(app);
        let applied = replica.stats();
        assert_eq!(applied.missing_baseline, 0, "{client:?}");
        assert_eq!(applied.checksum_mismatches, 0, "{client:?}");
        assert!(applied.checksums_ok >= 9, "{client:?}: {applied:?}");
        assert_eq!(
            replica.state(),
            server_state.visible_state(client, registry),
            "{client:?} holds the server's state"
        );
    }
}

/// A client that stops reading for 400 ticks, six histories, gets one full
/// state while it is away rather than one per history, and nothing at all
/// once that one has waited a whole history; when it reads everything that
/// queued up it catches up and holds the server's state.
#[test]
fn a_client_that_stops_reading_gets_one_full_state_while_away() {
    let (mut server, walker, config) = walker_world(&[SLOW]);
    let mut app = client_app(config);
    // What reached the client's socket while it was not reading.
    let mut unread: Vec<Vec<u8>> = Vec::new();
    let mut sent_while_away = Vec::new();
    for tick in 0..560u64 {
        walk_and_tick(&mut server, walker);
        if (50..450).contains(&tick) {
            let packets = server
                .world_mut()
                .resource_mut::<ReplicationServer>()
                .take_packets(SLOW);
            if !packets.is_empty() {
                sent_while_away.push(tick);
            }
            unread.extend(packets);
            continue;
        }
        for p in unread.drain(..) {
            ClientReplica::receive(app.world_mut(), &p).expect("valid packet");
        }
        let (_, acked) = deliver(&mut server, SLOW, &mut app);
        if let Some(a) = acked {
            ack(&mut server, SLOW, a);
        }
    }
    let stats = replica(&app).stats();
    // Joining, once while away (its acks left the history), and once back
    // (the newest set it had read was older than the history by then).
    assert_eq!(stats.full_states, 3, "{stats:?}");
    // Sets every third tick while it fell behind, then nothing from a
    // history after the full state.
    let last = sent_while_away.last().copied();
    assert!(last.is_some_and(|t| t < 200), "{sent_while_away:?}");
    assert!(sent_while_away.len() < 60, "{sent_while_away:?}");
    let server_state = server.world().resource::<ReplicationServer>();
    let registry = server.world().resource::<ReplicationRegistry>();
    assert_eq!(stats.checksum_mismatches, 0);
    assert_eq!(
        replica(&app).state(),
        server_state.visible_state(SLOW, registry),
        "back in step"
    );
}

#[test]
fn a_server_that_sheds_load_sends_every_client_fewer_sets_in_turns_and_loses_nothing() {
    let mut clients: Vec<ClientId> = (1..=6).map(ClientId).collect();
    let (mut server, walker, config) = walker_world(&clients);
    // Two radius views around the walker too: on held-back ticks they skip
    // their interest update (`interest::defer`) and recompute on their next
    // set. A post at x = 150 enters their view while they are shed (the
    // walker passes x = 90 at tick 90) and leaves it once the floor is 1.
    let kind = server
        .world()
        .get::<Replicated>(walker)
        .expect("replicated")
        .kind;
    server
        .world_mut()
        .spawn((Replicated { kind }, Pos(Vec2::new(150.0, 0.0)), Health(1)));
    server.update();
    let center = *server.world().get::<NetId>(walker).expect("an id");
    for client in [ClientId(7), ClientId(8)] {
        let view = View::Radius {
            center: Some(center),
            radius: 60.0,
        };
        server
            .world_mut()
            .resource_mut::<ReplicationServer>()
            .connect(client, view);
        clients.push(client);
    }
    let mut apps: Vec<App> = clients.iter().map(|_| client_app(config.clone())).collect();
    let mut post_seen = Vec::new();
    // The ticks each client got a set on.
    let mut got: Vec<Vec<u64>> = vec![Vec::new(); clients.len()];
    for tick in 0..340u64 {
        let floor = match tick {
            50..150 => 3,
            150..200 => 2,
            // Past the position trail: the walker's moves go absolute.
            240..300 => 6,
            _ => 1,
        };
        server
            .world_mut()
            .resource_mut::<ReplicationServer>()
            .set_min_send_interval(floor);
        server
            .world_mut()
            .get_mut::<Pos>(walker)
            .expect("the walker")
            .0
            .x += 1.0;
        if tick % 7 == 0 {
            server
                .world_mut()
                .get_mut::<Health>(walker)
                .expect("the walker")
                .0 += 1;
        }
        server.update();
        let mut this_tick = 0;
        for (i, (&client, app)) in clients.iter().zip(apps.iter_mut()).enumerate() {
            let (sent, acked) = deliver(&mut server, client, app);
            if sent > 0 {
                got[i].push(tick);
                this_tick += 1;
            }
            if let Some(a) = acked {
                ack(&mut server, client, a);
            }
        }
        if replica(&apps[6]).len() == 2 {
            post_seen.push(tick);
        }
        // Clients take turns: a shedding tick still sends to some of them
        // (a due checksum goes to all).
        if (60..150).contains(&tick) && tick % 30 != 0 {
            assert!((1..=3).contains(&this_tick), "{this_tick} sets at {tick}");
        }
    }
    for (i, ticks) in got.iter().enumerate() {
        let within = |r: std::ops::Range<u64>| ticks.iter().filter(|t| r.contains(*t)).count();
        // Every third tick (and the due checksums at 60, 90, 120), every
        // second, every tick, every sixth (and at 270), then every tick again.
        assert!((30..=35).contains(&within(55..145)), "{i}: {ticks:?}");
        assert!((24..=27).contains(&within(150..200)), "{i}: {ticks:?}");
        assert_eq!(within(200..240), 40, "{i}: {ticks:?}");
        assert!((9..=11).contains(&within(245..300)), "{i}: {ticks:?}");
        assert_eq!(within(305..340), 35, "{i}: {ticks:?}");
        let widest = |r: std::ops::Range<u64>| {
            let t: Vec<u64> = ticks.iter().copied().filter(|t| r.contains(t)).collect();
            t.windows(2).map(|w| w[1] - w[0]).max()
        };
        assert!(widest(0..240) <= Some(3), "{i}: {ticks:?}");
        assert!(widest(0..340) <= Some(6), "{i}: {ticks:?}");
    }
    // The post entered during the shedding and left after it.
    let (first, last) = (post_seen.first(), post_seen.last());
    assert!(
        first.is_some_and(|t| (90..100).contains(t)),
        "{post_seen:?}"
    );
    assert!(
        last.is_some_and(|t| (200..235).contains(t)),
        "{post_seen:?}"
    );
    let server_state = server.world().resource::<ReplicationServer>();
    let totals = server_state.send_totals();
    assert!(
        totals.shed > 0 && totals.shed == totals.held_back,
        "{totals:?}"
    );
    let registry = server.world().resource::<ReplicationRegistry>();
    for (&client, app) in clients.iter().zip(&apps) {
        let replica = replica(app);
        let applied = replica.stats();
        assert_eq!(applied.missing_baseline, 0, "{client:?}");
        assert_eq!(applied.checksum_mismatches, 0, "{client:?}");
        assert_eq!(
            replica.state(),
            server_state.visible_state(client, registry),
            "{client:?} holds the server's state"
        );
    }
}

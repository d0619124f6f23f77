//! Real UDP on 127.0.0.1: a `GameServer` in-process and native clients —
//! visibility, security, hostile traffic, loss.

mod common;
mod net_support;

use std::net::UdpSocket;
use std::time::Duration;

use kasagi::sim::Player;
use kasagi_net::client::{ClientAuth, GameClient, NetClient, SyncState};
use kasagi_net::keys::{Role, mint_token};
use kasagi_net::protocol::ErrorCode;
use kasagi_net::server::ServerAuth;
use kasagi_replication::AppReplicateExt;
use net_support::*;

#[test]
fn two_clients_see_each_others_moves_and_a_late_joiner_gets_the_full_state() {
    let server = start(ServerAuth::Insecure);
    let mut a = insecure(server.addr, 1);
    let mut b = insecure(server.addr, 2);
    let synced = pump(&mut [&mut a, &mut b], Duration::from_secs(10), |cs| {
        cs.iter().all(|c| c.state() == SyncState::Synced)
    });
    assert!(synced, "states: {:?} {:?}", a.state(), b.state());
    let (pa, pb) = (a.player().unwrap(), b.player().unwrap());

    // Wait until each sees the other's avatar, note where, then walk.
    assert!(pump(&mut [&mut a, &mut b], Duration::from_secs(5), |cs| {
        seen_at(cs[0], pb).is_some() && seen_at(cs[1], pa).is_some()
    }));
    let a_seen_by_b = seen_at(&mut b, pa).unwrap();
    let b_seen_by_a = seen_at(&mut a, pb).unwrap();
    // Walk towards the middle of the 256×256 map, away from its edges.
    let inward = |p: glam::Vec2| {
        (glam::Vec2::splat(128.0) - p)
            .normalize_or_zero()
            .to_array()
    };
    let (a_dir, b_dir) = (inward(a_seen_by_b), inward(b_seen_by_a));
    let moved = pump(&mut [&mut a, &mut b], Duration::from_secs(10), |cs| {
        cs[0].send_input(a_dir, None);
        cs[1].send_input(b_dir, None);
        let a_now = seen_at(cs[1], pa).unwrap_or(a_seen_by_b);
        let b_now = seen_at(cs[0], pb).unwrap_or(b_seen_by_a);
        (a_now - a_seen_by_b).length() > 5.0 && (b_now - b_seen_by_a).length() > 5.0
    });
    assert!(
        moved,
        "each client sees the other's avatar walk: a {:?} -> {:?}, stats {:?} / {:?}",
        a_seen_by_b,
        seen_at(&mut b, pa),
        a.replica().stats(),
        b.replica().stats()
    );

    // A late joiner starts from a full state holding both avatars.
    let mut c = insecure(server.addr, 3);
    assert!(pump(
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(10),
        |cs| {
            cs[2].state() == SyncState::Synced
                && seen_at(cs[2], pa).is_some()
                && seen_at(cs[2], pb).is_some()
        }
    ));
    assert!(c.replica().stats().full_states >= 1);
    let world = c.app_mut().world_mut();
    assert!(world.query::<&Player>().iter(world).count() >= 3);
    for client in [&a, &b, &c] {
        assert_eq!(client.replica().stats().checksum_mismatches, 0);
    }
}

#[test]
fn forged_and_expired_tokens_are_rejected() {
    let key = [7u8; 32];
    let server = start(ServerAuth::Secure { key });
    let forged = mint_token(
        &[9u8; 32],
        5,
        server.addr,
        Role::Player,
        Duration::from_secs(60),
    )
    .unwrap();
    let mut bad = GameClient::new(
        NetClient::connect(ClientAuth::Secure(Box::new(forged))).unwrap(),
        client_app(),
        "village",
    );
    let good_token =
        mint_token(&key, 6, server.addr, Role::Player, Duration::from_secs(60)).unwrap();
    let mut good = GameClient::new(
        NetClient::connect(ClientAuth::Secure(Box::new(good_token))).unwrap(),
        client_app(),
        "village",
    );
    assert!(pump(&mut [&mut good], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let expiring = mint_token(&key, 7, server.addr, Role::Player, Duration::from_secs(1)).unwrap();
    std::thread::sleep(Duration::from_millis(2_100));
    let mut expired = GameClient::new(
        NetClient::connect(ClientAuth::Secure(Box::new(expiring))).unwrap(),
        client_app(),
        "village",
    );
    let _ = pump(
        &mut [&mut bad, &mut expired],
        Duration::from_secs(2),
        |_| false,
    );
    for refused in [&bad, &expired] {
        assert_eq!(refused.state(), SyncState::Connecting);
        assert!(!refused.net().is_connected());
    }
}

#[test]
fn a_client_with_another_protocol_gets_a_clear_error() {
    let server = start(ServerAuth::Insecure);
    let mut app = client_app();
    app.replicate_kind("dragons");
    let net = NetClient::connect(ClientAuth::Insecure {
        client_id: 11,
        server: server.addr,
        role: Role::Player,
    })
    .unwrap();
    let mut client = GameClient::new(net, app, "village");
    assert!(pump(&mut [&mut client], Duration::from_secs(10), |cs| cs
        [0]
    .last_error()
    .is_some()));
    let (code, message) = client.last_error().unwrap();
    assert_eq!(*code, ErrorCode::ProtocolMismatch);
    assert!(message.contains("update the client"), "{message}");
}

#[test]
fn garbage_datagrams_do_not_disturb_the_server() {
    let server = start(ServerAuth::Insecure);
    let mut a = insecure(server.addr, 21);
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..2_000u32 {
        // Up to the largest UDP datagram: oversized for netcode, which takes at most 1,400 bytes.
        let len = if i % 50 == 0 {
            65_000
        } else {
            (i as usize * 7919) % 1_500
        };
        let bytes: Vec<u8> = (0..len)
            .map(|j| (j as u32 ^ i.wrapping_mul(2654435761)) as u8)
            .collect();
        let _ = junk.send_to(&bytes, server.addr);
    }
    let applied = a.replica().stats().applied;
    assert!(pump(&mut [&mut a], Duration::from_secs(5), |cs| {
        cs[0].send_input([0.5, 0.5], None);
        cs[0].replica().stats().applied > applied + 30
    }));
    assert_eq!(a.state(), SyncState::Synced);
}

#[test]
fn clients_behind_a_lossy_relay_converge_once_the_loss_stops() {
    // Bound, not `_`: the server runs until the test ends.
    let (_server, relay, relay_addr) = start_behind_relay(ServerAuth::Insecure);
    let mut a = insecure(relay_addr, 51);
    let mut b = insecure(relay_addr, 52);
    assert!(pump(&mut [&mut a, &mut b], Duration::from_secs(15), |cs| {
        cs.iter().all(|c| c.state() == SyncState::Synced)
    }));

    relay.set(Impairment {
        drop: 0.2,
        duplicate: 0.1,
        max_delay_ms: 60,
    });
    let mut step = 0u32;
    let _ = pump(&mut [&mut a, &mut b], Duration::from_secs(4), |cs| {
        step += 1;
        let angle = step as f32 * 0.05;
        cs[0].send_input([angle.cos(), angle.sin()], None);
        cs[1].send_input([-angle.sin(), angle.cos()], None);
        false
    });

    relay.set(Impairment {
        drop: 0.0,
        duplicate: 0.0,
        max_delay_ms: 0,
    });
    let ok_before = [
        a.replica().stats().checksums_ok,
        b.replica().stats().checksums_ok,
    ];
    let converged = pump(&mut [&mut a, &mut b], Duration::from_secs(6), |cs| {
        cs.iter().zip(ok_before).all(|(c, before)| {
            c.state() == SyncState::Synced && c.replica().stats().checksums_ok >= before + 2
        })
    });
    assert!(
        converged,
        "a {:?} {:?}, b {:?} {:?}",
        a.state(),
        a.replica().stats(),
        b.state(),
        b.replica().stats()
    );
    // The server's checksums prove each replica equals the server's view; none ever disagreed.
    for c in [&a, &b] {
        assert_eq!(c.replica().stats().checksum_mismatches, 0);
    }
}

#[test]
fn a_flooding_client_is_cut_off_and_others_carry_on() {
    let server = start(ServerAuth::Insecure);
    let mut good = insecure(server.addr, 61);
    let mut flooder = insecure(server.addr, 62);
    assert!(pump(
        &mut [&mut good, &mut flooder],
        Duration::from_secs(10),
        |cs| cs.iter().all(|c| c.state() == SyncState::Synced)
    ));
    let cut_off = pump(
        &mut [&mut good, &mut flooder],
        Duration::from_secs(10),
        |cs| {
            for _ in 0..500 {
                cs[1].send_input([1.0, 0.0], None);
            }
            cs[1]
                .last_error()
                .is_some_and(|(code, _)| *code == ErrorCode::RateLimited)
        },
    );
    assert!(cut_off, "the flooder gets a RateLimited error");
    let applied = good.replica().stats().applied;
    assert!(pump(&mut [&mut good], Duration::from_secs(5), |cs| cs[0]
        .replica()
        .stats()
        .applied
        > applied + 20));
    assert_eq!(good.state(), SyncState::Synced);
}

#[test]
fn replayed_datagrams_change_nothing() {
    let key = [3u8; 32];
    let (_server, relay, relay_addr) = start_behind_relay(ServerAuth::Secure { key });
    let token =
        |id| mint_token(&key, id, relay_addr, Role::Player, Duration::from_secs(60)).unwrap();
    let connect = |id| {
        GameClient::new(
            NetClient::connect(ClientAuth::Secure(Box::new(token(id)))).unwrap(),
            client_app(),
            "village",
        )
    };
    let (mut a, mut b) = (connect(131), connect(132));
    assert!(pump(&mut [&mut a, &mut b], Duration::from_secs(10), |cs| {
        cs.iter().all(|c| c.state() == SyncState::Synced)
    }));
    let me = a.player().unwrap();

    // Record a walk one way, then turn round and replay the old traffic at the server.
    let _ = pump(&mut [&mut a, &mut b], Duration::from_secs(1), |cs| {
        cs[0].send_input([1.0, 0.0], None);
        false
    });
    let applied = b.replica().stats().applied;
    let mut step = 0u32;
    let turned = pump(&mut [&mut a, &mut b], Duration::from_secs(3), |cs| {
        cs[0].send_input([-1.0, 0.0], None);
        step += 1;
        if step.is_multiple_of(50) {
            relay.replay();
        }
        false
    });
    assert!(!turned);
    let _ = pump(&mut [&mut a, &mut b], Duration::from_millis(300), |cs| {
        cs[0].send_input([-1.0, 0.0], None);
        false
    });
    for c in [&a, &b] {
        assert_eq!(c.state(), SyncState::Synced);
        assert_eq!(c.replica().stats().checksum_mismatches, 0);
    }
    assert!(
        b.replica().stats().applied > applied + 30,
        "the other client kept following"
    );
    // The avatar follows the newest input, not the replayed old ones.
    let entity = b.replica().entity(me).unwrap();
    let velocity = b
        .app()
        .world()
        .get::<kasagi::sim::Velocity>(entity)
        .unwrap()
        .0;
    assert!(velocity.x < 0.0, "velocity {velocity}");
}

#[test]
fn more_rooms_than_workers_all_tick_and_serve_their_clients() {
    // One worker for four rooms: the pool must take turns among them.
    let mut options = options(ServerAuth::Insecure, Vec::new());
    options.room_threads = 1;
    let server = start_options(options);
    let mut clients: Vec<GameClient> = (0..4u64)
        .map(|i| {
            let net = NetClient::connect(ClientAuth::Insecure {
                client_id: 100 + i,
                server: server.addr,
                role: Role::Player,
            })
            .unwrap();
            GameClient::new(net, client_app(), format!("village-{i}"))
        })
        .collect();
    let mut refs: Vec<&mut GameClient> = clients.iter_mut().collect();
    let synced = pump(&mut refs, Duration::from_secs(10), |cs| {
        cs.iter().all(|c| c.state() == SyncState::Synced)
    });
    assert!(
        synced,
        "{:?}",
        refs.iter().map(|c| c.state()).collect::<Vec<_>>()
    );
    let start: Vec<u64> = refs
        .iter()
        .map(|c| c.replica().tick().unwrap_or(0))
        .collect();
    // Every room keeps ticking, and its client follows.
    let ticking = pump(&mut refs, Duration::from_secs(10), |cs| {
        cs.iter()
            .zip(&start)
            .all(|(c, s)| c.replica().tick().unwrap_or(0) >= s + 20)
    });
    let ticks: Vec<_> = refs.iter().map(|c| c.replica().tick()).collect();
    assert!(ticking, "replica ticks {ticks:?} from {start:?}");
    // Each room is a world of its own: its players, and one client's avatar.
    let players = common::small_world(3).population.players as usize + 1;
    for client in refs {
        assert_eq!(client.replica().stats().checksum_mismatches, 0);
        let world = client.app_mut().world_mut();
        assert_eq!(world.query::<&Player>().iter(world).count(), players);
    }
}

//! Real UDP on 127.0.0.1: a `GameServer` in-process and native clients.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy_app::App;
use kasagi::replication::register_village;
use kasagi::serve::{GameServer, ServeOptions};
use kasagi::sim::{Player, Position};
use kasagi_net::client::{ClientAuth, GameClient, NetClient, SyncState};
use kasagi_net::keys::{Role, mint_token};
use kasagi_net::protocol::ErrorCode;
use kasagi_net::server::ServerAuth;
use kasagi_replication::client::ClientReplicationPlugin;
use kasagi_replication::{AppReplicateExt, NetId};

struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(auth: ServerAuth) -> Running {
    let options = ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        world: common::small_world(3),
        auth,
        view_radius: 10_000.0,
        empty_room_grace: Duration::from_secs(5),
        reconnect_grace: Duration::from_secs(60),
        max_clients: 64,
    };
    let server = GameServer::bind(options).expect("bind 127.0.0.1");
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || server.run(flag, Duration::from_secs(3600), |_| {}));
    Running {
        addr,
        stop,
        thread: Some(thread),
    }
}

fn client_app() -> App {
    let mut app = App::new();
    app.add_plugins(ClientReplicationPlugin::default());
    register_village(&mut app);
    app
}

fn insecure(server: SocketAddr, id: u64) -> GameClient {
    let net = NetClient::connect(ClientAuth::Insecure {
        client_id: id,
        server,
        role: Role::Player,
    })
    .unwrap();
    GameClient::new(net, client_app(), "village")
}

/// Pumps clients every 5 ms until `done` holds or `limit` passes.
fn pump(
    clients: &mut [&mut GameClient],
    limit: Duration,
    mut each: impl FnMut(&mut [&mut GameClient]) -> bool,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        for c in clients.iter_mut() {
            let _ = c.update();
        }
        if each(clients) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Where `client` sees `player`.
fn seen_at(client: &mut GameClient, player: NetId) -> Option<glam::Vec2> {
    let entity = client.replica().entity(player)?;
    client.app().world().get::<Position>(entity).map(|p| p.0)
}

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
fn tokens_from_another_key_are_rejected() {
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
    let _ = pump(&mut [&mut bad], Duration::from_secs(2), |_| false);
    assert_eq!(bad.state(), SyncState::Connecting);
    assert!(!bad.net().is_connected());
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
        let len = (i as usize * 7919) % 1_500;
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
fn a_reconnect_within_grace_resumes_the_same_player_by_delta() {
    let server = start(ServerAuth::Insecure);
    let mut a = insecure(server.addr, 41);
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let full_state_bytes = a.net().bytes_received();
    let player = a.player().unwrap();
    let _ = pump(&mut [&mut a], Duration::from_millis(500), |_| false);

    // The connection drops (no goodbye); the client comes back on a new one.
    let net = NetClient::connect(ClientAuth::Insecure {
        client_id: 42,
        server: server.addr,
        role: Role::Player,
    })
    .unwrap();
    a.reconnect(net);
    let applied = a.replica().stats().applied;
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| {
        cs[0].state() == SyncState::Synced && cs[0].replica().stats().applied > applied
    }));
    assert_eq!(a.player(), Some(player), "the same avatar");
    assert_eq!(
        a.replica().stats().full_states,
        1,
        "resumed by delta, no second full state"
    );
    let resume_bytes = a.net().bytes_received();
    assert!(
        resume_bytes < full_state_bytes,
        "resume took {resume_bytes} bytes, the full state {full_state_bytes}"
    );
    assert_eq!(a.stats().reconnects, 1);
    // It keeps following the server.
    let before = a.replica().stats().applied;
    assert!(pump(&mut [&mut a], Duration::from_secs(5), |cs| {
        cs[0].send_input([0.3, 0.3], None);
        cs[0].replica().stats().applied > before + 10
    }));
}

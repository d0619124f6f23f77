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
    start_with(auth, Vec::new())
}

fn options(auth: ServerAuth, public_addresses: Vec<SocketAddr>) -> ServeOptions {
    ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        world: common::small_world(3),
        auth,
        view_radius: 10_000.0,
        empty_room_grace: Duration::from_secs(5),
        reconnect_grace: Duration::from_secs(60),
        max_clients: 64,
        public_addresses,
        rate_limits: Default::default(),
    }
}

fn start_with(auth: ServerAuth, public_addresses: Vec<SocketAddr>) -> Running {
    start_options(options(auth, public_addresses))
}

fn start_options(options: ServeOptions) -> Running {
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

/// Datagram impairment of the relay.
#[derive(Clone, Copy)]
struct Impairment {
    drop: f64,
    duplicate: f64,
    max_delay_ms: u64,
}

/// A UDP relay between clients and the server that drops, duplicates and reorders datagrams.
struct Relay {
    impairment: Arc<std::sync::Mutex<Impairment>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Relay {
    fn bind() -> (UdpSocket, SocketAddr) {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = front.local_addr().unwrap();
        (front, addr)
    }

    fn start(front: UdpSocket, server: SocketAddr) -> Relay {
        let impairment = Arc::new(std::sync::Mutex::new(Impairment {
            drop: 0.0,
            duplicate: 0.0,
            max_delay_ms: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (imp, flag) = (impairment.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            front.set_nonblocking(true).unwrap();
            let mut upstream: Vec<(SocketAddr, UdpSocket)> = Vec::new();
            // (due, to the server?, upstream index, bytes)
            let mut queue: Vec<(Instant, bool, usize, Vec<u8>)> = Vec::new();
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut random = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 1_000_000) as f64 / 1_000_000.0
            };
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                let i = *imp.lock().unwrap();
                let schedule = |queue: &mut Vec<_>,
                                to_server: bool,
                                index: usize,
                                bytes: &[u8],
                                r: &mut dyn FnMut() -> f64| {
                    if r() < i.drop {
                        return;
                    }
                    let copies = if r() < i.duplicate { 2 } else { 1 };
                    for _ in 0..copies {
                        let delay = Duration::from_millis((r() * i.max_delay_ms as f64) as u64);
                        queue.push((now + delay, to_server, index, bytes.to_vec()));
                    }
                };
                while let Ok((n, from)) = front.recv_from(&mut buf) {
                    let index = match upstream.iter().position(|(a, _)| *a == from) {
                        Some(index) => index,
                        None => {
                            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                            s.set_nonblocking(true).unwrap();
                            upstream.push((from, s));
                            upstream.len() - 1
                        }
                    };
                    schedule(&mut queue, true, index, &buf[..n], &mut random);
                }
                for (index, (_, socket)) in upstream.iter().enumerate() {
                    while let Ok(n) = socket.recv(&mut buf) {
                        schedule(&mut queue, false, index, &buf[..n], &mut random);
                    }
                }
                queue.sort_by_key(|(due, ..)| *due);
                let ready = queue.iter().take_while(|(due, ..)| *due <= now).count();
                for (_, to_server, index, bytes) in queue.drain(..ready) {
                    let (client, socket) = &upstream[index];
                    let _ = if to_server {
                        socket.send_to(&bytes, server)
                    } else {
                        front.send_to(&bytes, client)
                    };
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        Relay {
            impairment,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, impairment: Impairment) {
        *self.impairment.lock().unwrap() = impairment;
    }
}

#[test]
fn clients_behind_a_lossy_relay_converge_once_the_loss_stops() {
    let (front, relay_addr) = Relay::bind();
    let server = start_with(ServerAuth::Insecure, vec![relay_addr]);
    let relay = Relay::start(front, server.addr);
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

fn insecure_as(server: SocketAddr, id: u64, role: Role) -> GameClient {
    let net = NetClient::connect(ClientAuth::Insecure {
        client_id: id,
        server,
        role,
    })
    .unwrap();
    GameClient::new(net, client_app(), "village")
}

fn npcs_seen(client: &mut GameClient) -> usize {
    let world = client.app_mut().world_mut();
    world.query::<&kasagi::sim::Npc>().iter(world).count()
}

#[test]
fn commands_take_effect_once_however_often_they_are_retried() {
    use kasagi_net::client::CommandResult;
    use kasagi_net::protocol::{Command, CommandArgs, CommandOutcome, encode};
    let server = start(ServerAuth::Insecure);
    let mut gm = insecure_as(server.addr, 71, Role::Gm);
    assert!(pump(&mut [&mut gm], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let before = npcs_seen(&mut gm);

    // The same command id sent twenty times: one villager appears.
    let command = Command {
        id: [42; 16],
        sequence: 1,
        kind: "spawn".into(),
        payload: encode(&CommandArgs::Spawn {
            kind: "npcs".into(),
            at: [100.0, 100.0],
        }),
        expected_version: None,
    };
    for _ in 0..20 {
        gm.send_raw(&kasagi_net::protocol::ClientMessage::Command(
            command.clone(),
        ));
    }
    assert!(pump(
        &mut [&mut gm],
        Duration::from_secs(5),
        |cs| npcs_seen(cs[0]) == before + 1
    ));
    let _ = pump(&mut [&mut gm], Duration::from_secs(1), |_| false);
    assert_eq!(npcs_seen(&mut gm), before + 1, "exactly once");

    // Through the client library, with its retries: acknowledged and applied once.
    let id = gm.send_command(
        "spawn",
        &CommandArgs::Spawn {
            kind: "npcs".into(),
            at: [50.0, 50.0],
        },
        None,
    );
    assert!(pump(&mut [&mut gm], Duration::from_secs(5), |cs| cs[0]
        .command_result(&id)
        .is_some()));
    assert_eq!(
        gm.command_result(&id),
        Some(&CommandResult::Done(CommandOutcome::Applied {
            version: None
        }))
    );
    assert!(pump(
        &mut [&mut gm],
        Duration::from_secs(5),
        |cs| npcs_seen(cs[0]) == before + 2
    ));

    // Versioned writes (entity 3 is a resource node: resources get the first ids):
    // a stale expected version is a conflict carrying the current value.
    let set = |v: f64| CommandArgs::SetField {
        entity: 3,
        field: "resource_node.amount".into(),
        value: v,
    };
    let first = gm.send_command("set_field", &set(1.0), Some(0));
    let stale = gm.send_command("set_field", &set(2.0), Some(0));
    assert!(pump(&mut [&mut gm], Duration::from_secs(5), |cs| {
        cs[0].command_result(&first).is_some() && cs[0].command_result(&stale).is_some()
    }));
    assert_eq!(
        gm.command_result(&first),
        Some(&CommandResult::Done(CommandOutcome::Applied {
            version: Some(1)
        }))
    );
    assert_eq!(
        gm.command_result(&stale),
        Some(&CommandResult::Conflict {
            version: 1,
            value: 1.0
        })
    );
}

#[test]
fn players_cannot_run_game_master_commands() {
    use kasagi_net::client::CommandResult;
    use kasagi_net::protocol::{CommandArgs, CommandOutcome};
    let server = start(ServerAuth::Insecure);
    let mut player = insecure_as(server.addr, 81, Role::Player);
    let mut other = insecure_as(server.addr, 82, Role::Player);
    assert!(pump(
        &mut [&mut player, &mut other],
        Duration::from_secs(10),
        |cs| { cs.iter().all(|c| c.state() == SyncState::Synced) }
    ));
    let victim = other.player().unwrap();
    let id = player.send_command(
        "teleport",
        &CommandArgs::Teleport {
            entity: victim.0,
            to: [1.0, 1.0],
        },
        None,
    );
    assert!(pump(
        &mut [&mut player, &mut other],
        Duration::from_secs(5),
        |cs| cs[0].command_result(&id).is_some()
    ));
    assert_eq!(
        player.command_result(&id),
        Some(&CommandResult::Done(CommandOutcome::Forbidden))
    );
    let at = seen_at(&mut other, victim).unwrap();
    assert!(
        at.distance(glam::Vec2::ONE) > 1.0,
        "the other avatar did not move"
    );
}

#[test]
fn a_player_who_does_not_return_is_removed_after_the_grace_period() {
    let server = start_options(ServeOptions {
        reconnect_grace: Duration::from_secs(1),
        ..options(ServerAuth::Insecure, Vec::new())
    });
    let mut stays = insecure(server.addr, 91);
    let mut goes = insecure(server.addr, 92);
    assert!(pump(
        &mut [&mut stays, &mut goes],
        Duration::from_secs(10),
        |cs| { cs.iter().all(|c| c.state() == SyncState::Synced) }
    ));
    let gone = goes.player().unwrap();
    assert!(pump(&mut [&mut stays], Duration::from_secs(5), |cs| {
        seen_at(cs[0], gone).is_some()
    }));
    goes.leave();
    drop(goes);
    assert!(
        pump(&mut [&mut stays], Duration::from_secs(10), |cs| seen_at(
            cs[0], gone
        )
        .is_none()),
        "the avatar is despawned once its client is gone"
    );
}

#[test]
fn the_own_player_is_predicted_and_reconciled() {
    fn step(p: [f32; 2], m: [f32; 2], dt: f32) -> [f32; 2] {
        // The village's rule: players move at `tuning.player_speed` (20 units/s).
        [p[0] + m[0] * 20.0 * dt, p[1] + m[1] * 20.0 * dt]
    }
    let server = start(ServerAuth::Insecure);
    let mut a = insecure(server.addr, 111);
    a.predict_with(step);
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let me = a.player().unwrap();
    assert!(pump(&mut [&mut a], Duration::from_secs(5), |cs| seen_at(
        cs[0], me
    )
    .is_some()));
    let start_at = seen_at(&mut a, me).unwrap();
    let dir = (glam::Vec2::splat(128.0) - start_at).normalize_or_zero();

    a.send_input(dir.to_array(), None);
    assert_eq!(a.unacked_inputs(), 1, "the input waits for the server");
    let mut leads = 0;
    assert!(pump(&mut [&mut a], Duration::from_secs(3), |cs| {
        cs[0].send_input(dir.to_array(), None);
        let auth = seen_at(cs[0], me).unwrap();
        let predicted = glam::Vec2::from_array(cs[0].predicted_position(auth.to_array()));
        let ahead = (predicted - auth).dot(dir);
        // The prediction runs ahead of the server, never behind, by about a round
        // trip of walking (bounded loosely here: debug build, shared cores).
        assert!((-0.01..20.0).contains(&ahead), "ahead by {ahead}");
        if ahead > 0.0 {
            leads += 1;
        }
        (auth - start_at).length() > 10.0
    }));
    assert!(leads > 0, "prediction ran ahead of the server");
    // Once the server has applied every input, prediction and server agree.
    assert!(pump(&mut [&mut a], Duration::from_secs(3), |cs| cs[0]
        .unacked_inputs()
        == 0));
    let auth = seen_at(&mut a, me).unwrap();
    assert_eq!(a.predicted_position(auth.to_array()), auth.to_array());
}

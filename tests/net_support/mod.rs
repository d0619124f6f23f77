//! Shared harness of the UDP tests: an in-process server, insecure clients,
//! a pump loop, and an impairing relay.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy_app::App;
use kasagi::replication::register_village;
use kasagi::serve::{GameServer, ServeOptions};
use kasagi::sim::Position;
use kasagi_net::client::{ClientAuth, GameClient, NetClient};
use kasagi_net::keys::Role;
use kasagi_net::server::ServerAuth;
use kasagi_replication::NetId;
use kasagi_replication::client::ClientReplicationPlugin;

pub struct Running {
    pub addr: SocketAddr,
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

pub fn start(auth: ServerAuth) -> Running {
    start_with(auth, Vec::new())
}

pub fn options(auth: ServerAuth, public_addresses: Vec<SocketAddr>) -> ServeOptions {
    ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        world: super::common::small_world(3),
        auth,
        view_radius: 10_000.0,
        empty_room_grace: Duration::from_secs(5),
        reconnect_grace: Duration::from_secs(60),
        max_clients: 64,
        public_addresses,
        rate_limits: Default::default(),
        persist: None,
        resume_rooms: Vec::new(),
        load_window: None,
        room_threads: 2,
    }
}

pub fn start_with(auth: ServerAuth, public_addresses: Vec<SocketAddr>) -> Running {
    start_options(options(auth, public_addresses))
}

pub fn start_options(options: ServeOptions) -> Running {
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

pub fn client_app() -> App {
    let mut app = App::new();
    app.add_plugins(ClientReplicationPlugin::default());
    register_village(&mut app);
    app
}

pub fn insecure(server: SocketAddr, id: u64) -> GameClient {
    let net = NetClient::connect(ClientAuth::Insecure {
        client_id: id,
        server,
        role: Role::Player,
    })
    .unwrap();
    GameClient::new(net, client_app(), "village")
}

/// Pumps clients every 5 ms until `done` holds or `limit` passes.
pub fn pump(
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
pub fn seen_at(client: &mut GameClient, player: NetId) -> Option<glam::Vec2> {
    let entity = client.replica().entity(player)?;
    client.app().world().get::<Position>(entity).map(|p| p.0)
}

/// Datagram impairment of the relay.
#[derive(Clone, Copy)]
pub struct Impairment {
    pub drop: f64,
    pub duplicate: f64,
    pub max_delay_ms: u64,
}

/// A UDP relay between clients and the server that drops, duplicates and reorders datagrams.
pub struct Relay {
    impairment: Arc<std::sync::Mutex<Impairment>>,
    replay: Arc<AtomicBool>,
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
    pub fn bind() -> (UdpSocket, SocketAddr) {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = front.local_addr().unwrap();
        (front, addr)
    }

    pub fn start(front: UdpSocket, server: SocketAddr) -> Relay {
        let impairment = Arc::new(std::sync::Mutex::new(Impairment {
            drop: 0.0,
            duplicate: 0.0,
            max_delay_ms: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let replay = Arc::new(AtomicBool::new(false));
        let (imp, flag, replay_flag) = (impairment.clone(), stop.clone(), replay.clone());
        let thread = std::thread::spawn(move || {
            front.set_nonblocking(true).unwrap();
            let mut upstream: Vec<(SocketAddr, UdpSocket)> = Vec::new();
            // The last client → server datagrams, for replay attacks.
            let mut recorded: std::collections::VecDeque<(usize, Vec<u8>)> = Default::default();
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
                    if recorded.len() >= 4_000 {
                        recorded.pop_front();
                    }
                    recorded.push_back((index, buf[..n].to_vec()));
                    schedule(&mut queue, true, index, &buf[..n], &mut random);
                }
                if replay_flag.swap(false, Ordering::Relaxed) {
                    // Send old datagrams again, from the same source address.
                    for (index, bytes) in &recorded {
                        let _ = upstream[*index].1.send_to(bytes, server);
                    }
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
            replay,
            stop,
            thread: Some(thread),
        }
    }

    /// Replays every recorded client datagram to the server once.
    pub fn replay(&self) {
        self.replay.store(true, Ordering::Relaxed);
    }

    pub fn set(&self, impairment: Impairment) {
        *self.impairment.lock().unwrap() = impairment;
    }
}

/// A server reachable through a fresh [`Relay`] (its address is the third
/// value; the server's own address stays reachable directly).
pub fn start_behind_relay(auth: ServerAuth) -> (Running, Relay, SocketAddr) {
    let (front, relay_addr) = Relay::bind();
    let server = start_with(auth, vec![relay_addr]);
    let relay = Relay::start(front, server.addr);
    (server, relay, relay_addr)
}

pub fn insecure_as(server: SocketAddr, id: u64, role: Role) -> GameClient {
    let net = NetClient::connect(ClientAuth::Insecure {
        client_id: id,
        server,
        role,
    })
    .unwrap();
    GameClient::new(net, client_app(), "village")
}

pub fn npcs_seen(client: &mut GameClient) -> usize {
    let world = client.app_mut().world_mut();
    world.query::<&kasagi::sim::Npc>().iter(world).count()
}

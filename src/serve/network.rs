//! The network thread: socket, handshake, routing between clients and rooms.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy_app::App;
use crossbeam_channel::{Receiver, Sender, unbounded};
use hdrhistogram::Histogram;
use kasagi_net::keys::Role;
use kasagi_net::protocol::{ClientMessage, ErrorCode, ServerMessage};
use kasagi_net::server::{NetEvent, NetServer, ServerAuth};
use kasagi_replication::client::ClientReplicationPlugin;
use kasagi_replication::{ReplicationRegistry, SendTotals};

use super::cadence;
use super::load_window::{LoadReport, LoadWindow, LoadWindowSpec};
use super::rate_limit::{RateLimiter, RateLimits, Verdict};
use super::room_pool::RoomPool;
use super::room_worker::{self, RoomSettings, RoomTask};
use super::wake::{WakeSource, Waker, Woken};
use super::{FromRoom, ToRoom};

mod closing;
use crate::persist::{PersistHandle, PersistSnapshot, Recovery};
use crate::replication::register_village;
use crate::sim::WorldDef;

/// Shortest gap between two passes woken by datagrams: a burst of a tick's
/// acks is read in one pass, and an input waits at most this long.
const MIN_PASS_GAP: Duration = Duration::from_micros(250);

/// Passes woken by datagrams are at least this many of the last pass's
/// duration apart (counted from its start): a pass walks every client, so
/// with many clients reading at once takes at most a quarter of a core.
const PASS_GAP_FACTOR: u32 = 4;

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Where to listen (port 0 picks a free port).
    pub bind: SocketAddr,
    /// The world every room is created from (its name is replaced by the room's).
    pub world: WorldDef,
    /// Secure (connect tokens) or insecure.
    pub auth: ServerAuth,
    /// View radius of each player, in world units.
    pub view_radius: f32,
    /// How long a room without players lives on.
    pub empty_room_grace: Duration,
    /// How long a disconnected player waits for its client to reconnect.
    pub reconnect_grace: Duration,
    /// Most clients at once.
    pub max_clients: usize,
    /// Extra addresses clients reach the server at (proxies, NAT); tokens may name them.
    pub public_addresses: Vec<SocketAddr>,
    /// Per-client message and byte rate limits.
    pub rate_limits: RateLimits,
    /// The persistence writer; `None` serves ephemeral rooms.
    pub persist: Option<PersistHandle>,
    /// Rooms to resume at startup when the store holds them.
    pub resume_rooms: Vec<String>,
    /// Measure one load-scenario window (`kasagi bench`); `None` normally.
    pub load_window: Option<LoadWindowSpec>,
    /// Threads that tick the rooms (see `room_pool`); 0: one per core.
    pub room_threads: usize,
}

/// A snapshot of the server for status lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerStatus {
    /// Rooms running.
    pub rooms: usize,
    /// Clients connected.
    pub clients: usize,
    /// Messages dropped by rate limits so far.
    pub rate_limited: u64,
    /// Tick wall time p99 over the last interval, µs.
    pub tick_p99_us: f64,
    /// How late the rooms' ticks started against their grid, p99 over the
    /// last interval, µs: the shared backlog, and what shedding answers.
    pub late_p99_us: f64,
    /// Change sets sent and client ticks held back over the last interval,
    /// over all rooms (held back to shed load: the server is short of CPU).
    pub sends: SendTotals,
    /// Bytes sent per second to all clients.
    pub bytes_out_per_sec: f64,
    /// The persistence writer's counters, when persisting.
    pub persist: Option<PersistSnapshot>,
    /// Rooms recovered from the store since the last status.
    pub recovered: Vec<(String, Recovery)>,
    /// The load window's report, once, when it has just closed.
    pub load: Option<LoadReport>,
}

struct RoomHandle {
    inbox: Sender<ToRoom>,
    /// The thread that opens the room and hands it to the pool.
    opener: Option<JoinHandle<()>>,
}

struct ClientInfo {
    room: Option<String>,
    malformed: u32,
    limiter: RateLimiter,
    role: Role,
    /// Set when the client is being cut off: it is disconnected at this time,
    /// once its error message had a chance to leave.
    kick_at: Option<Instant>,
}

/// Clients that send this many malformed messages are disconnected.
const MALFORMED_LIMIT: u32 = 16;

/// The server: one network loop plus a pool of threads ticking the rooms.
pub struct GameServer {
    net: NetServer,
    /// Ticks the rooms; taken on shutdown.
    pool: Option<RoomPool<RoomTask>>,
    options: ServeOptions,
    registry_hash: u64,
    rooms: HashMap<String, RoomHandle>,
    clients: BTreeMap<u64, ClientInfo>,
    from_rooms: Receiver<FromRoom>,
    to_network: Sender<FromRoom>,
    /// What the loop waits on between passes, and the rooms' way to end the wait.
    wake: WakeSource,
    waker: Waker,
    /// When the last pass started and how long it took.
    last_pass: (Instant, Duration),
    tick_us: Histogram<u64>,
    /// Tick start lateness since the last status, µs.
    late_us: Histogram<u64>,
    /// Sends and holds since the last status, all rooms.
    status_sends: SendTotals,
    recovered: Vec<(String, Recovery)>,
    load: Option<LoadWindow>,
    load_report: Option<LoadReport>,
    /// Rooms' tick grids count from here; the nth room opened ticks at
    /// [`cadence::phase`]`(n)` of the slot.
    epoch: Instant,
    rooms_opened: u64,
}

impl GameServer {
    /// Binds the socket; nothing runs until [`GameServer::run`].
    pub fn bind(options: ServeOptions) -> std::io::Result<Self> {
        let net = NetServer::bind(
            options.bind,
            &options.public_addresses,
            options.auth.clone(),
            options.max_clients,
        )?;
        let (to_network, from_rooms) = unbounded();
        let (wake, waker) = WakeSource::new()?;
        let threads = match options.room_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let pool = RoomPool::new(threads)?;
        let world = &options.world;
        let world_entities =
            world.population.total() + world.swarm.map_or(0, |s| u64::from(s.entities));
        let load = options
            .load_window
            .map(|spec| LoadWindow::new(spec, world.tick_hz, world_entities));
        Ok(Self {
            load,
            load_report: None,
            net,
            pool: Some(pool),
            registry_hash: village_protocol_hash(),
            options,
            rooms: HashMap::new(),
            clients: BTreeMap::new(),
            from_rooms,
            to_network,
            wake,
            waker,
            last_pass: (Instant::now(), Duration::ZERO),
            tick_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            late_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            status_sends: SendTotals::default(),
            recovered: Vec::new(),
            epoch: Instant::now(),
            rooms_opened: 0,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.net.local_addr()
    }

    /// Serves until `stop` is set, calling `status` every `every`.
    pub fn run(
        mut self,
        stop: Arc<AtomicBool>,
        every: Duration,
        mut status: impl FnMut(&ServerStatus),
    ) {
        let mut last_status = Instant::now();
        for name in self.options.resume_rooms.clone() {
            self.start_room(&name, true);
        }
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            self.poll();
            self.last_pass = (started, started.elapsed());
            if let Some(load) = &mut self.load {
                self.load_report = load.poll(self.clients.len(), self.rooms.len());
            }
            // Recoveries and load reports are reported at once, the rest every interval.
            if last_status.elapsed() >= every
                || !self.recovered.is_empty()
                || self.load_report.is_some()
            {
                status(&self.status());
                // Each status line covers its own interval.
                self.tick_us.reset();
                self.late_us.reset();
                self.status_sends = SendTotals::default();
                self.recovered.clear();
                self.load_report = None;
                last_status = Instant::now();
            }
            self.wait(Duration::from_millis(1));
        }
        self.shutdown();
    }

    /// Sleeps until a datagram arrives, a room hands over a tick's packets,
    /// or `timeout` passes (see [`super::wake`]): inputs reach their room and
    /// change sets leave at once, not at the next poll. Passes woken by
    /// datagrams are kept apart by [`MIN_PASS_GAP`] or [`PASS_GAP_FACTOR`]
    /// times the last pass, whichever is longer, so that a pass reads a
    /// burst of datagrams at once; a room's wake-up ends that gap too.
    fn wait(&mut self, timeout: Duration) {
        if !self.from_rooms.is_empty() {
            return;
        }
        if self.wake.wait(Some(self.net.socket()), timeout) != Woken::Socket {
            return;
        }
        let (started, took) = self.last_pass;
        let gap = MIN_PASS_GAP.max(took * PASS_GAP_FACTOR);
        let left = gap.saturating_sub(started.elapsed());
        if !left.is_zero() && self.from_rooms.is_empty() {
            self.wake.wait(None, left);
        }
    }

    /// One pass: read the socket, route, forward room output, flush.
    pub fn poll(&mut self) {
        for event in self.net.update() {
            self.on_event(event);
        }
        while let Ok(msg) = self.from_rooms.try_recv() {
            self.on_room_message(msg);
        }
        self.net.flush();
        let now = Instant::now();
        let due: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, info)| info.kick_at.is_some_and(|t| t <= now))
            .map(|(client, _)| *client)
            .collect();
        for client in due {
            self.net.disconnect(client);
        }
    }

    fn on_room_message(&mut self, msg: FromRoom) {
        match msg {
            FromRoom::Send { client, message } => self.queue(client, message),
            FromRoom::SendAll(messages) => {
                for (client, message) in messages {
                    self.queue(client, message);
                }
            }
            FromRoom::Tick(timing) => {
                self.tick_us.saturating_record(timing.micros.max(1));
                self.late_us.saturating_record(timing.late_micros.max(1));
                self.status_sends += timing.sends;
                if let Some(load) = &mut self.load {
                    load.on_tick(&timing);
                }
            }
            FromRoom::Recovered { room, report } => self.recovered.push((room, report)),
            FromRoom::Closed {
                room,
                unread,
                failed,
            } => {
                if let Some(mut handle) = self.rooms.remove(&room)
                    && let Some(t) = handle.opener.take()
                {
                    let _ = t.join();
                }
                self.reroute_unread(&room, &unread, failed);
            }
        }
    }

    /// Cuts a client off: it is ignored from now on and disconnected shortly,
    /// after the error explaining why has been sent.
    fn kick(&mut self, client: u64) {
        if let Some(info) = self.clients.get_mut(&client) {
            info.kick_at = Some(Instant::now() + Duration::from_millis(300));
        }
    }

    fn on_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected { client, role } => {
                tracing::info!(client, ?role, "client connected");
                self.clients.insert(
                    client,
                    ClientInfo {
                        room: None,
                        malformed: 0,
                        limiter: RateLimiter::new(self.options.rate_limits, Instant::now()),
                        kick_at: None,
                        role,
                    },
                );
            }
            NetEvent::Disconnected { client } => {
                tracing::info!(client, "client disconnected");
                if let Some(info) = self.clients.remove(&client)
                    && let Some(room) = info.room.and_then(|r| self.rooms.get(&r))
                {
                    let _ = room.inbox.send(ToRoom::Leave { client, lost: true });
                }
            }
            NetEvent::Malformed { client, reason } => {
                tracing::debug!(client, "malformed message: {reason}");
                let info = self.clients.get_mut(&client);
                let count = info.map(|i| {
                    i.malformed += 1;
                    i.malformed
                });
                if count.is_some_and(|c| c >= MALFORMED_LIMIT) {
                    self.error(client, ErrorCode::Malformed, "too many malformed messages");
                    self.kick(client);
                }
            }
            NetEvent::Message {
                client,
                message,
                bytes,
            } => {
                let verdict = match self.clients.get_mut(&client) {
                    Some(info) if info.kick_at.is_none() => {
                        info.limiter.check(bytes, Instant::now())
                    }
                    _ => return,
                };
                match verdict {
                    Verdict::Pass => self.on_message(client, message),
                    Verdict::Drop => {}
                    Verdict::Disconnect => {
                        tracing::warn!(client, "rate limit exceeded persistently; disconnecting");
                        self.error(
                            client,
                            ErrorCode::RateLimited,
                            "too many messages; disconnected",
                        );
                        self.kick(client);
                    }
                }
            }
        }
    }

    fn on_message(&mut self, client: u64, message: ClientMessage) {
        let Some(info) = self.clients.get(&client) else {
            return;
        };
        match (&info.room, message) {
            (
                None,
                ClientMessage::Join {
                    room,
                    registry_hash,
                    session,
                },
            ) => {
                if registry_hash != self.registry_hash {
                    let text = format!(
                        "client protocol {registry_hash:016x} differs from the server's {:016x}; update the client",
                        self.registry_hash
                    );
                    self.error(client, ErrorCode::ProtocolMismatch, &text);
                    return;
                }
                let inbox = self.room(&room);
                let role = self.clients.get(&client).map_or(Role::Player, |c| c.role);
                let _ = inbox.send(ToRoom::Join {
                    client,
                    session,
                    role,
                });
                if let Some(info) = self.clients.get_mut(&client) {
                    info.room = Some(room);
                }
            }
            (Some(_), ClientMessage::Join { .. }) => {}
            (Some(room), ClientMessage::Leave) => {
                if let Some(handle) = self.rooms.get(room) {
                    let _ = handle.inbox.send(ToRoom::Leave {
                        client,
                        lost: false,
                    });
                }
                if let Some(info) = self.clients.get_mut(&client) {
                    info.room = None;
                }
            }
            (Some(room), message) => {
                if let Some(handle) = self.rooms.get(room) {
                    let _ = handle.inbox.send(ToRoom::Message { client, message });
                }
            }
            (None, _) => self.error(client, ErrorCode::NotInRoom, "join a room first"),
        }
    }

    /// The inbox of room `name`, starting the room if it is not running.
    fn room(&mut self, name: &str) -> Sender<ToRoom> {
        self.start_room(name, false)
    }

    /// Starts room `name` unless it runs; with `resume_only`, the room exists
    /// only if the store holds it.
    fn start_room(&mut self, name: &str, resume_only: bool) -> Sender<ToRoom> {
        if let Some(handle) = self.rooms.get(name) {
            return handle.inbox.clone();
        }
        let mut def = self.options.world.clone();
        def.name = name.to_string();
        let settings = RoomSettings {
            def,
            view_radius: self.options.view_radius,
            empty_grace: self.options.empty_room_grace,
            reconnect_grace: self.options.reconnect_grace,
            persist: self.options.persist.clone(),
            resume_only,
            waker: Some(self.waker.clone()),
            epoch: self.epoch,
            phase: cadence::phase(self.rooms_opened),
        };
        self.rooms_opened += 1;
        let (inbox, rx) = unbounded();
        let out = self.to_network.clone();
        let pool = self.pool.as_ref().map(RoomPool::sender);
        // Opening may read the store: not on the network thread, nor on a
        // pool worker, where it would hold up other rooms' ticks.
        let opener = std::thread::Builder::new()
            .name(format!("open-{name}"))
            .spawn(move || {
                if let (Some(task), Some(pool)) = (room_worker::open(settings, rx, out), pool) {
                    let first = task.first_tick();
                    pool.submit(task, first);
                }
            })
            .ok();
        tracing::info!(room = name, "room started");
        self.rooms.insert(
            name.to_string(),
            RoomHandle {
                inbox: inbox.clone(),
                opener,
            },
        );
        inbox
    }

    fn error(&mut self, client: u64, code: ErrorCode, message: &str) {
        self.queue(
            client,
            ServerMessage::Error {
                code,
                message: message.to_string(),
            },
        );
    }

    /// Sends to a connected client (the transport paces reliable messages).
    fn queue(&mut self, client: u64, message: ServerMessage) {
        if self.clients.contains_key(&client) {
            self.net.send(client, &message);
        }
    }

    /// Rooms, clients, tick p99 and lateness p99 and sends since the last
    /// status, bytes out per second.
    pub fn status(&self) -> ServerStatus {
        let bytes = self.net.bytes_sent_per_sec();
        ServerStatus {
            rooms: self.rooms.len(),
            clients: self.clients.len(),
            rate_limited: self.clients.values().map(|c| c.limiter.dropped).sum(),
            tick_p99_us: self.tick_us.value_at_quantile(0.99) as f64,
            late_p99_us: self.late_us.value_at_quantile(0.99) as f64,
            sends: self.status_sends,
            bytes_out_per_sec: bytes,
            persist: self.options.persist.as_ref().map(|p| p.stats().snapshot()),
            recovered: self.recovered.clone(),
            load: self.load_report.clone(),
        }
    }

    fn shutdown(&mut self) {
        for handle in self.rooms.values() {
            let _ = handle.inbox.send(ToRoom::Shutdown);
        }
        // Every room is in the pool once its opener is done; each leaves it
        // at its next step, having archived its state.
        for (_, mut handle) in self.rooms.drain() {
            if let Some(t) = handle.opener.take() {
                let _ = t.join();
            }
        }
        if let Some(pool) = self.pool.take() {
            pool.finish();
        }
        self.net.shutdown();
    }
}

/// The replication protocol hash clients must present.
pub fn village_protocol_hash() -> u64 {
    let mut app = App::new();
    app.add_plugins(ClientReplicationPlugin::default());
    register_village(&mut app);
    app.world()
        .resource::<ReplicationRegistry>()
        .protocol_hash()
}

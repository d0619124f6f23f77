//! One room: a village world ticking in real time, stepped by the room pool.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use glam::Vec2;
use kasagi_net::protocol::{ClientMessage, ServerMessage, SessionToken};
use kasagi_replication::{ClientId, NetId, ReplicationServer, SendTotals, View};

use super::cadence::Cadence;
use super::commands::Commands;
use super::outlet::Outlet;
use super::room_pool::Task;
use super::shedding::Shedder;
use super::wake::Waker;
use super::{FromRoom, TickTiming, ToRoom};
use super::{load_window, room_store};
use crate::persist::{self, PersistHandle};
use crate::room::Room;
use crate::sim::input::{Applied, SimInput, apply_input};
use crate::sim::{Interest, Player, PlayerAction, PlayerInput, SimId, SimParams, WorldDef};
use kasagi_net::keys::Role;

/// A client's avatar in the room.
#[derive(Clone, Copy)]
struct Member {
    player: SimId,
    slot: u32,
    session: SessionToken,
    role: Role,
    /// The newest input sequence applied; older (reordered) inputs are ignored.
    last_input: Option<u32>,
    /// Whether an input was applied since the last InputAck.
    input_pending: bool,
}

/// A member whose connection dropped, waiting for a reconnect.
struct Away {
    member: Member,
    /// The client id its replication state is kept under.
    client: u64,
    since: Instant,
}

/// Who is in the room.
#[derive(Default)]
struct Roster {
    members: BTreeMap<u64, Member>,
    away: Vec<Away>,
    commands: Commands,
}

/// Settings of a room worker.
#[derive(Clone, Debug)]
pub(crate) struct RoomSettings {
    pub def: WorldDef,
    pub view_radius: f32,
    /// How long an empty room lives on.
    pub empty_grace: Duration,
    /// How long a disconnected player waits for its client.
    pub reconnect_grace: Duration,
    /// The persistence writer, when the server persists rooms.
    pub persist: Option<PersistHandle>,
    /// Start only if the store holds the room (resuming rooms at startup).
    pub resume_only: bool,
    /// Wakes the network thread when a tick's packets are handed over.
    pub waker: Option<Waker>,
    /// The instant every room's tick grid counts from (see [`Cadence`]).
    pub epoch: Instant,
    /// Where this room's ticks fall within the slot, a fraction of it
    /// ([`super::cadence::phase`]).
    pub phase: f64,
}

/// A running room as the pool steps it: between two ticks it takes what
/// arrived in its inbox, then ticks (see [`super::room_pool`]).
pub(crate) struct RoomTask {
    room: Room,
    roster: Roster,
    settings: RoomSettings,
    inbox: Receiver<ToRoom>,
    out: ToNetwork,
    cadence: Cadence,
    next_tick: Instant,
    /// Replication's send totals after the last tick.
    sends: SendTotals,
    /// How far the room sheds sends, from how late its ticks start.
    shedder: Shedder,
    empty_since: Option<Instant>,
}

/// Opens the room of `settings` (from the store, when it persists: this may
/// block, so it runs off the pool); `None` if it cannot start, which whoever
/// is waiting to join hears, and the network thread learns from `Closed`.
pub(crate) fn open(
    settings: RoomSettings,
    inbox: Receiver<ToRoom>,
    out: Sender<FromRoom>,
) -> Option<RoomTask> {
    let outlet = Outlet::new(out.clone(), settings.waker.clone());
    let out = ToNetwork::new(out, settings.waker.clone());
    let Some(mut room) = room_store::open(&settings, &out) else {
        // Whoever is waiting to join hears why from the network thread,
        // which drains the inbox (`network::closing`).
        out.post(FromRoom::Closed {
            room: settings.def.name.clone(),
            unread: inbox,
            failed: true,
        });
        return None;
    };
    let dt = room.world().resource::<SimParams>().dt;
    let slot = Duration::from_secs_f64(f64::from(dt));
    let cadence = Cadence::new(settings.epoch, slot, settings.phase);
    let mut roster = Roster::default();
    room.world_mut().insert_resource(outlet);
    adopt_orphans(&mut room, &mut roster);
    Some(RoomTask {
        room,
        roster,
        settings,
        inbox,
        out,
        cadence,
        next_tick: cadence.first(Instant::now()),
        sends: SendTotals::default(),
        shedder: Shedder::default(),
        empty_since: Some(Instant::now()),
    })
}

impl RoomTask {
    /// When the first tick is due.
    pub fn first_tick(&self) -> Instant {
        self.next_tick
    }
}

impl Task for RoomTask {
    /// Handles the inbox, runs the due tick and returns when the next one is
    /// due; `None` once the room has shut down or closed.
    fn step(&mut self) -> Option<Instant> {
        // The wait for a worker: the rooms' shared backlog.
        let late = Instant::now().saturating_duration_since(self.next_tick);
        let Self {
            room,
            roster,
            settings,
            inbox,
            out,
            ..
        } = self;
        loop {
            match inbox.try_recv() {
                Ok(ToRoom::Shutdown) | Err(TryRecvError::Disconnected) => {
                    // SIGTERM and friends: the last word is a whole state.
                    persist::archive_now(room);
                    return None;
                }
                Ok(msg) => handle(room, roster, settings, out, msg),
                Err(TryRecvError::Empty) => break,
            }
        }
        fill_outlet(room, roster);
        if let Some(mut server) = room.world_mut().get_resource_mut::<ReplicationServer>() {
            server.set_min_send_interval(self.shedder.on_tick(late, self.cadence.slot()));
        }
        let cpu_before = load_window::thread_cpu_micros();
        let started = Instant::now();
        // The packets leave during the tick (`outlet::hand_over`).
        let took = room.tick();
        let cpu_micros = load_window::thread_cpu_micros().saturating_sub(cpu_before);
        let handover_micros = room
            .world()
            .get_resource::<Outlet>()
            .and_then(|o| o.handed_over)
            .map(|t| t.saturating_duration_since(started).as_micros() as u64);
        let sends = room
            .world()
            .get_resource::<ReplicationServer>()
            .map_or_else(SendTotals::default, ReplicationServer::send_totals);
        out.post(FromRoom::Tick(TickTiming {
            due: self.next_tick,
            micros: took.as_micros() as u64,
            cpu_micros,
            handover_micros,
            late_micros: late.as_micros() as u64,
            sends: sends - std::mem::replace(&mut self.sends, sends),
        }));
        expire_away(room, roster, settings.reconnect_grace, out);

        self.next_tick = self.cadence.next(self.next_tick, Instant::now());
        if roster.members.is_empty() && roster.away.is_empty() {
            let since = *self.empty_since.get_or_insert_with(Instant::now);
            // The archive must not wait for the writer here, on a worker
            // other rooms tick on: a busy writer keeps the room a tick longer.
            if since.elapsed() >= settings.empty_grace && persist::try_archive(room) {
                out.post(FromRoom::Closed {
                    room: settings.def.name.clone(),
                    unread: inbox.clone(),
                    failed: false,
                });
                return None;
            }
        } else {
            self.empty_since = None;
        }
        Some(self.next_tick)
    }
}

fn handle(
    room: &mut Room,
    roster: &mut Roster,
    settings: &RoomSettings,
    out: &ToNetwork,
    msg: ToRoom,
) {
    match msg {
        ToRoom::Join {
            client,
            session,
            role,
        } => {
            if roster.members.contains_key(&client) {
                return;
            }
            if let Some(session) = session
                && resume(room, roster, settings, out, client, session)
            {
                return;
            }
            let (player, slot) = match apply_input(room.world_mut(), SimInput::SpawnPlayer) {
                Ok(Applied::Spawned {
                    id,
                    slot: Some(slot),
                }) => (id, slot),
                other => {
                    tracing::error!(client, ?other, "could not spawn a player");
                    return;
                }
            };
            let net = NetId(u64::from(player.0));
            room.world_mut()
                .resource_mut::<ReplicationServer>()
                .connect(
                    ClientId(client),
                    match settings.def.interest {
                        Some(Interest::Off) => View::Room,
                        Some(Interest::Radius(radius)) => View::Radius {
                            center: Some(net),
                            radius,
                        },
                        None => View::Radius {
                            center: Some(net),
                            radius: settings.view_radius,
                        },
                    },
                );
            let member = Member {
                player,
                slot,
                session: SessionToken(kasagi_net::keys::random_bytes()),
                role,
                last_input: None,
                input_pending: false,
            };
            out.send(client, joined(room, settings, member));
            out.broadcast(roster, ServerMessage::PlayerJoined { player: net.0 });
            roster.members.insert(client, member);
        }
        ToRoom::Leave { client, lost } => {
            let Some(member) = roster.members.remove(&client) else {
                return;
            };
            if lost {
                // Keep the avatar and the replication state; a reconnect resumes by delta.
                roster.away.push(Away {
                    member,
                    client,
                    since: Instant::now(),
                });
            } else {
                remove_player(room, roster, out, client, member);
            }
        }
        ToRoom::Message { client, message } => {
            let Some(&member) = roster.members.get(&client) else {
                return;
            };
            let world = room.world_mut();
            match message {
                ClientMessage::Input {
                    movement, action, ..
                } => {
                    // Server authority: the input moves only the sender's own avatar,
                    // at most at full speed (the simulation clamps the length to 1).
                    let movement = Vec2::from_array(movement);
                    let movement = if movement.is_finite() {
                        movement.clamp_length_max(1.0)
                    } else {
                        Vec2::ZERO
                    };
                    let action = match action {
                        Some(1) => Some(PlayerAction::Gather),
                        Some(2) => Some(PlayerAction::Build),
                        _ => None,
                    };
                    let input = PlayerInput {
                        slot: member.slot,
                        movement,
                        action,
                    };
                    let _ = apply_input(world, SimInput::Player(input));
                }
                ClientMessage::Ack { tick } => {
                    if let Err(e) = world
                        .resource_mut::<ReplicationServer>()
                        .receive_ack(ClientId(client), tick)
                    {
                        tracing::debug!(client, "ack refused: {e}");
                    }
                }
                ClientMessage::MissingBaseline { holds, tick } => {
                    if let Err(e) = world
                        .resource_mut::<ReplicationServer>()
                        .receive_missing_baseline(ClientId(client), holds, tick)
                    {
                        tracing::debug!(client, "missing-baseline report refused: {e}");
                    }
                }
                ClientMessage::SyncRequest => {
                    world
                        .resource_mut::<ReplicationServer>()
                        .request_full_state(ClientId(client));
                }
                ClientMessage::Command(command) => {
                    let answer = roster
                        .commands
                        .handle(room, member.role, member.slot, command);
                    out.send(client, answer);
                }
                ClientMessage::FetchHistory { from, to } => {
                    room_store::history(settings, out, client, from, to);
                }
                ClientMessage::Join { .. } | ClientMessage::Leave => {}
            }
        }
        ToRoom::Shutdown => {}
    }
}

/// Tells the tick's [`Outlet`] who listens and which inputs it applies.
fn fill_outlet(room: &mut Room, roster: &mut Roster) {
    let Some(mut outlet) = room.world_mut().get_resource_mut::<Outlet>() else {
        return;
    };
    let outlet = &mut *outlet;
    outlet.members.clear();
    outlet.away.clear();
    outlet.handed_over = None;
    for (&client, member) in roster.members.iter_mut() {
        let acked = std::mem::take(&mut member.input_pending)
            .then_some(member.last_input)
            .flatten();
        outlet.members.push((client, acked));
    }
    outlet.away.extend(roster.away.iter().map(|a| a.client));
}

/// Hands a kept avatar (away, or still connected under an old client id) to `client`.
fn resume(
    room: &mut Room,
    roster: &mut Roster,
    settings: &RoomSettings,
    out: &ToNetwork,
    client: u64,
    session: SessionToken,
) -> bool {
    let (old, member) =
        if let Some(i) = roster.away.iter().position(|a| a.member.session == session) {
            let away = roster.away.swap_remove(i);
            (away.client, away.member)
        } else if let Some((&old, _)) = roster.members.iter().find(|(_, m)| m.session == session) {
            let member = roster.members.remove(&old).expect("found");
            (old, member)
        } else {
            return false;
        };
    let resumed = room
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .rename_client(ClientId(old), ClientId(client));
    if !resumed {
        return false;
    }
    tracing::info!(client, old, "session resumed");
    out.send(client, joined(room, settings, member));
    roster.members.insert(client, member);
    true
}

/// Avatars in a recovered room belonged to clients of the previous process:
/// they wait out the reconnect grace like any dropped player, then leave.
fn adopt_orphans(room: &mut Room, roster: &mut Roster) {
    let world = room.world_mut();
    let mut players = world.query::<(&SimId, &Player)>();
    for (&player, p) in players.iter(world) {
        roster.away.push(Away {
            member: Member {
                player,
                slot: p.slot,
                // Nobody holds this token: the avatar cannot be taken over.
                session: SessionToken(kasagi_net::keys::random_bytes()),
                role: Role::Player,
                last_input: None,
                input_pending: false,
            },
            // Ids from the top of the range, never handed to real clients.
            client: u64::MAX - u64::from(p.slot),
            since: Instant::now(),
        });
    }
}

/// Despawns avatars whose clients did not come back in time.
fn expire_away(room: &mut Room, roster: &mut Roster, grace: Duration, out: &ToNetwork) {
    let (expired, kept): (Vec<Away>, Vec<Away>) = roster
        .away
        .drain(..)
        .partition(|a| a.since.elapsed() >= grace);
    roster.away = kept;
    for away in expired {
        remove_player(room, roster, out, away.client, away.member);
    }
}

fn remove_player(room: &mut Room, roster: &Roster, out: &ToNetwork, client: u64, member: Member) {
    let _ = apply_input(room.world_mut(), SimInput::Despawn(member.player));
    room.world_mut()
        .resource_mut::<ReplicationServer>()
        .disconnect(ClientId(client));
    out.broadcast(
        roster,
        ServerMessage::PlayerLeft {
            player: u64::from(member.player.0),
        },
    );
}

fn joined(room: &Room, settings: &RoomSettings, member: Member) -> ServerMessage {
    ServerMessage::Joined {
        room: settings.def.name.clone(),
        player: u64::from(member.player.0),
        session: member.session,
        tick: room.tick_count(),
    }
}

/// A room's line to the network thread. Replies (join answers, command
/// results, history, errors) wake the network thread, so that they leave at
/// once rather than at its next 1 ms backstop; change sets go through the
/// tick's [`Outlet`] instead.
#[derive(Clone)]
pub(super) struct ToNetwork {
    out: Sender<FromRoom>,
    waker: Option<Waker>,
}

impl ToNetwork {
    /// A line over `out` that wakes the network thread with `waker`.
    pub fn new(out: Sender<FromRoom>, waker: Option<Waker>) -> Self {
        Self { out, waker }
    }

    /// Sends `message` to `client` and wakes the network thread.
    pub fn send(&self, client: u64, message: ServerMessage) {
        let _ = self.out.send(FromRoom::Send { client, message });
        self.wake();
    }

    /// Sends `message` to every member, with one wake-up.
    fn broadcast(&self, roster: &Roster, message: ServerMessage) {
        for &client in roster.members.keys() {
            let message = message.clone();
            let _ = self.out.send(FromRoom::Send { client, message });
        }
        self.wake();
    }

    /// Posts a message nobody waits for (tick timings, recovery and closing
    /// reports): the network thread takes it at its next pass.
    pub fn post(&self, message: FromRoom) {
        let _ = self.out.send(message);
    }

    fn wake(&self) {
        if let Some(waker) = &self.waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wake::{WakeSource, Woken};
    use super::*;

    #[test]
    fn replies_wake_the_network_thread_and_posts_do_not() {
        let (source, waker) = WakeSource::new().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let line = ToNetwork::new(tx, Some(waker));
        let short = Duration::from_millis(20);

        line.post(FromRoom::Tick(TickTiming {
            due: Instant::now(),
            micros: 1,
            cpu_micros: 1,
            handover_micros: None,
            late_micros: 0,
            sends: SendTotals::default(),
        }));
        assert_eq!(source.wait(None, short), Woken::Timeout);

        line.send(7, ServerMessage::PlayerLeft { player: 1 });
        assert_eq!(source.wait(None, Duration::from_secs(5)), Woken::Room);
        assert_eq!(rx.try_iter().count(), 2, "both messages are on the line");
    }
}

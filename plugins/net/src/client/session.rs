//! A replicated game session on top of [`NetClient`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bevy_app::App;
use kasagi_replication::client::{ClientReplica, Receipt};
use kasagi_replication::{NetId, ReplicationRegistry};

use super::held_input::HeldInput;
use super::{NetClient, NetError};

mod input;
use crate::protocol::{
    ClientMessage, Command, CommandArgs, CommandOutcome, ErrorCode, HistoryTick, MAX_HISTORY_TICKS,
    ServerMessage, SessionToken,
};

/// Where a session stands.
///
/// ```text
/// Connecting ──joined──▶ Syncing ──full state──▶ Synced ──checksum mismatch──▶ OutOfSync
///                                                  ▲                               │ sync request
///                                                  └──────── full state ◀── Resyncing ◀┘
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Handshaking and joining.
    Connecting,
    /// Joined; waiting for the first full state.
    Syncing,
    /// The replica follows the server.
    Synced,
    /// A checksum disagreed; a resync is about to be requested.
    OutOfSync,
    /// A full state was requested and is on its way.
    Resyncing,
}

/// Counters of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Resyncs requested after checksum mismatches.
    pub resyncs: u64,
    /// Reconnections with the session token.
    pub reconnects: u64,
    /// Errors the server reported.
    pub server_errors: u64,
    /// Missing-baseline reports sent: lost links of the server's chain of
    /// deltas, each answered by a repair.
    pub missing_baseline_reports: u64,
}

/// The first retry delay of a command; each further retry doubles it.
pub const COMMAND_RETRY_START: Duration = Duration::from_millis(100);
/// Retries before a command is given up (100 ms, 200, 400, 800, 1.6 s).
pub const COMMAND_RETRIES: u32 = 5;

/// The final result of a command.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandResult {
    /// The server acknowledged it.
    Done(CommandOutcome),
    /// The field had moved on: nothing changed.
    Conflict {
        /// The field's current version.
        version: u64,
        /// Its current value.
        value: f64,
    },
    /// No acknowledgement after every retry.
    GaveUp,
}

/// Makes a new connection for an automatic reconnect.
pub type Reconnector = Box<dyn FnMut() -> Result<NetClient, NetError> + Send>;

/// Delay before the first automatic reconnect attempt; doubles up to [`RECONNECT_MAX_DELAY`].
pub const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest wait between automatic reconnect attempts.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(4);

struct PendingCommand {
    command: Command,
    retries: u32,
    next_at: Instant,
}

/// A client session: transport, room membership, the replica world and its state machine.
pub struct GameClient {
    net: NetClient,
    app: App,
    room: String,
    state: SyncState,
    join_sent: bool,
    player: Option<NetId>,
    session: Option<SessionToken>,
    input_sequence: u32,
    last_error: Option<(ErrorCode, String)>,
    /// History ticks received and not yet taken.
    history: Vec<HistoryTick>,
    stats: SessionStats,
    /// Socket and message totals of connections replaced by reconnects.
    earlier: (super::UdpCounters, u64),
    command_sequence: u32,
    predictor: Option<super::prediction::Predictor>,
    held: Option<HeldInput>,
    reconnector: Option<Reconnector>,
    reconnect_delay: Duration,
    next_reconnect: Option<Instant>,
    pending: Vec<PendingCommand>,
    results: HashMap<[u8; 16], CommandResult>,
}

impl GameClient {
    /// A session that joins `room` once connected. `app` is a client app with
    /// [`kasagi_replication::client::ClientReplicationPlugin`] and the game's registrations.
    pub fn new(net: NetClient, app: App, room: impl Into<String>) -> Self {
        Self {
            net,
            app,
            room: room.into(),
            state: SyncState::Connecting,
            join_sent: false,
            player: None,
            session: None,
            input_sequence: 0,
            last_error: None,
            history: Vec::new(),
            stats: SessionStats::default(),
            earlier: Default::default(),
            command_sequence: 0,
            predictor: None,
            held: None,
            reconnector: None,
            reconnect_delay: RECONNECT_FIRST_DELAY,
            next_reconnect: None,
            pending: Vec::new(),
            results: HashMap::new(),
        }
    }

    /// Reconnects automatically (with backoff, 250 ms doubling to 4 s) when the
    /// connection drops, using `reconnector` for each new connection.
    pub fn reconnect_with(&mut self, reconnector: Reconnector) {
        self.reconnector = Some(reconnector);
    }

    /// Pumps the network: joins, applies state, acks, requests resyncs.
    /// With [`GameClient::reconnect_with`], a dropped connection is replaced
    /// instead of being reported.
    pub fn update(&mut self) -> Result<(), NetError> {
        let messages = match self.net.update() {
            Ok(messages) => {
                if self.net.is_connected() {
                    self.reconnect_delay = RECONNECT_FIRST_DELAY;
                }
                messages
            }
            Err(e) if self.reconnector.is_some() && self.session.is_some() => {
                self.try_reconnect(&e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.net.is_connected() && !self.join_sent {
            let registry_hash = self
                .app
                .world()
                .resource::<ReplicationRegistry>()
                .protocol_hash();
            self.net.send(&ClientMessage::Join {
                room: self.room.clone(),
                registry_hash,
                session: self.session,
            });
            self.join_sent = true;
        }
        for message in messages {
            self.handle(message);
        }
        self.retry_commands();
        if let Some(p) = &mut self.predictor {
            p.prune(Instant::now());
        }
        let replica = &mut *self.app.world_mut().resource_mut::<ClientReplica>();
        let ack = replica.take_ack();
        let missing = replica.take_missing_baseline();
        let resync = replica.take_resync_request();
        if let Some(tick) = ack {
            self.net.send(&ClientMessage::Ack { tick });
        }
        if self.state == SyncState::Synced {
            // After the ack, so that both leave in one datagram.
            self.repeat_held_input(ack.is_some());
        }
        if let Some((holds, tick)) = missing {
            self.stats.missing_baseline_reports += 1;
            self.net
                .send(&ClientMessage::MissingBaseline { holds, tick });
        }
        if resync && self.state != SyncState::Resyncing {
            self.state = SyncState::OutOfSync;
            self.stats.resyncs += 1;
            self.net.send(&ClientMessage::SyncRequest);
            self.state = SyncState::Resyncing;
        }
        self.net.flush();
        Ok(())
    }

    fn handle(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Joined {
                player, session, ..
            } => {
                self.player = Some(NetId(player));
                self.session = Some(session);
                self.state = SyncState::Syncing;
            }
            ServerMessage::FullState(bytes) | ServerMessage::Changes(bytes) => {
                match ClientReplica::receive(self.app.world_mut(), &bytes) {
                    Ok(Receipt::Applied { .. }) => {
                        let full = self
                            .app
                            .world()
                            .resource::<ClientReplica>()
                            .stats()
                            .full_states
                            > 0;
                        if full && matches!(self.state, SyncState::Syncing | SyncState::Resyncing) {
                            self.state = SyncState::Synced;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("bad change set: {e}"),
                }
            }
            ServerMessage::Error { code, message } => {
                tracing::warn!(?code, "server error: {message}");
                self.stats.server_errors += 1;
                self.last_error = Some((code, message));
            }
            ServerMessage::CommandAck { id, outcome } => {
                self.finish_command(id, CommandResult::Done(outcome))
            }
            ServerMessage::Conflict {
                id, version, value, ..
            } => {
                self.finish_command(id, CommandResult::Conflict { version, value });
            }
            ServerMessage::InputAck { sequence, .. } => {
                if let Some(p) = &mut self.predictor {
                    p.acked(sequence);
                }
            }
            ServerMessage::History { ticks, .. } => {
                // Bounded by the server's MAX_HISTORY_TICKS per answer; keep
                // at most one answer's worth if the caller never takes them.
                let keep = MAX_HISTORY_TICKS as usize;
                self.history.extend(ticks);
                let excess = self.history.len().saturating_sub(keep);
                self.history.drain(..excess);
            }
            ServerMessage::PlayerJoined { .. } | ServerMessage::PlayerLeft { .. } => {}
        }
    }

    /// Asks the server for the room's persisted changes of ticks `from..=to`;
    /// they arrive in [`GameClient::take_history`].
    pub fn fetch_history(&mut self, from: u64, to: u64) {
        self.net.send(&ClientMessage::FetchHistory { from, to });
    }

    /// Takes the history ticks received so far, oldest first.
    pub fn take_history(&mut self) -> Vec<HistoryTick> {
        std::mem::take(&mut self.history)
    }

    /// Sends a command and keeps retrying it (same id) until the server answers.
    /// Returns its id; see [`GameClient::command_result`].
    pub fn send_command(
        &mut self,
        kind: &str,
        args: &CommandArgs,
        expected_version: Option<u64>,
    ) -> [u8; 16] {
        let id = crate::keys::random_bytes::<16>();
        self.command_sequence = self.command_sequence.wrapping_add(1);
        let command = Command {
            id,
            sequence: self.command_sequence,
            kind: kind.to_string(),
            payload: crate::protocol::encode(args),
            expected_version,
        };
        self.net.send(&ClientMessage::Command(command.clone()));
        self.pending.push(PendingCommand {
            command,
            retries: 0,
            next_at: Instant::now() + COMMAND_RETRY_START,
        });
        id
    }

    /// Sends any message as is (tools and tests; games use the typed methods).
    pub fn send_raw(&mut self, message: &ClientMessage) {
        self.net.send(message);
    }

    /// The result of a command, once there is one.
    pub fn command_result(&self, id: &[u8; 16]) -> Option<&CommandResult> {
        self.results.get(id)
    }

    fn finish_command(&mut self, id: [u8; 16], result: CommandResult) {
        self.pending.retain(|p| p.command.id != id);
        self.results.entry(id).or_insert(result);
    }

    fn retry_commands(&mut self) {
        let now = Instant::now();
        let mut gave_up = Vec::new();
        for p in &mut self.pending {
            if now < p.next_at || !self.net.is_connected() {
                continue;
            }
            if p.retries >= COMMAND_RETRIES {
                gave_up.push(p.command.id);
                continue;
            }
            p.retries += 1;
            self.net.send(&ClientMessage::Command(p.command.clone()));
            p.next_at = now + COMMAND_RETRY_START * 2u32.pow(p.retries);
        }
        for id in gave_up {
            self.finish_command(id, CommandResult::GaveUp);
        }
    }

    /// The session's state.
    pub fn state(&self) -> SyncState {
        self.state
    }

    /// The own player's network id, once joined.
    pub fn player(&self) -> Option<NetId> {
        self.player
    }

    /// The client world holding the replica.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The client world, mutably.
    pub fn app_mut(&mut self) -> &mut App {
        &mut self.app
    }

    /// The replica.
    pub fn replica(&self) -> &ClientReplica {
        self.app.world().resource::<ClientReplica>()
    }

    /// The last error the server reported.
    pub fn last_error(&self) -> Option<&(ErrorCode, String)> {
        self.last_error.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The transport.
    pub fn net(&self) -> &NetClient {
        &self.net
    }

    /// The transport, to change its settings (such as
    /// [`NetClient::record_arrivals`], which carries over reconnects).
    pub fn net_mut(&mut self) -> &mut NetClient {
        &mut self.net
    }

    /// What crossed this client's sockets, over every connection of the
    /// session (reconnects open new sockets).
    pub fn udp(&self) -> super::UdpCounters {
        self.earlier.0 + self.net.udp()
    }

    /// Message bytes received over every connection of the session.
    pub fn bytes_received(&self) -> u64 {
        self.earlier.1 + self.net.bytes_received()
    }

    fn try_reconnect(&mut self, cause: &NetError) {
        let now = Instant::now();
        if self.next_reconnect.is_some_and(|t| now < t) {
            return;
        }
        self.next_reconnect = Some(now + self.reconnect_delay);
        self.reconnect_delay = (self.reconnect_delay * 2).min(RECONNECT_MAX_DELAY);
        let Some(make) = &mut self.reconnector else {
            return;
        };
        match make() {
            Ok(net) => {
                tracing::info!("connection lost ({cause}); reconnecting");
                self.reconnect(net);
            }
            Err(e) => tracing::warn!("reconnect failed: {e}"),
        }
    }

    /// Continues the session over a new connection (after a drop): the server
    /// hands back the same player and resumes by delta from the last ack.
    pub fn reconnect(&mut self, mut net: NetClient) {
        net.record_arrivals(self.net.records_arrivals());
        let old = std::mem::replace(&mut self.net, net);
        self.earlier = (
            self.earlier.0 + old.udp(),
            self.earlier.1 + old.bytes_received(),
        );
        self.join_sent = false;
        self.state = SyncState::Connecting;
        self.stats.reconnects += 1;
    }

    /// The session token, once joined.
    pub fn session(&self) -> Option<SessionToken> {
        self.session
    }

    /// Leaves the room and disconnects.
    pub fn leave(&mut self) {
        self.net.send(&ClientMessage::Leave);
        self.net.flush();
        self.net.disconnect();
    }
}

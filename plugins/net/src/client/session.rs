//! A replicated game session on top of [`NetClient`].

use bevy_app::App;
use kasagi_replication::client::{ClientReplica, Receipt};
use kasagi_replication::{NetId, ReplicationRegistry};

use super::{NetClient, NetError};
use crate::protocol::{ClientMessage, ErrorCode, ServerMessage, SessionToken};

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
    stats: SessionStats,
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
            stats: SessionStats::default(),
        }
    }

    /// Pumps the network: joins, applies state, acks, requests resyncs.
    pub fn update(&mut self) -> Result<(), NetError> {
        let messages = self.net.update()?;
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
        let replica = &mut *self.app.world_mut().resource_mut::<ClientReplica>();
        let ack = replica.take_ack();
        let resync = replica.take_resync_request();
        if let Some(tick) = ack {
            self.net.send(&ClientMessage::Ack { tick });
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
            ServerMessage::PlayerJoined { .. } | ServerMessage::PlayerLeft { .. } => {}
        }
    }

    /// Sends a movement intent for the own player.
    pub fn send_input(&mut self, movement: [f32; 2], action: Option<u8>) {
        self.input_sequence = self.input_sequence.wrapping_add(1);
        let tick = self
            .app
            .world()
            .resource::<ClientReplica>()
            .tick()
            .unwrap_or(0);
        self.net.send(&ClientMessage::Input {
            tick,
            sequence: self.input_sequence,
            movement,
            action,
        });
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

    /// Continues the session over a new connection (after a drop): the server
    /// hands back the same player and resumes by delta from the last ack.
    pub fn reconnect(&mut self, net: NetClient) {
        self.net = net;
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

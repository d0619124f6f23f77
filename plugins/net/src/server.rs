//! The UDP server transport: netcode (secure or insecure) + renet channels.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use renet::{RenetServer, ServerEvent};
use renet_netcode::{
    NETCODE_KEY_BYTES, NetcodeServerTransport, ServerAuthentication, ServerConfig,
};

use crate::channels::{
    IDLE_FLUSH_INTERVAL, RELIABLE_CHANNEL_BYTES, RELIABLE_IN_FLIGHT_BYTES, connection_config,
};
use crate::keys::Role;
use crate::protocol::{
    ClientChannel, ClientMessage, MAX_ROOM_NAME, PROTOCOL_ID, ServerChannel, ServerMessage, decode,
    encode,
};

/// netcode's hard limit of clients per server socket.
pub const MAX_CLIENTS: usize = 1024;

/// How clients prove who they are.
#[derive(Clone)]
pub enum ServerAuth {
    /// Connect tokens minted with this private key; packets are encrypted.
    Secure {
        /// The server's private key.
        key: [u8; NETCODE_KEY_BYTES],
    },
    /// Anyone may connect, unencrypted. Local development only.
    Insecure,
}

/// Something that happened on the server transport.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// A client completed the netcode handshake.
    Connected {
        /// The client.
        client: u64,
        /// Its role, from its connect token.
        role: Role,
    },
    /// A client disconnected or timed out.
    Disconnected {
        /// The client.
        client: u64,
    },
    /// A client sent a valid message.
    Message {
        /// The client.
        client: u64,
        /// The message.
        message: ClientMessage,
        /// Its encoded size, for rate limits.
        bytes: usize,
    },
    /// A client sent bytes that are not a valid message.
    Malformed {
        /// The client.
        client: u64,
        /// What was wrong.
        reason: String,
    },
}

/// The server side of the transport.
pub struct NetServer {
    renet: RenetServer,
    transport: NetcodeServerTransport,
    /// The transport's socket, for waiting until it is readable.
    readiness: UdpSocket,
    last_update: Instant,
    /// Reliable messages per client waiting for room in the channel, in order.
    backlog: HashMap<u64, VecDeque<Vec<u8>>>,
    /// Whether messages were handed to renet since the last flush.
    unsent: bool,
    last_flush: Instant,
}

impl NetServer {
    /// Binds `addr` (port 0 picks a free one) and starts accepting up to `max_clients`.
    /// Connect tokens must name the bound address or one of `public` (the
    /// addresses clients reach the server at through proxies or NAT).
    pub fn bind(
        addr: SocketAddr,
        public: &[SocketAddr],
        auth: ServerAuth,
        max_clients: usize,
    ) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let readiness = socket.try_clone()?;
        let local = socket.local_addr()?;
        let mut public_addresses = vec![local];
        public_addresses.extend_from_slice(public);
        let authentication = match auth {
            ServerAuth::Secure { key } => ServerAuthentication::Secure { private_key: key },
            ServerAuth::Insecure => ServerAuthentication::Unsecure,
        };
        let config = ServerConfig {
            current_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            max_clients: max_clients.clamp(1, MAX_CLIENTS),
            protocol_id: PROTOCOL_ID,
            public_addresses,
            authentication,
        };
        Ok(Self {
            renet: RenetServer::new(connection_config()),
            transport: NetcodeServerTransport::new(config, socket)?,
            readiness,
            last_update: Instant::now(),
            backlog: HashMap::new(),
            unsent: false,
            last_flush: Instant::now(),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.addresses()[0]
    }

    /// The server's socket, to wait on until it is readable (with `poll(2)`
    /// or the like). Reading it is [`Self::update`]'s job.
    pub fn socket(&self) -> &UdpSocket {
        &self.readiness
    }

    /// Reads the socket and returns what happened since the last call.
    pub fn update(&mut self) -> Vec<NetEvent> {
        let now = Instant::now();
        let dt = now - self.last_update;
        self.last_update = now;
        self.renet.update(dt);
        if let Err(e) = self.transport.update(dt, &mut self.renet) {
            tracing::debug!("transport: {e}");
        }
        let mut events = Vec::new();
        while let Some(event) = self.renet.get_event() {
            events.push(match event {
                ServerEvent::ClientConnected { client_id } => NetEvent::Connected {
                    client: client_id,
                    role: Role::from_user_data(self.transport.user_data(client_id).as_ref()),
                },
                ServerEvent::ClientDisconnected { client_id, .. } => {
                    NetEvent::Disconnected { client: client_id }
                }
            });
        }
        for client in self.renet.clients_id() {
            for channel in [ClientChannel::Control, ClientChannel::Stream] {
                while let Some(bytes) = self.renet.receive_message(client, channel) {
                    events.push(match decode::<ClientMessage>(&bytes) {
                        Ok(message) if valid(&message) => NetEvent::Message {
                            client,
                            message,
                            bytes: bytes.len(),
                        },
                        Ok(_) => NetEvent::Malformed {
                            client,
                            reason: "field out of range".into(),
                        },
                        Err(e) => NetEvent::Malformed {
                            client,
                            reason: e.to_string(),
                        },
                    });
                }
            }
        }
        events
    }

    /// Sends a message to `client`.
    ///
    /// Unreliable messages (change sets) that do not fit in the channel right now
    /// are dropped: the next tick's change set supersedes them. Reliable messages
    /// are queued in order and handed to renet only as its channel has room, so a
    /// full state of any size is streamed without ever exceeding renet's
    /// per-channel memory limit (which would disconnect the client).
    pub fn send(&mut self, client: u64, message: &ServerMessage) {
        let bytes = encode(message);
        match message.channel() {
            ServerChannel::Changes => {
                if self
                    .renet
                    .can_send_message(client, ServerChannel::Changes, bytes.len())
                {
                    self.renet
                        .send_message(client, ServerChannel::Changes, bytes);
                    self.unsent = true;
                }
            }
            ServerChannel::Control => {
                self.backlog.entry(client).or_default().push_back(bytes);
                self.drain(client);
            }
        }
    }

    /// Reliable bytes waiting for `client`'s channel to drain.
    pub fn backlog_bytes(&self, client: u64) -> usize {
        self.backlog
            .get(&client)
            .map_or(0, |q| q.iter().map(Vec::len).sum())
    }

    fn drain(&mut self, client: u64) {
        let Some(queue) = self.backlog.get_mut(&client) else {
            return;
        };
        while let Some(bytes) = queue.front() {
            // Keep a bounded window in flight, well inside what the receiver may hold.
            let free = self
                .renet
                .channel_available_memory(client, ServerChannel::Control);
            let in_flight = RELIABLE_CHANNEL_BYTES.saturating_sub(free);
            if in_flight + bytes.len() > RELIABLE_IN_FLIGHT_BYTES && in_flight > 0 {
                break;
            }
            let bytes = queue.pop_front().expect("front exists");
            self.renet
                .send_message(client, ServerChannel::Control, bytes);
            self.unsent = true;
        }
    }

    /// Moves paced reliable messages into the channels and sends queued packets.
    ///
    /// Packets go out at once when there are messages, otherwise (acks,
    /// resends) every [`IDLE_FLUSH_INTERVAL`].
    pub fn flush(&mut self) {
        let clients: Vec<u64> = self.backlog.keys().copied().collect();
        for client in clients {
            self.drain(client);
        }
        if self.unsent || self.last_flush.elapsed() >= IDLE_FLUSH_INTERVAL {
            self.transport.send_packets(&mut self.renet);
            self.unsent = false;
            self.last_flush = Instant::now();
        }
    }

    /// Disconnects `client`.
    pub fn disconnect(&mut self, client: u64) {
        self.renet.disconnect(client);
    }

    /// Disconnects everyone (on shutdown) and sends the disconnect packets.
    pub fn shutdown(&mut self) {
        self.transport.disconnect_all(&mut self.renet);
    }

    /// Bytes per second sent to `client`.
    pub fn bytes_sent_per_sec(&self, client: u64) -> f64 {
        self.renet.bytes_sent_per_sec(client)
    }

    /// Connected clients.
    pub fn clients(&self) -> Vec<u64> {
        self.renet.clients_id()
    }

    /// How long since `client` was last heard from.
    pub fn silence(&self, client: u64) -> Option<Duration> {
        self.transport.time_since_last_received_packet(client)
    }
}

/// Bounds on fields that bincode's size limit alone does not cover.
fn valid(message: &ClientMessage) -> bool {
    match message {
        ClientMessage::Join { room, .. } => {
            !room.is_empty()
                && room.len() <= MAX_ROOM_NAME
                && room
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
        ClientMessage::Input { movement, .. } => movement.iter().all(|v| v.is_finite()),
        _ => true,
    }
}

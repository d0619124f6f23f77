//! The UDP server transport: netcode (secure or insecure), renet's reliable
//! channel and the direct lane for the per-tick stream.

mod transport;

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use renet::{RenetServer, ServerEvent};
use renet_netcode::{NETCODE_KEY_BYTES, ServerAuthentication, ServerConfig};

use crate::channels::{RELIABLE_CHANNEL_BYTES, RELIABLE_IN_FLIGHT_BYTES, connection_config};
use crate::client::UdpCounters;
use crate::keys::Role;
use crate::lane::{self, DirectBatch};
use crate::protocol::{
    ClientChannel, ClientMessage, MAX_ROOM_NAME, PROTOCOL_ID, ServerChannel, ServerMessage, decode,
    encode,
};
use crate::udp;
use transport::ServerTransport;

/// How far renet's clock advances at a time. Advancing it walks every
/// connection (lost packets, channel checks): 9 % of the network thread in
/// S2i when done on every pass, and in 5 ms steps still 10 % of it in S5
/// (1,000 clients). The clock only times reliable resends (150 ms) and
/// round trips, so 10 ms steps change nothing that matters.
const RENET_CLOCK_STEP: Duration = Duration::from_millis(10);

/// Kernel buffer asked for on the server's socket, each way. Every client
/// sends an input and an ack per tick: 1,000 clients at 30 Hz are 60,000
/// datagrams a second, which the default buffer (a few hundred datagrams)
/// holds for only a few milliseconds of a late read.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

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
    transport: ServerTransport,
    /// The transport's socket, for waiting until it is readable.
    readiness: UdpSocket,
    last_update: Instant,
    /// Time not yet given to renet's clock (see [`RENET_CLOCK_STEP`]).
    renet_behind: Duration,
    /// Reliable messages per client waiting for room in the channel, in order.
    backlog: HashMap<u64, VecDeque<Vec<u8>>>,
    /// Stream messages per client, packed for the direct lane until the next flush.
    direct: HashMap<u64, DirectBatch>,
    /// Bytes sent per second, over the last second or so.
    rate: SendRate,
}

/// A running measure of the bytes the socket sends.
struct SendRate {
    since: Instant,
    bytes_then: u64,
    per_sec: f64,
}

impl SendRate {
    fn update(&mut self, bytes_now: u64) {
        let elapsed = self.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.per_sec = (bytes_now - self.bytes_then) as f64 / elapsed.as_secs_f64();
            self.since = Instant::now();
            self.bytes_then = bytes_now;
        }
    }
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
        let buffers = udp::request_buffers(
            &socket,
            Some(SOCKET_BUFFER_BYTES),
            Some(SOCKET_BUFFER_BYTES),
        );
        if buffers.recv < SOCKET_BUFFER_BYTES {
            tracing::warn!(
                "the kernel granted {} KiB of the {} KiB receive buffer asked for: bursts of \
                 client datagrams may be dropped under load (raise it with \
                 `sysctl -w net.core.rmem_max={}`)",
                buffers.recv / 1024,
                SOCKET_BUFFER_BYTES / 1024,
                SOCKET_BUFFER_BYTES
            );
        }
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
            transport: ServerTransport::new(config, socket)?,
            readiness,
            last_update: Instant::now(),
            renet_behind: Duration::ZERO,
            backlog: HashMap::new(),
            direct: HashMap::new(),
            rate: SendRate {
                since: Instant::now(),
                bytes_then: 0,
                per_sec: 0.0,
            },
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
        self.renet_behind += dt;
        if self.renet_behind >= RENET_CLOCK_STEP {
            self.renet.update(self.renet_behind);
            self.renet_behind = Duration::ZERO;
        }
        // Stream messages are reported after the reliable ones, as when both
        // were renet channels: a join is handled before the inputs behind it.
        let mut stream = Vec::new();
        if let Err(e) = self
            .transport
            .update(dt, &mut self.renet, |client, payload| {
                direct_events(client, payload, &mut stream)
            })
        {
            tracing::debug!("transport: {e}");
        }
        let mut events = Vec::new();
        while let Some(event) = self.renet.get_event() {
            events.push(match event {
                ServerEvent::ClientConnected { client_id } => NetEvent::Connected {
                    client: client_id,
                    role: Role::from_user_data(self.transport.user_data(client_id).as_ref()),
                },
                ServerEvent::ClientDisconnected { client_id, reason } => {
                    tracing::debug!(client = client_id, %reason, "client disconnected");
                    // Nothing queued for a client that is gone can leave.
                    self.backlog.remove(&client_id);
                    self.direct.remove(&client_id);
                    NetEvent::Disconnected { client: client_id }
                }
            });
        }
        // Only a client whose renet received packets can have new messages.
        for &client in self.transport.heard() {
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
        events.append(&mut stream);
        events
    }

    /// Sends a message to `client`.
    ///
    /// Unreliable messages (change sets, input acks) leave on the direct lane
    /// at the next [`Self::flush`], packed into as few datagrams as fit (see
    /// [`crate::lane`]); one too large for a datagram goes through renet's
    /// unreliable channel, and is dropped if that channel is full: the next
    /// tick's change set supersedes it. Reliable messages are queued in order
    /// and handed to renet only as its channel has room, so a full state of
    /// any size is streamed without ever exceeding renet's per-channel memory
    /// limit (which would disconnect the client).
    pub fn send(&mut self, client: u64, message: &ServerMessage) {
        let bytes = encode(message);
        match message.channel() {
            ServerChannel::Changes => {
                if self.direct.entry(client).or_default().push(&bytes) {
                    return;
                }
                if self
                    .renet
                    .can_send_message(client, ServerChannel::Changes, bytes.len())
                {
                    self.renet
                        .send_message(client, ServerChannel::Changes, bytes);
                    self.transport.queued(client, false);
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

    /// Reliable bytes sent to `client` and not yet acknowledged.
    pub fn reliable_in_flight(&self, client: u64) -> usize {
        reliable_in_flight(&self.renet, client)
    }

    fn drain(&mut self, client: u64) {
        let Some(queue) = self.backlog.get_mut(&client) else {
            return;
        };
        while let Some(bytes) = queue.front() {
            // Keep a bounded window in flight, well inside what the receiver may hold.
            let in_flight = reliable_in_flight(&self.renet, client);
            if in_flight + bytes.len() > RELIABLE_IN_FLIGHT_BYTES && in_flight > 0 {
                break;
            }
            let bytes = queue.pop_front().expect("front exists");
            self.renet
                .send_message(client, ServerChannel::Control, bytes);
            self.transport.queued(client, true);
        }
    }

    /// Sends the direct lane's datagrams, moves paced reliable messages into
    /// renet's channel and sends renet's packets where due (at once for new
    /// messages; acks and resends as [`crate::lane::AckDuty`] says).
    pub fn flush(&mut self) {
        for (&client, batch) in &mut self.direct {
            for payload in batch.take() {
                self.transport.send_payload(client, &payload);
            }
        }
        let clients: Vec<u64> = self.backlog.keys().copied().collect();
        for client in clients {
            self.drain(client);
        }
        self.transport
            .flush_renet(&mut self.renet, |renet, client| {
                reliable_in_flight(renet, client) > 0
            });
        self.rate.update(self.transport.counters().bytes_out);
    }

    /// Disconnects `client`.
    pub fn disconnect(&mut self, client: u64) {
        self.renet.disconnect(client);
        self.direct.remove(&client);
    }

    /// Disconnects everyone (on shutdown) and sends the disconnect packets.
    pub fn shutdown(&mut self) {
        self.transport.disconnect_all(&mut self.renet);
    }

    /// UDP payload bytes per second the socket sent over about the last
    /// second, to all clients, netcode headers included.
    pub fn bytes_sent_per_sec(&self) -> f64 {
        self.rate.per_sec
    }

    /// What crossed the server's socket so far, netcode headers included.
    pub fn udp(&self) -> UdpCounters {
        self.transport.counters()
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

/// Reliable bytes handed to renet for `client` and not yet acknowledged.
fn reliable_in_flight(renet: &RenetServer, client: u64) -> usize {
    RELIABLE_CHANNEL_BYTES
        .saturating_sub(renet.channel_available_memory(client, ServerChannel::Control))
}

/// The events of one direct payload from `client`: its messages, each of
/// which must be a valid stream message.
fn direct_events(client: u64, payload: &[u8], events: &mut Vec<NetEvent>) {
    for message in lane::messages(payload) {
        let malformed = |reason: String| NetEvent::Malformed { client, reason };
        events.push(match message {
            Err(e) => malformed(e.to_string()),
            Ok(bytes) => match decode::<ClientMessage>(bytes) {
                Ok(message) if message.channel() != ClientChannel::Stream => {
                    malformed("a reliable message on the direct lane".into())
                }
                Ok(message) if valid(&message) => NetEvent::Message {
                    client,
                    message,
                    bytes: bytes.len(),
                },
                Ok(_) => malformed("field out of range".into()),
                Err(e) => malformed(e.to_string()),
            },
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(messages: &[Vec<u8>]) -> Vec<NetEvent> {
        let mut batch = DirectBatch::default();
        for m in messages {
            assert!(batch.push(m));
        }
        let mut events = Vec::new();
        for payload in batch.take() {
            direct_events(7, &payload, &mut events);
        }
        events
    }

    #[test]
    fn the_direct_lane_carries_stream_messages_only() {
        let ack = ClientMessage::Ack { tick: 9 };
        let join = ClientMessage::Leave;
        let events = events_of(&[encode(&ack), encode(&join), vec![0xFF; 3]]);
        assert_eq!(events.len(), 3);
        assert!(matches!(
            &events[0],
            NetEvent::Message { client: 7, message, .. } if *message == ack
        ));
        assert!(matches!(
            &events[1],
            NetEvent::Malformed { client: 7, reason } if reason.contains("reliable")
        ));
        assert!(matches!(&events[2], NetEvent::Malformed { client: 7, .. }));
    }

    #[test]
    fn a_truncated_direct_payload_is_malformed() {
        let mut events = Vec::new();
        direct_events(3, &[lane::DIRECT, 200, 0, 1, 2], &mut events);
        assert!(matches!(
            &events[..],
            [NetEvent::Malformed { client: 3, .. }]
        ));
    }
}

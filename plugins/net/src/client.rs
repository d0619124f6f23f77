//! The native client: transport ([`NetClient`]) and a replicated game session ([`GameClient`]).

mod held_input;
pub mod prediction;
mod session;
mod transport;

pub use held_input::HELD_INPUT_REPEAT;
pub use transport::UdpCounters;

pub use session::{
    COMMAND_RETRIES, COMMAND_RETRY_START, CommandResult, GameClient, SessionStats, SyncState,
};

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use renet::RenetClient;
use renet_netcode::{ClientAuthentication, ConnectToken};
use thiserror::Error;
use transport::UdpTransport;

use crate::channels::{CLIENT_RELIABLE_CHANNEL_BYTES, connection_config};
use crate::keys::Role;
use crate::lane::{self, DirectBatch};
use crate::protocol::{
    ClientChannel, ClientMessage, PROTOCOL_ID, ServerChannel, ServerMessage, decode, encode,
};

/// Kernel receive buffer asked for on a client's socket: a full state
/// arrives as a burst of datagrams.
const RECV_BUFFER_BYTES: usize = 1 << 20;

/// Decodes a server message that arrived on `channel` into `out`; drops it,
/// with a warning, when it is malformed or belongs to the other channel.
fn accept(channel: ServerChannel, bytes: &[u8], out: &mut Vec<ServerMessage>) {
    match decode::<ServerMessage>(bytes) {
        Ok(m) if m.channel() == channel => out.push(m),
        Ok(_) => tracing::warn!("dropped a server message on the wrong channel"),
        Err(e) => tracing::warn!("dropped a server message: {e}"),
    }
}

/// How a client authenticates.
pub enum ClientAuth {
    /// A connect token minted with the server's key.
    Secure(Box<ConnectToken>),
    /// No token: only accepted by an `--insecure` server.
    Insecure {
        /// The client id to claim.
        client_id: u64,
        /// The server to connect to.
        server: SocketAddr,
        /// The role to claim.
        role: Role,
    },
}

/// Why the client transport failed.
#[derive(Debug, Error)]
pub enum NetError {
    /// Socket trouble.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// netcode trouble (bad token, timeout, refused).
    #[error("netcode: {0}")]
    Netcode(String),
    /// The connection ended.
    #[error("disconnected: {0}")]
    Disconnected(String),
}

/// The client side of the transport.
pub struct NetClient {
    renet: RenetClient,
    transport: UdpTransport,
    last_update: Instant,
    bytes_received: u64,
    /// Stream messages packed for the direct lane until the next flush.
    direct: DirectBatch,
}

impl NetClient {
    /// Starts connecting from an ephemeral local port.
    pub fn connect(auth: ClientAuth) -> Result<Self, NetError> {
        let server = match &auth {
            ClientAuth::Secure(token) => token.server_addresses.iter().flatten().next().copied(),
            ClientAuth::Insecure { server, .. } => Some(*server),
        }
        .ok_or_else(|| NetError::Netcode("the connect token names no server".into()))?;
        // Any local address of the server's family: a client on another
        // machine must be able to reach it, not only a loopback one.
        let local: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        // A full state arrives as a burst of datagrams: room for it even when
        // the application reads a little late.
        crate::udp::request_buffers(&socket, Some(RECV_BUFFER_BYTES), None);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let authentication = match auth {
            ClientAuth::Secure(token) => ClientAuthentication::Secure {
                connect_token: *token,
            },
            ClientAuth::Insecure {
                client_id,
                server,
                role,
            } => ClientAuthentication::Unsecure {
                protocol_id: PROTOCOL_ID,
                client_id,
                server_addr: server,
                user_data: Some(role.to_user_data()),
            },
        };
        let transport = UdpTransport::new(now, authentication, socket)
            .map_err(|e| NetError::Netcode(e.to_string()))?;
        Ok(Self {
            renet: RenetClient::new(connection_config()),
            transport,
            last_update: Instant::now(),
            bytes_received: 0,
            direct: DirectBatch::default(),
        })
    }

    /// Reads the socket and returns the server's messages since the last call.
    /// Undecodable messages are dropped with a warning.
    pub fn update(&mut self) -> Result<Vec<ServerMessage>, NetError> {
        let now = Instant::now();
        let dt = now - self.last_update;
        self.last_update = now;
        self.renet.update(dt);
        // Decoded as they are read: the transport reuses its buffer.
        let (mut direct, mut direct_bytes) = (Vec::new(), 0);
        self.transport
            .update(dt, &mut self.renet, |payload| {
                for message in lane::messages(payload) {
                    match message {
                        Ok(bytes) => {
                            direct_bytes += bytes.len() as u64;
                            accept(ServerChannel::Changes, bytes, &mut direct);
                        }
                        Err(e) => tracing::warn!("dropped a direct payload: {e}"),
                    }
                }
            })
            .map_err(|e| NetError::Netcode(e.to_string()))?;
        self.bytes_received += direct_bytes;
        if let Some(reason) = self.transport.disconnect_reason() {
            return Err(NetError::Disconnected(explain(reason)));
        }
        if let Some(reason) = self.renet.disconnect_reason() {
            return Err(NetError::Disconnected(reason.to_string()));
        }
        // Reliable messages first, then the stream, as when both were renet
        // channels: a full state is applied before the change sets behind it.
        let mut messages = Vec::new();
        while let Some(bytes) = self.renet.receive_message(ServerChannel::Control) {
            self.bytes_received += bytes.len() as u64;
            accept(ServerChannel::Control, &bytes, &mut messages);
        }
        messages.append(&mut direct);
        while let Some(bytes) = self.renet.receive_message(ServerChannel::Changes) {
            self.bytes_received += bytes.len() as u64;
            accept(ServerChannel::Changes, &bytes, &mut messages);
        }
        Ok(messages)
    }

    /// Whether the handshake completed.
    pub fn is_connected(&self) -> bool {
        self.renet.is_connected()
    }

    /// Queues a message until the next [`Self::flush`]. Stream messages
    /// (inputs, acks, reports) go on the direct lane, packed into as few
    /// datagrams as fit (see [`crate::lane`]); reliable ones through renet.
    pub fn send(&mut self, message: &ClientMessage) {
        let bytes = encode(message);
        let channel = message.channel();
        if channel == ClientChannel::Stream && self.direct.push(&bytes) {
            return;
        }
        self.renet.send_message(channel, bytes);
        self.transport.queued(channel == ClientChannel::Control);
    }

    /// Sends the direct lane's datagrams, and renet's packets where due: at
    /// once for new messages; acks and resends as [`crate::lane::AckDuty`] says.
    pub fn flush(&mut self) {
        for payload in self.direct.take() {
            if let Err(e) = self.transport.send_payload(&payload) {
                tracing::debug!("send: {e}");
            }
        }
        let in_flight = self.renet.channel_available_memory(ClientChannel::Control)
            < CLIENT_RELIABLE_CHANNEL_BYTES;
        if let Err(e) = self.transport.flush_renet(&mut self.renet, in_flight) {
            tracing::debug!("send: {e}");
        }
    }

    /// Disconnects politely.
    pub fn disconnect(&mut self) {
        self.transport.disconnect();
    }

    /// Message bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// What crossed this client's socket so far, netcode header included.
    pub fn udp(&self) -> UdpCounters {
        self.transport.counters()
    }

    /// Round-trip time estimate in seconds.
    pub fn rtt(&self) -> f64 {
        self.renet.rtt()
    }

    /// Notes the kernel's receive time of every datagram from now on (Linux
    /// only; one extra system call per datagram): see [`Self::last_arrival`].
    pub fn record_arrivals(&mut self, on: bool) {
        self.transport.record_arrivals(on);
    }

    /// Whether arrivals are recorded.
    pub fn records_arrivals(&self) -> bool {
        self.transport.records_arrivals()
    }

    /// When the newest datagram read by the last [`Self::update`] reached
    /// this machine, by the kernel's clock (`SystemTime`), if arrivals are
    /// recorded. A load generator that serves many clients in turn reads a
    /// client's socket late; this is when a client reading its own socket
    /// could have had the data.
    pub fn last_arrival(&self) -> Option<std::time::SystemTime> {
        self.transport.last_arrival()
    }
}

/// netcode's reason for a disconnect, with what to check when the server
/// never answered: netcode servers drop requests they cannot accept (another
/// protocol id, an expired or foreign token) without a word.
fn explain(reason: renetcode::DisconnectReason) -> String {
    use renetcode::DisconnectReason as R;
    match reason {
        R::ConnectionRequestTimedOut | R::ConnectionResponseTimedOut => format!(
            "{reason}: the server never answered; check that it runs at that address, \
             that its port is reachable, that the token was minted with its key \
             (or that both sides are `--insecure`), and that it speaks this \
             client's protocol (id {PROTOCOL_ID:#x})"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use renetcode::DisconnectReason;

    use super::*;

    #[test]
    fn a_silent_server_gets_a_checklist_and_other_reasons_stay_as_they_are() {
        let silent = explain(DisconnectReason::ConnectionRequestTimedOut);
        assert!(silent.contains("never answered"), "{silent}");
        assert!(silent.contains(&format!("{PROTOCOL_ID:#x}")), "{silent}");
        let denied = explain(DisconnectReason::ConnectionDenied);
        assert_eq!(denied, DisconnectReason::ConnectionDenied.to_string());
    }
}

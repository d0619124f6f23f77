//! The client's UDP socket loop: netcode over a socket we read ourselves.
//!
//! This is `renet_netcode::NetcodeClientTransport` with one addition: it counts
//! the datagrams and bytes that cross the socket, netcode header and MAC
//! included. Bandwidth figures (`kasagi bots`, the load scenarios) are quoted
//! as what a real client reads from its socket, so they have to be measured
//! here rather than from the renet messages.

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use renet::RenetClient;
use renetcode::{
    ClientAuthentication, DisconnectReason, NETCODE_MAX_PACKET_BYTES, NetcodeClient, NetcodeError,
};

/// What crossed the socket, netcode header included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams received from the server.
    pub datagrams_in: u64,
    /// Their UDP payload bytes.
    pub bytes_in: u64,
    /// Datagrams sent to the server.
    pub datagrams_out: u64,
    /// Their UDP payload bytes.
    pub bytes_out: u64,
}

impl std::ops::Add for UdpCounters {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            datagrams_in: self.datagrams_in + other.datagrams_in,
            bytes_in: self.bytes_in + other.bytes_in,
            datagrams_out: self.datagrams_out + other.datagrams_out,
            bytes_out: self.bytes_out + other.bytes_out,
        }
    }
}

/// Why the transport failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("{0}")]
    Netcode(#[from] NetcodeError),
    #[error("{0}")]
    Renet(renet::DisconnectReason),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A netcode client on its own non-blocking socket.
pub(crate) struct UdpTransport {
    socket: UdpSocket,
    netcode: NetcodeClient,
    buffer: Box<[u8; NETCODE_MAX_PACKET_BYTES]>,
    counters: UdpCounters,
}

impl UdpTransport {
    pub fn new(
        now: Duration,
        authentication: ClientAuthentication,
        socket: UdpSocket,
    ) -> Result<Self, TransportError> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            netcode: NetcodeClient::new(now, authentication)?,
            buffer: Box::new([0; NETCODE_MAX_PACKET_BYTES]),
            counters: UdpCounters::default(),
        })
    }

    pub fn counters(&self) -> UdpCounters {
        self.counters
    }

    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.netcode.disconnect_reason()
    }

    /// Sends the disconnect packet now (closing the client).
    pub fn disconnect(&mut self) {
        if self.netcode.is_disconnected() {
            return;
        }
        if let Ok((addr, packet)) = self.netcode.disconnect() {
            let _ = self.socket.send_to(packet, addr);
        }
    }

    /// Encrypts and sends everything renet has queued.
    pub fn send_packets(&mut self, renet: &mut RenetClient) -> Result<(), TransportError> {
        if let Some(reason) = self.netcode.disconnect_reason() {
            return Err(NetcodeError::Disconnected(reason).into());
        }
        for packet in renet.get_packets_to_send() {
            let (addr, payload) = self.netcode.generate_payload_packet(&packet)?;
            self.counters.datagrams_out += 1;
            self.counters.bytes_out += payload.len() as u64;
            self.socket.send_to(payload, addr)?;
        }
        Ok(())
    }

    /// Advances netcode by `dt` and feeds every datagram waiting on the socket to renet.
    pub fn update(&mut self, dt: Duration, renet: &mut RenetClient) -> Result<(), TransportError> {
        if let Some(reason) = self.netcode.disconnect_reason() {
            renet.disconnect_due_to_transport();
            return Err(NetcodeError::Disconnected(reason).into());
        }
        if let Some(reason) = renet.disconnect_reason() {
            let (addr, packet) = self.netcode.disconnect()?;
            self.socket.send_to(packet, addr)?;
            return Err(TransportError::Renet(reason));
        }
        if self.netcode.is_connected() {
            renet.set_connected();
        } else if self.netcode.is_connecting() {
            renet.set_connecting();
        }
        loop {
            let len = match self.socket.recv_from(&mut self.buffer[..]) {
                Ok((len, addr)) if addr == self.netcode.server_addr() => len,
                Ok(_) => continue, // not our server
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            self.counters.datagrams_in += 1;
            self.counters.bytes_in += len as u64;
            if let Some(payload) = self.netcode.process_packet(&mut self.buffer[..len]) {
                renet.process_packet(payload);
            }
        }
        if let Some((packet, addr)) = self.netcode.update(dt) {
            self.counters.datagrams_out += 1;
            self.counters.bytes_out += packet.len() as u64;
            self.socket.send_to(packet, addr)?;
        }
        Ok(())
    }
}

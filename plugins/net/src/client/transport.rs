//! The client's UDP socket loop: netcode over a socket we read ourselves.
//!
//! This is `renet_netcode::NetcodeClientTransport` with two additions: the
//! direct lane ([`crate::lane`]: payloads that start with
//! [`crate::lane::DIRECT`] never reach renet, and renet flushes only when its
//! [`AckDuty`] says so), and counters of the datagrams and bytes that cross
//! the socket, netcode header and MAC included. Bandwidth figures (`kasagi bots`, the load scenarios) are quoted
//! as what a real client reads from its socket, so they have to be measured
//! here rather than from the renet messages. On request it also notes when
//! the kernel received each datagram (see [`UdpTransport::record_arrivals`]).

use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime};

use renet::RenetClient;
use renetcode::{
    ClientAuthentication, DisconnectReason, NETCODE_MAX_PACKET_BYTES, NetcodeClient, NetcodeError,
};

use crate::lane::{AckDuty, is_direct};
use crate::udp;

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

impl std::ops::Sub for UdpCounters {
    type Output = Self;

    /// What crossed between two readings (`later - earlier`); saturating, so
    /// counters of a replaced connection never underflow.
    fn sub(self, earlier: Self) -> Self {
        Self {
            datagrams_in: self.datagrams_in.saturating_sub(earlier.datagrams_in),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            datagrams_out: self.datagrams_out.saturating_sub(earlier.datagrams_out),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
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
    /// Whether to ask the kernel when each datagram arrived.
    arrivals: bool,
    /// The newest arrival among the datagrams the last `update` read.
    last_arrival: Option<SystemTime>,
    /// When renet must flush.
    duty: AckDuty,
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
            arrivals: false,
            last_arrival: None,
            duty: AckDuty::new(Instant::now()),
        })
    }

    /// Notes the kernel's receive time of every datagram read from now on
    /// (Linux; elsewhere nothing is noted). Costs one `ioctl` per datagram,
    /// so it is off unless a measurement asks for it.
    pub fn record_arrivals(&mut self, on: bool) {
        self.arrivals = on;
    }

    /// Whether arrival times are noted.
    pub fn records_arrivals(&self) -> bool {
        self.arrivals
    }

    /// When the kernel received the newest datagram the last `update` read,
    /// if arrivals are recorded and it read any.
    pub fn last_arrival(&self) -> Option<SystemTime> {
        self.last_arrival
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

    /// renet has messages queued (`reliable`: on the reliable channel):
    /// flush it at the next chance.
    pub fn queued(&mut self, reliable: bool) {
        self.duty.queue(reliable);
    }

    /// Encrypts and sends one payload (direct, or a renet packet).
    pub fn send_payload(&mut self, payload: &[u8]) -> Result<(), TransportError> {
        if let Some(reason) = self.netcode.disconnect_reason() {
            return Err(NetcodeError::Disconnected(reason).into());
        }
        let (addr, packet) = self.netcode.generate_payload_packet(payload)?;
        self.counters.datagrams_out += 1;
        self.counters.bytes_out += packet.len() as u64;
        self.socket.send_to(packet, addr)?;
        Ok(())
    }

    /// Encrypts and sends renet's packets if its [`AckDuty`] is due;
    /// `in_flight`: renet has reliable messages unacknowledged.
    pub fn flush_renet(
        &mut self,
        renet: &mut RenetClient,
        in_flight: bool,
    ) -> Result<(), TransportError> {
        let now = Instant::now();
        if !self.duty.due(now, || in_flight) {
            return Ok(());
        }
        self.duty.flushed(now);
        for packet in renet.get_packets_to_send() {
            self.send_payload(&packet)?;
        }
        Ok(())
    }

    /// Advances netcode by `dt` and reads every datagram waiting on the
    /// socket: renet's packets go to `renet`, direct payloads to `on_direct`.
    pub fn update(
        &mut self,
        dt: Duration,
        renet: &mut RenetClient,
        mut on_direct: impl FnMut(&[u8]),
    ) -> Result<(), TransportError> {
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
        self.last_arrival = None;
        while let Some((len, addr)) = udp::recv(&self.socket, &mut self.buffer[..])? {
            if addr != self.netcode.server_addr() {
                continue; // not our server
            }
            self.counters.datagrams_in += 1;
            self.counters.bytes_in += len as u64;
            if self.arrivals
                && let Some(at) = kernel_arrival(&self.socket)
            {
                self.last_arrival = Some(self.last_arrival.map_or(at, |t| t.max(at)));
            }
            if let Some(payload) = self.netcode.process_packet(&mut self.buffer[..len]) {
                if is_direct(payload) {
                    on_direct(payload);
                } else {
                    self.duty.hear(payload);
                    renet.process_packet(payload);
                }
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

/// The kernel's receive time of the last datagram read from `socket`.
///
/// `SIOCGSTAMPNS` (asm-generic/sockios.h; `libc` does not export it) turns on
/// timestamping for the socket at its first use, so the very first datagram
/// may have none.
#[cfg(target_os = "linux")]
fn kernel_arrival(socket: &UdpSocket) -> Option<SystemTime> {
    use std::os::fd::AsRawFd;
    const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
    let mut stamp = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid socket descriptor and a `timespec` the kernel fills in.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSTAMPNS as _, &mut stamp) };
    if rc != 0 || stamp.tv_sec <= 0 {
        return None;
    }
    let since_epoch = Duration::new(
        stamp.tv_sec as u64,
        stamp.tv_nsec.clamp(0, 999_999_999) as u32,
    );
    SystemTime::UNIX_EPOCH.checked_add(since_epoch)
}

/// Arrival times are a Linux feature here.
#[cfg(not(target_os = "linux"))]
fn kernel_arrival(_socket: &UdpSocket) -> Option<SystemTime> {
    None
}

//! The server's UDP socket loop: netcode over a socket we read ourselves.
//!
//! This is `renet_netcode::NetcodeServerTransport` with the direct lane
//! ([`crate::lane`]): payloads that start with [`crate::lane::DIRECT`] carry
//! clients' stream messages and never reach renet, and renet flushes each
//! client only when its [`AckDuty`] says so. It also counts what crosses the
//! socket, netcode header included.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use renet::RenetServer;
use renetcode::{
    NETCODE_MAX_PACKET_BYTES, NETCODE_USER_DATA_BYTES, NetcodeServer, ServerConfig, ServerResult,
};

use crate::client::UdpCounters;
use crate::lane::{AckDuty, is_direct};
use crate::udp;

/// How often netcode looks at connections (timeouts, keep-alives), each
/// time at every [`SWEEP_TURNS`]th one, so each connection every 50 ms.
/// netcode finds a connection by a linear search of its slots, so a look at
/// every connection costs the square of their number: on every pass of the
/// network thread (thousands a second) it cost more than all the encryption
/// (a tenth of the thread in S2i, 200 clients), and every 10 ms still 16 %
/// of the thread in S5 (1,000 clients). Keep-alives go out every 100 ms and
/// timeouts are seconds, so 50 ms is soon enough for both.
const SWEEP_INTERVAL: Duration = Duration::from_millis(10);

/// Sweeps that take turns to look at all connections once.
const SWEEP_TURNS: usize = 5;

/// A netcode server on its own non-blocking socket.
pub(crate) struct ServerTransport {
    socket: UdpSocket,
    netcode: NetcodeServer,
    buffer: Box<[u8; NETCODE_MAX_PACKET_BYTES]>,
    counters: UdpCounters,
    duties: HashMap<u64, AckDuty>,
    last_sweep: Instant,
    /// Which share of the connections the next sweep looks at.
    sweep_turn: usize,
    /// Clients whose renet received packets in the last `update`.
    heard: Vec<u64>,
}

/// What the receive path needs besides netcode (borrowed apart from it).
struct Sink<'a, F> {
    socket: &'a UdpSocket,
    counters: &'a mut UdpCounters,
    duties: &'a mut HashMap<u64, AckDuty>,
    heard: &'a mut Vec<u64>,
    renet: &'a mut RenetServer,
    on_direct: &'a mut F,
}

impl<F: FnMut(u64, &[u8])> Sink<'_, F> {
    fn send(&mut self, packet: &[u8], addr: SocketAddr) {
        self.counters.datagrams_out += 1;
        self.counters.bytes_out += packet.len() as u64;
        if let Err(e) = self.socket.send_to(packet, addr) {
            tracing::debug!("send to {addr}: {e}");
        }
    }

    fn handle(&mut self, result: ServerResult) {
        match result {
            ServerResult::None => {}
            ServerResult::PacketToSend { payload, addr } => self.send(payload, addr),
            ServerResult::Payload { client_id, payload } => {
                if is_direct(payload) {
                    (self.on_direct)(client_id, payload);
                    return;
                }
                if let Some(duty) = self.duties.get_mut(&client_id) {
                    duty.hear(payload);
                }
                if !self.heard.contains(&client_id) {
                    self.heard.push(client_id);
                }
                if let Err(e) = self.renet.process_packet_from(payload, client_id) {
                    tracing::debug!("renet packet from {client_id}: {e}");
                }
            }
            ServerResult::ClientConnected {
                client_id,
                addr,
                payload,
                ..
            } => {
                self.renet.add_connection(client_id);
                self.duties.insert(client_id, AckDuty::new(Instant::now()));
                self.send(payload, addr);
            }
            ServerResult::ClientDisconnected {
                client_id,
                addr,
                payload,
            } => {
                self.renet.remove_connection(client_id);
                self.duties.remove(&client_id);
                if let Some(payload) = payload {
                    self.send(payload, addr);
                }
            }
        }
    }
}

impl ServerTransport {
    pub fn new(config: ServerConfig, socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            netcode: NetcodeServer::new(config),
            buffer: Box::new([0; NETCODE_MAX_PACKET_BYTES]),
            counters: UdpCounters::default(),
            duties: HashMap::new(),
            last_sweep: Instant::now(),
            sweep_turn: 0,
            heard: Vec::new(),
        })
    }

    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.netcode.addresses()
    }

    pub fn user_data(&self, client: u64) -> Option<[u8; NETCODE_USER_DATA_BYTES]> {
        self.netcode.user_data(client)
    }

    pub fn time_since_last_received_packet(&self, client: u64) -> Option<Duration> {
        self.netcode.time_since_last_received_packet(client)
    }

    pub fn counters(&self) -> UdpCounters {
        self.counters
    }

    /// The clients whose renet received packets in the last [`Self::update`]:
    /// only their channels can hold new messages.
    pub fn heard(&self) -> &[u64] {
        &self.heard
    }

    /// Advances netcode by `dt` and reads every datagram waiting: renet's
    /// packets go to `renet`, direct payloads to `on_direct` with their client.
    pub fn update(
        &mut self,
        dt: Duration,
        renet: &mut RenetServer,
        mut on_direct: impl FnMut(u64, &[u8]),
    ) -> io::Result<()> {
        self.netcode.update(dt);
        self.heard.clear();
        let sweep = self.last_sweep.elapsed() >= SWEEP_INTERVAL;
        let turn = self.sweep_turn;
        if sweep {
            self.last_sweep = Instant::now();
            self.sweep_turn = (turn + 1) % SWEEP_TURNS;
        }
        let (netcode, buffer, mut sink) = self.split(renet, &mut on_direct);
        while let Some((len, addr)) = udp::recv(sink.socket, &mut buffer[..])? {
            sink.counters.datagrams_in += 1;
            sink.counters.bytes_in += len as u64;
            sink.handle(netcode.process_packet(addr, &mut buffer[..len]));
        }
        if sweep {
            for client in netcode
                .clients_id()
                .into_iter()
                .skip(turn)
                .step_by(SWEEP_TURNS)
            {
                sink.handle(netcode.update_client(client));
            }
        }
        for client in sink.renet.disconnections_id() {
            sink.handle(netcode.disconnect(client));
        }
        Ok(())
    }

    /// netcode, the receive buffer, and what the receive path needs besides
    /// them, borrowed apart.
    fn split<'a, F>(
        &'a mut self,
        renet: &'a mut RenetServer,
        on_direct: &'a mut F,
    ) -> (
        &'a mut NetcodeServer,
        &'a mut [u8; NETCODE_MAX_PACKET_BYTES],
        Sink<'a, F>,
    ) {
        let sink = Sink {
            socket: &self.socket,
            counters: &mut self.counters,
            duties: &mut self.duties,
            heard: &mut self.heard,
            renet,
            on_direct,
        };
        (&mut self.netcode, &mut self.buffer, sink)
    }

    /// renet has messages queued for `client` (`reliable`: on the reliable
    /// channel): flush it at the next chance.
    pub fn queued(&mut self, client: u64, reliable: bool) {
        if let Some(duty) = self.duties.get_mut(&client) {
            duty.queue(reliable);
        }
    }

    /// Encrypts and sends one payload (direct, or a renet packet) to `client`.
    pub fn send_payload(&mut self, client: u64, payload: &[u8]) {
        match self.netcode.generate_payload_packet(client, payload) {
            Ok((addr, packet)) => {
                self.counters.datagrams_out += 1;
                self.counters.bytes_out += packet.len() as u64;
                if let Err(e) = self.socket.send_to(packet, addr) {
                    tracing::debug!("send to client {client}: {e}");
                }
            }
            // Not (or no longer) connected: the payload is lost, as on a lossy link.
            Err(e) => tracing::debug!("payload for client {client}: {e}"),
        }
    }

    /// Sends renet's packets for every client whose [`AckDuty`] is due;
    /// `in_flight` tells whether a client has reliable messages unacknowledged.
    pub fn flush_renet(
        &mut self,
        renet: &mut RenetServer,
        in_flight: impl Fn(&RenetServer, u64) -> bool,
    ) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .duties
            .iter_mut()
            .filter_map(|(&client, duty)| {
                duty.due(now, || in_flight(renet, client)).then(|| {
                    duty.flushed(now);
                    client
                })
            })
            .collect();
        for client in due {
            let Ok(packets) = renet.get_packets_to_send(client) else {
                continue;
            };
            for packet in packets {
                self.send_payload(client, &packet);
            }
        }
    }

    /// Disconnects every client and sends the disconnect packets now.
    pub fn disconnect_all(&mut self, renet: &mut RenetServer) {
        let mut ignore = |_: u64, _: &[u8]| {};
        let (netcode, _, mut sink) = self.split(renet, &mut ignore);
        for client in netcode.clients_id() {
            sink.handle(netcode.disconnect(client));
        }
    }
}

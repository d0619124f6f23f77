//! `kasagi serve`: rooms over UDP.
//!
//! One network thread owns the socket ([`kasagi_net::server::NetServer`]) and
//! routes messages; every room is an actor ticking its world in real time and
//! talking to the network thread only through channels. A pool of worker
//! threads, one per core by default, ticks the rooms earliest deadline
//! first: rooms tick in parallel across cores, and a busy room never stalls
//! the network thread.

mod cadence;
mod commands;
mod load_window;
mod network;
mod outlet;
mod rate_limit;
mod room_pool;
mod room_store;
mod room_worker;
mod shedding;
mod wake;

pub use load_window::{LoadReport, LoadWindowSpec, WindowPhase, process_cpu_secs};
pub use network::{GameServer, ServeOptions, ServerStatus};
pub use rate_limit::{RateLimiter, RateLimits, Verdict};
pub use room_store::build as build_room;

use kasagi_net::keys::Role;
use kasagi_net::protocol::{ClientMessage, ServerMessage, SessionToken};

/// What the network thread tells a room.
#[derive(Debug)]
pub(crate) enum ToRoom {
    /// A client joined, or resumes a session.
    Join {
        /// The client.
        client: u64,
        /// The session it presents, if reconnecting.
        session: Option<SessionToken>,
        /// Its role, from its connect token.
        role: Role,
    },
    /// A client message for this room.
    Message {
        /// The client.
        client: u64,
        /// The message.
        message: ClientMessage,
    },
    /// A client left for good (`lost: false`) or its connection dropped (`lost: true`,
    /// its player waits for a reconnect during the grace period).
    Leave {
        /// The client.
        client: u64,
        /// Whether the connection was lost rather than closed by a Leave.
        lost: bool,
    },
    /// Stop ticking and exit.
    Shutdown,
}

/// How one tick of a room went.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TickTiming {
    /// The point of the room's grid the tick ran for (`cadence`): a load
    /// window counts the ticks due within it, so a tick it skipped is
    /// exactly one missing, however late the others ran.
    pub due: std::time::Instant,
    /// Wall time of the tick, µs.
    pub micros: u64,
    /// CPU time the worker thread spent in the tick, µs: the wall time less
    /// any time it waited for a core.
    pub cpu_micros: u64,
    /// Wall time from the tick's start to the hand-over of its packets
    /// (`outlet::hand_over`), µs; `None` if the tick handed nothing over.
    pub handover_micros: Option<u64>,
    /// How long after its place on the room's grid the tick started, µs
    /// (see `cadence`): the wait for a worker.
    pub late_micros: u64,
    /// Change sets the tick built, and client ticks it held back.
    pub sends: kasagi_replication::SendTotals,
}

/// What a room tells the network thread.
#[derive(Debug)]
pub(crate) enum FromRoom {
    /// A message for one client.
    Send {
        /// The client.
        client: u64,
        /// The message.
        message: ServerMessage,
    },
    /// A tick's change sets and input acks, in order, handed over at once so
    /// that the network thread sends them in one flush: a client's change set
    /// and its input ack then share a datagram.
    SendAll(Vec<(u64, ServerMessage)>),
    /// The room's tick timing, for the status line and the load window.
    Tick(TickTiming),
    /// The room resumed from the store.
    Recovered {
        /// The room.
        room: String,
        /// How.
        report: crate::persist::Recovery,
    },
    /// The room has no players left and shut itself down (or could not start).
    Closed {
        /// The room.
        room: String,
        /// The room's inbox, with whatever was sent after the room's last
        /// look at it: a client may join while the room is closing. The
        /// network thread, the inbox's only sender, drains it once it has
        /// forgotten the room, so nothing sent to the room is lost.
        unread: crossbeam_channel::Receiver<ToRoom>,
        /// The room could not start (its persisted state is unreadable):
        /// joiners among `unread` hear so, rather than the room starting again.
        failed: bool,
    },
}

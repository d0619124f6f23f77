//! Handing a tick's packets to the network thread as soon as they exist.
//!
//! Every client's change set is built and encoded in
//! `ReplicationSystems::Send`; what the tick does after it (field diffs and
//! the sealed full change set in `ReplicationSystems::Record`, persistence)
//! is bookkeeping that no client waits for. So the room worker fills the
//! [`Outlet`] before each tick with who listens, and [`hand_over`] runs
//! between `Send` and `Record`: the network thread encrypts and sends the
//! change sets while the room finishes its tick. A room without an outlet
//! (benches, tools, tests) keeps its packets for whoever takes them.

use std::time::Instant;

use bevy_ecs::prelude::*;
use crossbeam_channel::Sender;
use kasagi_net::protocol::ServerMessage;
use kasagi_replication::codec::is_full_state;
use kasagi_replication::{ClientId, ReplicationServer};

use super::FromRoom;
use super::wake::Waker;
use crate::room::Tick;

/// Where a serving room's packets go, and to whom, for the tick about to run.
#[derive(Resource)]
pub(crate) struct Outlet {
    out: Sender<FromRoom>,
    waker: Option<Waker>,
    /// The room's connected members, each with the newest input sequence
    /// this tick applies for it, if it sent one since the last tick.
    pub members: Vec<(u64, Option<u32>)>,
    /// Members whose connection dropped: their packets are dropped (their
    /// next change set after a reconnect carries everything since their
    /// last ack anyway).
    pub away: Vec<u64>,
    /// When this tick handed its packets over (`None` until it has): what
    /// the input-to-observer latency waits for, reported next to the tick time.
    pub handed_over: Option<Instant>,
}

impl Outlet {
    /// An empty outlet sending on `out` and waking the network thread with `waker`.
    pub fn new(out: Sender<FromRoom>, waker: Option<Waker>) -> Self {
        Self {
            out,
            waker,
            members: Vec::new(),
            away: Vec::new(),
            handed_over: None,
        }
    }
}

/// Hands every member's change set packets and input ack to the network
/// thread, as one message.
pub(crate) fn hand_over(
    outlet: Option<ResMut<Outlet>>,
    mut server: ResMut<ReplicationServer>,
    tick: Res<Tick>,
) {
    let Some(mut outlet) = outlet else {
        return;
    };
    let mut messages = Vec::with_capacity(outlet.members.len() * 2);
    for &(client, acked) in &outlet.members {
        for bytes in server.take_packets(ClientId(client)) {
            let message = if is_full_state(&bytes).unwrap_or(false) {
                ServerMessage::FullState(bytes)
            } else {
                ServerMessage::Changes(bytes)
            };
            messages.push((client, message));
        }
        if let Some(sequence) = acked {
            let tick = tick.get();
            messages.push((client, ServerMessage::InputAck { sequence, tick }));
        }
    }
    for &client in &outlet.away {
        server.take_packets(ClientId(client));
    }
    if !messages.is_empty() {
        let _ = outlet.out.send(FromRoom::SendAll(messages));
        if let Some(waker) = &outlet.waker {
            waker.wake();
        }
    }
    outlet.handed_over = Some(Instant::now());
}

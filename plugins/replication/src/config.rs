//! Replication settings.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

/// How the server replicates. Inserted by [`crate::ReplicationPlugin`].
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationConfig {
    /// Ticks of change history kept for deltas. A client whose last ack is older
    /// than this (or who never acked) gets the full visible state instead.
    pub history_ticks: u32,
    /// Every this many ticks a client's change set carries a checksum of its visible state.
    /// Clients are staggered so that checksums spread evenly over ticks. 0 disables checksums.
    pub checksum_interval: u32,
    /// Size of one position quantum in world units; positions travel as integer multiples.
    pub position_precision: f32,
    /// Largest encoded packet, in bytes. A change set that does not fit is split at entity boundaries.
    pub mtu: usize,
    /// Largest encoded packet of a full state. Transports that carry full states on
    /// a reliable channel raise it so that large worlds take fewer, larger parts.
    pub full_state_mtu: usize,
    /// Side of an interest grid cell, in world units.
    pub cell_size: f32,
    /// Extra distance beyond a view radius before a visible entity leaves view,
    /// so entities at the edge do not flicker in and out.
    pub hysteresis: f32,
    /// Resend a full state if it has not been acked after this many ticks. `None` when the
    /// transport delivers full states reliably, so that a large state is never sent twice.
    pub full_state_resend_ticks: Option<u32>,
    /// Build each change set against the previous one sent (the chain), not
    /// against the client's last acknowledged tick, so that a set carries one
    /// tick of changes however late acks arrive; a client that misses a link
    /// reports it and gets a repair. Off: every set carries everything since
    /// the acknowledged tick, which costs bytes and work in proportion to the
    /// round trip but never needs a report. See ARCHITECTURE.md, "Delivery semantics".
    pub chained_deltas: bool,
    /// Build the full change set each tick (every field change, old → new;
    /// see [`crate::ReplicationServer::full_change_set`]). Clients never
    /// need it: it is for persistence, replay and tools. A server whose
    /// full change sets nobody reads turns it off, at start or with
    /// [`crate::ReplicationServer::set_full_change_set`], and saves the
    /// field diffs and the per-change records (≈ 15 % of a village tick).
    /// Off, [`crate::ReplicationServer::full_change_set`] is an empty set
    /// for each tick.
    pub full_change_set: bool,
    /// A client whose acks come this many ticks or more later than its
    /// round trip (the least lag between a set and its ack seen lately) gets
    /// change sets less often: every second tick, every third from twice as
    /// late. Such a client reads its sets more slowly than they come (a
    /// starved or overloaded device, a congested link), so each set waits in
    /// a queue in front of it; one set every few ticks carries the same
    /// changes, merged, in fewer and smaller packets, for less work on both
    /// ends, and the client catches up. A long round trip alone holds
    /// nothing back. Full states, repairs and due checksums never wait.
    /// 0: every client gets every tick's set. See ARCHITECTURE.md,
    /// "Delivery semantics".
    pub backoff_after_ticks: u32,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            history_ticks: 64,
            checksum_interval: 30,
            position_precision: 0.05,
            mtu: 1200,
            full_state_mtu: 1200,
            cell_size: 32.0,
            hysteresis: 8.0,
            full_state_resend_ticks: Some(8),
            chained_deltas: true,
            full_change_set: true,
            // 100 ms at 30 Hz: LEDBAT's target for queueing delay.
            backoff_after_ticks: 3,
        }
    }
}

//! What the server knows about one client: its view, what it sees, what it acknowledged.

use std::collections::{BTreeMap, VecDeque};

use bevy_platform::collections::HashMap;

use super::backoff::RoundTrip;
use super::history::History;
use super::mirror::Mirror;
use super::{AckError, ClientStats, View};
use crate::change_set::QPos;
use crate::checksum::StateChecksum;
use crate::config::ReplicationConfig;
use crate::net_id::{ClientId, NetId};
use crate::registry::ReplicationRegistry;

/// How many pending entries per visible entity a client may collect before
/// its list starts over (see `ClientState::track_pending`): 16 ticks of every
/// visible entity changing.
const MAX_PENDING_PER_VISIBLE: usize = 16;

/// One entity a client sees.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    /// The tick it (last) entered view.
    pub entered: u64,
    /// Its hash as counted in the client's running checksum.
    pub hash: u64,
}

/// What a delta change set is built against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Baseline {
    /// The tick whose state the client must hold (at least) to apply the set.
    pub tick: u64,
    /// `tick` is the chain's tip: the last change set sent, whether
    /// acknowledged yet or not (see `ClientState::baseline`).
    pub chained: bool,
    /// The client is known to hold the server's positions of `tick`, so moves
    /// may be deltas against them (see `trail`).
    pub positions_held: bool,
}

#[derive(Debug)]
pub(crate) struct ClientState {
    pub id: ClientId,
    /// Offsets this client's checksum ticks from other clients'.
    pub stagger: u32,
    pub view: View,
    /// The view changed or the client is new: recompute visibility from scratch.
    pub view_dirty: bool,
    /// The center position `visible` was last brought up to date against.
    pub view_center: Option<QPos>,
    /// Visible entities that changed after the last ack, as `(tick, id)` in
    /// tick order (an entity that changed in several ticks is listed once per
    /// tick); kept by `interest` for radius views. A queue rather than a map:
    /// the tick appends, an ack pops from the front, and a build reads the
    /// suffix after its baseline, all in sequential memory.
    pub pending: VecDeque<(u64, NetId)>,
    /// The first tick whose changes `pending` holds; `None` while untracked.
    pub pending_from: Option<u64>,
    /// Visible entities.
    pub visible: HashMap<NetId, Seen>,
    /// The sum of the visible entities' `Seen::hash`.
    running: StateChecksum,
    /// The tick whose changes the `Seen::hash`es include; `None` before the first checksum.
    running_at: Option<u64>,
    /// Visible entities that entered after the last ack: still sent as creates.
    pub unacked_entries: BTreeMap<NetId, u64>,
    /// Entities that left view (or were despawned) after the last ack: still sent as removals.
    pub pending_removals: BTreeMap<NetId, u64>,
    /// The newest tick the client acknowledged.
    pub acked: Option<u64>,
    /// Ticks of the change sets sent and not yet acknowledged (acks must name one).
    pub sent: VecDeque<u64>,
    pub needs_full: bool,
    /// The tick of a full state sent but not yet acknowledged.
    pub full_in_flight: Option<u64>,
    /// The last change set of the current chain: the next one is a delta
    /// against it. `None` while the chain is broken: sets repair.
    pub tip: Option<u64>,
    /// Reports about sets before this tick concern an older chain.
    pub chain_root: u64,
    /// The first repair sent since the chain broke; an ack of it or a later
    /// one resumes the chain.
    pub repairing_since: Option<u64>,
    /// How late this client's acks come when nothing queues (see `backoff`).
    pub round_trip: RoundTrip,
    pub stats: ClientStats,
}

impl ClientState {
    pub fn new(id: ClientId, view: View, stagger: u32) -> Self {
        Self {
            id,
            stagger,
            view,
            view_dirty: true,
            view_center: None,
            pending: VecDeque::new(),
            pending_from: None,
            visible: HashMap::default(),
            running: StateChecksum::default(),
            running_at: None,
            unacked_entries: BTreeMap::new(),
            pending_removals: BTreeMap::new(),
            acked: None,
            sent: VecDeque::new(),
            needs_full: true,
            full_in_flight: None,
            tip: None,
            chain_root: 0,
            repairing_since: None,
            round_trip: RoundTrip::default(),
            stats: ClientStats::default(),
        }
    }

    /// Whether the change set of `tick` carries a checksum for this client:
    /// every `interval` ticks, staggered so that clients take turns.
    pub fn checksum_due(&self, tick: u64, interval: u32) -> bool {
        let interval = u64::from(interval);
        interval > 0 && (tick + u64::from(self.stagger)).is_multiple_of(interval)
    }

    /// Marks an entity visible from `tick`; `hash` is its hash for this
    /// client as stored, which may predate a change in `tick` itself: the
    /// next checksum refreshes every entity changed since the last one.
    pub fn enter(&mut self, id: NetId, tick: u64, hash: u64) {
        if let bevy_platform::collections::hash_map::Entry::Vacant(slot) = self.visible.entry(id) {
            slot.insert(Seen {
                entered: tick,
                hash,
            });
            self.running.add(hash);
            self.unacked_entries.insert(id, tick);
            self.pending_removals.remove(&id);
        }
    }

    /// Marks an entity no longer visible from `tick`.
    pub fn leave(&mut self, id: NetId, tick: u64) {
        if let Some(seen) = self.visible.remove(&id) {
            self.running.remove(seen.hash);
            self.unacked_entries.remove(&id);
            self.pending_removals.insert(id, tick);
        }
    }

    /// Notes that visible entity `id` changed at `tick` (not before any
    /// earlier call's tick).
    pub fn pend(&mut self, id: NetId, tick: u64) {
        self.pending.push_back((tick, id));
    }

    /// Keeps `pending` from `tick` on, if it is not kept already. A client
    /// whose acks stopped would make the list grow without end; past
    /// [`MAX_PENDING_PER_VISIBLE`] entries per visible entity it starts over
    /// from `tick`, and builds against older baselines walk the history or the
    /// visible set instead until the client acks again.
    pub fn track_pending(&mut self, tick: u64) {
        let cap = MAX_PENDING_PER_VISIBLE * self.visible.len().max(64);
        if self.pending.len() > cap {
            self.pending.clear();
            self.pending_from = Some(tick);
        }
        self.pending_from.get_or_insert(tick);
    }

    /// The pending entries of ticks after `base`.
    pub fn pending_after(&self, base: u64) -> impl Iterator<Item = &(u64, NetId)> {
        let start = self.pending.partition_point(|(tick, _)| *tick <= base);
        self.pending.range(start..)
    }

    /// Stops keeping `pending`.
    pub fn untrack_pending(&mut self) {
        self.pending_from = None;
        self.pending.clear();
    }

    /// Whether `pending` holds every change after `base` of what the client sees.
    pub fn pending_covers(&self, base: u64) -> bool {
        self.pending_from.is_some_and(|from| from <= base + 1)
    }

    pub fn receive_ack(&mut self, tick: u64) -> Result<(), AckError> {
        if self.acked.is_some_and(|a| tick <= a) {
            return Ok(());
        }
        let Some(index) = self.sent.iter().position(|&s| s == tick) else {
            return Err(AckError::UnknownTick(tick));
        };
        // Everything older than the acked change set is superseded by it.
        self.sent.drain(..=index);
        self.acked = Some(tick);
        let full_acked = self.full_in_flight.is_some_and(|f| f <= tick);
        if full_acked {
            self.full_in_flight = None;
        }
        if full_acked || self.repairing_since.is_some_and(|first| tick >= first) {
            // The client holds its full state or a repair: the chain
            // resumes from the tick it acknowledged.
            self.tip = Some(tick);
            self.chain_root = tick + 1;
            self.repairing_since = None;
        }
        self.unacked_entries.retain(|_, entered| *entered > tick);
        self.pending_removals.retain(|_, left| *left > tick);
        while self
            .pending
            .front()
            .is_some_and(|(changed, _)| *changed <= tick)
        {
            self.pending.pop_front();
        }
        Ok(())
    }

    /// What this tick's change set is built against, or `None` when a full
    /// state must be sent.
    ///
    /// With chained deltas (the default), a set is a delta against the
    /// previous set sent, the chain's tip, so that it carries one tick of
    /// changes however late the acks are; the client applies the chain in
    /// order. A client that missed a link reports it
    /// ([`ClientState::receive_missing_baseline`]) and the chain breaks: every
    /// set is then a *repair*, a delta against the acknowledged tick (or the
    /// full state in flight) with absolute positions, since the client may
    /// have pruned its positions of that tick while it followed the chain.
    /// Any one repair that arrives heals the client, and its ack resumes the
    /// chain from it. Without chaining, every set is a delta against the
    /// acknowledged tick.
    pub fn baseline(
        &self,
        now: u64,
        history_covers: impl Fn(u64) -> bool,
        config: &ReplicationConfig,
    ) -> Option<Baseline> {
        if self.needs_full {
            return None;
        }
        // A full state in flight is the baseline until acked (the transport delivers
        // it reliably), unless it is overdue and resending is enabled.
        let base = match (self.acked, self.full_in_flight) {
            (Some(a), Some(f)) => a.max(f),
            (Some(a), None) => a,
            (None, Some(f)) => f,
            (None, None) => return None,
        };
        if let Some(f) = self.full_in_flight
            && let Some(resend) = config.full_state_resend_ticks
            && now.saturating_sub(f) >= u64::from(resend)
        {
            return None;
        }
        // A client whose acks stopped for the whole history gets a full state,
        // chained or not.
        if !history_covers(base) {
            return None;
        }
        // Not while a full state is in flight: it travels on a reliable
        // channel and may arrive after the deltas that follow it, which then
        // all build on it, so that whichever arrives after it applies.
        if config.chained_deltas
            && self.full_in_flight.is_none()
            && let Some(tip) = self.tip.filter(|&tip| tip >= base)
        {
            return Some(Baseline {
                tick: tip,
                chained: true,
                positions_held: true,
            });
        }
        Some(Baseline {
            tick: base,
            chained: false,
            positions_held: !config.chained_deltas && self.acked == Some(base),
        })
    }

    /// Records that the change set of `tick`, built against `baseline`
    /// (`None`: a full state), was sent. Sent ticks older than `horizon` are
    /// forgotten: acks of them are refused.
    pub fn mark_sent(&mut self, tick: u64, baseline: Option<Baseline>, horizon: u64) {
        while self.sent.front().is_some_and(|&s| s < horizon) {
            self.sent.pop_front();
        }
        self.sent.push_back(tick);
        match baseline {
            // Its ack starts the chain (see `receive_ack`).
            None => {
                self.tip = Some(tick);
                self.chain_root = tick;
                self.repairing_since = None;
            }
            Some(base) if base.chained => self.tip = Some(tick),
            Some(_) => {
                self.repairing_since.get_or_insert(tick);
            }
        }
    }

    /// Whether the current chain has a change set the client has not
    /// acknowledged. While it has (and deltas are chained), a set is sent
    /// every tick, empty if nothing changed: a client that missed a link
    /// learns it from the next one and reports it, rather than waiting for
    /// the next change.
    pub fn awaiting_ack(&self, config: &ReplicationConfig) -> bool {
        config.chained_deltas
            && self
                .tip
                .is_some_and(|tip| self.acked.is_none_or(|a| a < tip))
    }

    /// The client holds `holds` and could not apply the change set of `tick`
    /// for want of its baseline: a link of the chain was lost (or reordered).
    /// If `tick` belongs to the current chain, the chain breaks and sets
    /// repair until the client acknowledges one; reports about older chains,
    /// while repairing, or while a full state is on its way, change nothing.
    /// `holds` counts as an acknowledgement.
    pub fn receive_missing_baseline(&mut self, holds: u64, tick: u64) {
        // An unknown or stale `holds` is fine: the report is what matters.
        let _ = self.receive_ack(holds);
        if self.full_in_flight.is_none() && self.tip.is_some() && tick >= self.chain_root {
            self.tip = None;
            self.stats.repairs += 1;
        }
    }

    /// The checksum of everything the client sees at `tick`.
    ///
    /// The hashes of visible entities are kept as of the last checksum, so only
    /// entities changed since then are looked up again, or every visible entity
    /// when that is fewer (or the history no longer reaches back). An idle view
    /// costs nothing; `build::checksum` is the from-scratch equivalent.
    pub fn checksum(
        &mut self,
        mirror: &Mirror,
        history: &History,
        registry: &ReplicationRegistry,
        tick: u64,
    ) -> u64 {
        let Self {
            id,
            visible,
            running,
            running_at,
            ..
        } = self;
        let mut refresh = |nid: &NetId, seen: &mut Seen| {
            if let Some(record) = mirror.records.get(nid) {
                let hash = record.current_hash_for(*nid, *id, registry, tick);
                running.remove(seen.hash);
                running.add(hash);
                seen.hash = hash;
            }
        };
        let since = running_at
            .filter(|&at| history.covers_since(at))
            .map(|at| (at, history.changes_since(at)));
        match since {
            Some((at, window)) if window <= visible.len() => {
                for record in history.since(at) {
                    for (nid, _) in &record.changed {
                        if let Some(seen) = visible.get_mut(nid) {
                            refresh(nid, seen);
                        }
                    }
                }
            }
            _ => visible
                .iter_mut()
                .for_each(|(nid, seen)| refresh(nid, seen)),
        }
        *running_at = Some(tick);
        running.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn radius_client() -> ClientState {
        let view = View::Radius {
            center: None,
            radius: 10.0,
        };
        ClientState::new(ClientId(1), view, 0)
    }

    #[test]
    fn pending_is_read_after_the_baseline_and_pruned_by_acks() {
        let mut c = radius_client();
        c.track_pending(5);
        for tick in 5..=8 {
            c.sent.push_back(tick);
            c.pend(NetId(tick), tick);
            c.pend(NetId(100), tick);
        }
        assert!(c.pending_covers(4) && !c.pending_covers(3));
        let after_6: Vec<_> = c.pending_after(6).copied().collect();
        assert_eq!(
            after_6,
            [
                (7, NetId(7)),
                (7, NetId(100)),
                (8, NetId(8)),
                (8, NetId(100))
            ]
        );
        c.receive_ack(7).unwrap();
        assert_eq!(c.pending.len(), 2);
        assert!(c.pending.iter().all(|(tick, _)| *tick == 8));
    }

    #[test]
    fn pending_of_a_client_that_stopped_acking_starts_over() {
        let mut c = radius_client();
        let cap = MAX_PENDING_PER_VISIBLE * 64;
        c.track_pending(1);
        for i in 0..=cap as u64 {
            c.pend(NetId(i), 1);
        }
        c.track_pending(2);
        assert!(c.pending.is_empty());
        // It no longer holds tick 1's changes, so builds against baseline 0 must look elsewhere.
        assert!(!c.pending_covers(0));
        assert!(c.pending_covers(1));
    }
}

//! The server half: change collection, interest, per-client chained deltas.
//!
//! [`ReplicationServer`] is the resource the transport talks to: it connects
//! and disconnects clients, sets their views, takes their acks and resync
//! requests, and hands out each client's encoded packets after every tick.

mod backoff;
mod build;
mod client_state;
pub(crate) mod collect;
mod history;
mod interest;
pub(crate) mod mirror;
pub(crate) mod record;
pub(crate) mod send;
mod shared;
mod trail;

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use bevy_platform::collections::HashMap;
use thiserror::Error;

pub use mirror::dequantize;

use crate::change_set::{FullChangeSet, QPos};
use crate::net_id::{ClientId, KindId, NetId};
use crate::registry::ReplicationRegistry;
use client_state::ClientState;
use history::History;
use mirror::Mirror;

/// What part of the world a client sees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum View {
    /// Every replicated entity of the room.
    Room,
    /// Entities within `radius` of the `center` entity (normally the client's
    /// player), plus the client's own and always-relevant entities, and entities
    /// without a position. Without a center, only the latter are seen.
    Radius {
        /// The entity the view follows.
        center: Option<NetId>,
        /// The view radius in world units; entities leave view only beyond
        /// `radius + hysteresis` (see [`crate::ReplicationConfig::hysteresis`]).
        radius: f32,
    },
}

/// Why an ack was not accepted.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// No such client is connected.
    #[error("client {0:?} is not connected")]
    UnknownClient(ClientId),
    /// The client acknowledged a tick it was never sent (or that is long gone).
    #[error("tick {0} was not sent to this client or is outside the history window")]
    UnknownTick(u64),
}

/// Per-client counters, for status lines and load reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Full states sent.
    pub full_states: u64,
    /// Chains of deltas broken by a missing-baseline report, each repaired
    /// by the next change set.
    pub repairs: u64,
    /// Packets produced.
    pub packets: u64,
    /// Bytes produced.
    pub bytes: u64,
    /// Ticks whose change set was held back because the client fell behind
    /// (its acks queued past [`crate::ReplicationConfig::backoff_after_ticks`])
    /// or the host shed load ([`ReplicationServer::set_min_send_interval`]);
    /// the next set sent carries their changes.
    pub held_back: u64,
    /// Entities currently visible.
    pub visible: u64,
    /// The last acknowledged tick.
    pub acked: Option<u64>,
}

/// The replicated state of one entity as a client should hold it; used to
/// compare a client replica with what the server meant it to have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibleEntity {
    /// Its kind.
    pub kind: KindId,
    /// Its quantized position.
    pub position: Option<QPos>,
    /// Visible components (position excluded) by registry index.
    pub components: BTreeMap<u8, crate::change_set::ComponentBytes>,
}

/// Change sets built for clients, and ticks whose set was held back from a
/// client that fell behind ([`crate::ReplicationConfig::backoff_after_ticks`])
/// or to shed load ([`ReplicationServer::set_min_send_interval`]), over all
/// clients since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendTotals {
    /// Change sets built and queued (each may take several packets).
    pub change_sets: u64,
    /// Client ticks held back, for either reason.
    pub held_back: u64,
    /// Of those, the ones held back only to shed load: the client itself
    /// kept up.
    pub shed: u64,
}

impl std::ops::AddAssign for SendTotals {
    /// Adds up readings of separate rooms or intervals.
    fn add_assign(&mut self, other: Self) {
        self.change_sets += other.change_sets;
        self.held_back += other.held_back;
        self.shed += other.shed;
    }
}

impl SendTotals {
    /// The share of client ticks whose set was held back, and the share
    /// held back to shed load only; `(0, 0)` when there were none.
    pub fn shares(&self) -> (f64, f64) {
        let ticks = (self.change_sets + self.held_back).max(1) as f64;
        (self.held_back as f64 / ticks, self.shed as f64 / ticks)
    }
}

impl std::ops::Sub for SendTotals {
    type Output = Self;

    /// What happened between two readings (`later - earlier`).
    fn sub(self, earlier: Self) -> Self {
        Self {
            change_sets: self.change_sets.saturating_sub(earlier.change_sets),
            held_back: self.held_back.saturating_sub(earlier.held_back),
            shed: self.shed.saturating_sub(earlier.shed),
        }
    }
}

/// The server's replication state. Inserted by [`crate::ReplicationPlugin`].
#[derive(Resource, Default)]
pub struct ReplicationServer {
    pub(crate) tick: u64,
    pub(crate) mirror: Mirror,
    pub(crate) history: History,
    pub(crate) clients: BTreeMap<ClientId, ClientState>,
    pub(crate) scratch: TickScratch,
    pub(crate) change_set: std::sync::Arc<FullChangeSet>,
    pub(crate) outbox: HashMap<ClientId, Vec<Vec<u8>>>,
    pub(crate) send_totals: SendTotals,
    next_stagger: u32,
    /// See [`Self::set_min_send_interval`]; 0 reads as 1.
    pub(crate) min_send_interval: u64,
    /// Collection leaves the full change set empty (see
    /// [`crate::ReplicationConfig::full_change_set`]). Negated so that the
    /// derived `Default` keeps the set on.
    pub(crate) skip_full_change_set: bool,
}

/// One change of an entity's quantized position, with the grid cells it
/// was filed in before and after: the grid works them out as it refiles the
/// entity, and the tick's cells (`interest::TickCells`) need them again.
/// `collect_changed` files a component's moves after its query, all
/// together, so the cells are known once that system has run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moved {
    pub id: NetId,
    pub from: Option<QPos>,
    pub from_cell: Option<mirror::CellAt>,
    pub to: Option<QPos>,
    pub to_cell: Option<mirror::CellAt>,
}

/// What happened during the current tick, gathered by the collect systems.
#[derive(Default)]
pub(crate) struct TickScratch {
    /// Component bits changed per entity (the position bit only when its
    /// quantum changed), in the order of first change. An `IdMap`, not a
    /// hash map: every moving entity sets a bit each tick, and the hash
    /// map's insert (a miss on its bucket) was a third of collecting a
    /// village's moves; its order also sent the readers of this map
    /// jumping about the mirror.
    pub changed: crate::id_map::IdMap<u64>,
    /// Entities that started replicating.
    pub created: Vec<NetId>,
    /// Entities whose quantized position changed.
    pub moved: Vec<Moved>,
    /// Entities that stopped replicating, with their last position.
    pub despawned: Vec<(NetId, KindId, Option<QPos>)>,
    /// This tick's full change set, per kind index.
    pub kinds: Vec<crate::change_set::KindChanges>,
    /// Whether the stored hashes of `changed` are refreshed yet (see
    /// `collect::hash_changed`).
    pub hashed: bool,
}

impl ReplicationServer {
    /// The most [`Self::set_min_send_interval`] takes: six ticks, a fifth of
    /// a second at 30 Hz.
    pub const MAX_SHED_INTERVAL: u64 = backoff::MAX_SHED_INTERVAL;

    /// An empty server for `config`.
    pub fn new(config: &crate::ReplicationConfig) -> Self {
        let cell_quanta = (config.cell_size / config.position_precision)
            .round()
            .clamp(1.0, 1.0e9) as i32;
        Self {
            mirror: Mirror::new(cell_quanta),
            skip_full_change_set: !config.full_change_set,
            ..Self::default()
        }
    }

    /// Turns the full change set on or off from the next tick on (see
    /// [`crate::ReplicationConfig::full_change_set`]). Turned on, the first
    /// set holds the changes of its own tick only: a reader that needs the
    /// state before it (persistence) takes a snapshot when it attaches.
    pub fn set_full_change_set(&mut self, on: bool) {
        self.skip_full_change_set = !on;
    }

    /// Whether the full change set is being built.
    pub fn records_full_change_set(&self) -> bool {
        !self.skip_full_change_set
    }

    /// Continues tick numbering after `tick`, for a room resumed from
    /// persistence whose tick counter does not start at zero. Call it before
    /// the first replication run; ticks then stay equal to the room's.
    pub fn start_at(&mut self, tick: u64) {
        self.tick = tick;
    }

    /// The tick the last replication run produced.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Starts replicating to `client`; its first change set is a full state.
    pub fn connect(&mut self, client: ClientId, view: View) {
        let stagger = self.next_stagger;
        self.next_stagger = self.next_stagger.wrapping_add(1);
        self.clients
            .insert(client, ClientState::new(client, view, stagger));
    }

    /// Stops replicating to `client` and drops its pending packets.
    pub fn disconnect(&mut self, client: ClientId) {
        self.clients.remove(&client);
        self.outbox.remove(&client);
    }

    /// Moves `old`'s replication state (view, acks, what it holds) to `new`: a
    /// reconnecting client resumes by delta from its last ack. `false` if `old` is unknown.
    pub fn rename_client(&mut self, old: ClientId, new: ClientId) -> bool {
        let Some(mut state) = self.clients.remove(&old) else {
            return false;
        };
        state.id = new;
        self.outbox.remove(&old);
        self.clients.insert(new, state);
        true
    }

    /// Whether `client` is connected.
    pub fn is_connected(&self, client: ClientId) -> bool {
        self.clients.contains_key(&client)
    }

    /// Changes what `client` sees from the next tick on.
    pub fn set_view(&mut self, client: ClientId, view: View) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.view = view;
            c.view_dirty = true;
        }
    }

    /// Records that `client` holds the state of `tick` (cumulative: it holds
    /// nothing older either). Old or repeated acks are accepted and ignored.
    pub fn receive_ack(&mut self, client: ClientId, tick: u64) -> Result<(), AckError> {
        let state = self
            .clients
            .get_mut(&client)
            .ok_or(AckError::UnknownClient(client))?;
        let newer = state.acked.is_none_or(|acked| tick > acked);
        state.receive_ack(tick)?;
        if newer {
            state.round_trip.sample(self.tick, tick);
        }
        Ok(())
    }

    /// Records that `client` holds `holds` and could not apply the change set
    /// of `tick`, whose baseline it does not hold (what
    /// [`crate::client::ClientReplica::take_missing_baseline`] reports). A lost
    /// link of the client's chain of deltas: its change sets repair, as deltas
    /// against the acknowledged tick, until it acknowledges one. Reports about
    /// older chains are ignored, so a burst of them costs one break.
    pub fn receive_missing_baseline(
        &mut self,
        client: ClientId,
        holds: u64,
        tick: u64,
    ) -> Result<(), AckError> {
        let state = self
            .clients
            .get_mut(&client)
            .ok_or(AckError::UnknownClient(client))?;
        state.receive_missing_baseline(holds, tick);
        Ok(())
    }

    /// Makes the next change set for `client` a full state (after a checksum
    /// mismatch on the client, or any doubt about its state).
    pub fn request_full_state(&mut self, client: ClientId) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.needs_full = true;
        }
    }

    /// Takes the packets produced for `client` by the last tick(s), oldest first.
    pub fn take_packets(&mut self, client: ClientId) -> Vec<Vec<u8>> {
        self.outbox
            .get_mut(&client)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Takes every client's pending packets.
    pub fn drain_packets(&mut self) -> impl Iterator<Item = (ClientId, Vec<Vec<u8>>)> + '_ {
        self.outbox.drain().filter(|(_, p)| !p.is_empty())
    }

    /// Everything that changed in the last tick: created and deleted
    /// entities, written and removed components, and every field change with
    /// its old and new value. Empty (but for its tick) while the full change
    /// set is off ([`crate::ReplicationConfig::full_change_set`]).
    pub fn full_change_set(&self) -> &FullChangeSet {
        &self.change_set
    }

    /// The last tick's full change set, shared rather than copied: a
    /// background consumer (persistence) can hold it while the next tick runs.
    pub fn shared_full_change_set(&self) -> std::sync::Arc<FullChangeSet> {
        self.change_set.clone()
    }

    /// Sheds send work from the next tick on: every client gets a change set
    /// on at most one tick in `interval` (1, the default: every tick),
    /// staggered so that clients take turns, as a client that falls behind
    /// does ([`crate::ReplicationConfig::backoff_after_ticks`]), and with the
    /// same exceptions: full states and due checksums always go (repairs
    /// and the sets after a full state take turns too). Capped at
    /// [`Self::MAX_SHED_INTERVAL`]. Up to three ticks, which the position
    /// trail covers, moves stay deltas; beyond, an entity that moved every
    /// tick travels as an absolute position.
    ///
    /// For a host whose ticks run late (Unreal's servers do the same with
    /// `net.MaxConnectionsToTickPerServerFrame`): building, encoding and
    /// sending are most of a tick, while the simulation keeps its rate and
    /// every change still arrives, merged, up to `interval - 1` ticks later.
    pub fn set_min_send_interval(&mut self, interval: u64) {
        self.min_send_interval = interval;
    }

    /// Change sets built and ticks held back, over all clients so far.
    pub fn send_totals(&self) -> SendTotals {
        self.send_totals
    }

    /// Counters for `client`.
    pub fn client_stats(&self, client: ClientId) -> Option<ClientStats> {
        self.clients.get(&client).map(|c| ClientStats {
            visible: c.visible.len() as u64,
            acked: c.acked,
            ..c.stats
        })
    }

    /// The connected clients.
    pub fn clients(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.clients.keys().copied()
    }

    /// What `client` should hold after applying the last tick's change set.
    pub fn visible_state(
        &self,
        client: ClientId,
        registry: &ReplicationRegistry,
    ) -> BTreeMap<NetId, VisibleEntity> {
        let Some(state) = self.clients.get(&client) else {
            return BTreeMap::new();
        };
        state
            .visible
            .keys()
            .filter_map(|id| {
                let r = self.mirror.records.get(id)?;
                let owner = r.owner == Some(client);
                Some((
                    *id,
                    VisibleEntity {
                        kind: r.kind,
                        position: r.qpos,
                        components: r
                            .visible_components(registry, owner)
                            .map(|(i, b)| (i, b.clone()))
                            .collect(),
                    },
                ))
            })
            .collect()
    }

    /// The checksum of `client`'s visible state, as its change sets carry it.
    pub fn visible_checksum(&self, client: ClientId) -> Option<u64> {
        self.clients
            .get(&client)
            .map(|c| build::checksum(c, &self.mirror))
    }

    /// The whole replicated state as of the last tick, for persistence.
    pub fn snapshot(&self, registry: &ReplicationRegistry) -> crate::snapshot::WorldSnapshot {
        let entities = self
            .mirror
            .records
            .iter()
            .map(|(id, record)| {
                let components = record
                    .components
                    .iter()
                    .enumerate()
                    .filter_map(|(i, bytes)| {
                        let info = registry.component(crate::registry::ComponentIndex(i as u8))?;
                        Some((info.name.to_string(), bytes.as_ref()?.to_vec()))
                    })
                    .collect();
                let entity = crate::snapshot::SnapshotEntity {
                    kind: registry.kind_name(record.kind).to_string(),
                    components,
                };
                (*id, entity)
            })
            .collect();
        crate::snapshot::WorldSnapshot {
            tick: self.tick,
            entities,
        }
    }

    /// The number of replicated entities.
    pub fn entity_count(&self) -> usize {
        self.mirror.records.len()
    }
}

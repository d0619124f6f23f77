//! The client half: applies change-set packets to a client `World`.
//!
//! [`ClientReplica`] assembles packets into whole ticks, applies them in tick
//! order (dropping stale and duplicate ones), maps network ids to local
//! entities, produces the ack to send back and verifies checksums, raising a
//! resync request when the replica and the server disagree.

mod apply;

use std::collections::BTreeMap;

use bevy_app::{App, Plugin, PreUpdate};
use bevy_ecs::prelude::*;
use smallvec::SmallVec;
use thiserror::Error;

use crate::ReplicationConfig;
use crate::change_set::{ComponentBytes, LimitedChangeSet, QPos};
use crate::checksum::{StateChecksum, components_digest, entity_hash, entity_hash_of_digest};
use crate::codec::{DecodeError, decode_packet};
use crate::id_map::IdMap;
use crate::net_id::{KindId, NetId};
use crate::registry::ReplicationRegistry;
use crate::server::VisibleEntity;

/// Ticks being assembled from parts at most at once; older ones are dropped.
const MAX_ASSEMBLING_TICKS: usize = 16;
/// Bytes of partial ticks held at most.
const MAX_ASSEMBLING_BYTES: usize = 64 << 20;

/// Why a packet could not be applied. The replica then asks for a full state.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The packet is not a valid change set.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Parts of one tick disagree with each other.
    #[error("parts of tick {0} disagree")]
    PartsDisagree(u64),
}

/// What became of a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// A whole tick was applied; `checksum_ok` says whether a carried checksum matched.
    Applied {
        /// The tick the replica is now at.
        tick: u64,
        /// `Some(false)` when the checksum disagreed (a resync is requested).
        checksum_ok: Option<bool>,
    },
    /// Part of a tick, kept until the rest arrives.
    Buffered,
    /// Older than the replica's tick, or a part already held.
    Stale,
    /// A delta against a tick the replica has not reached: its full state is
    /// still on the way, or an earlier change set of the server's chain was
    /// lost (then [`ClientReplica::take_missing_baseline`] reports it).
    MissingBaseline,
}

/// Counters of what the replica received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Ticks applied.
    pub applied: u64,
    /// Full states applied.
    pub full_states: u64,
    /// Stale or duplicate packets dropped.
    pub stale: u64,
    /// Deltas dropped for a missing baseline.
    pub missing_baseline: u64,
    /// Checksums that matched.
    pub checksums_ok: u64,
    /// Checksums that did not.
    pub checksum_mismatches: u64,
    /// Packets rejected as malformed.
    pub rejected: u64,
}

/// Positions held inline per entity: the newest and the baseline's cover an
/// acked-every-tick client; a client acking late holds one per tick since.
const INLINE_POSITIONS: usize = 3;

#[derive(Debug)]
pub(crate) struct ReplicaEntity {
    pub entity: Entity,
    pub kind: KindId,
    /// Recent quantized positions by tick, newest last: deltas resolve against
    /// the baseline's. Inline, because a move reads them right after finding
    /// the entity and a separate allocation would be one more cache miss.
    pub positions: SmallVec<[(u64, QPos); INLINE_POSITIONS]>,
    /// Changed only through [`Self::set_component`] and
    /// [`Self::unset_component`], which keep `digest` honest.
    pub components: BTreeMap<u8, ComponentBytes>,
    /// The [`components_digest`] of `components`, kept until they change:
    /// most entities only move between two checksums, and hashing every
    /// held component for every due checksum was most of its cost.
    pub digest: Option<u64>,
}

impl ReplicaEntity {
    /// Holds `bytes` as component `index`.
    pub fn set_component(&mut self, index: u8, bytes: ComponentBytes) {
        self.components.insert(index, bytes);
        self.digest = None;
    }

    /// No longer holds component `index`.
    pub fn unset_component(&mut self, index: u8) {
        if self.components.remove(&index).is_some() {
            self.digest = None;
        }
    }

    /// The entity's hash as the checksum counts it, from the kept digest.
    fn hash(&mut self, id: NetId) -> u64 {
        let components = &self.components;
        let digest = *self
            .digest
            .get_or_insert_with(|| components_digest(components.iter().map(|(i, b)| (*i, &**b))));
        entity_hash_of_digest(id, self.kind, self.position(), digest)
    }

    pub fn position(&self) -> Option<QPos> {
        self.positions.last().map(|(_, p)| *p)
    }

    /// The position held at tick `at`.
    pub fn position_at(&self, at: u64) -> Option<QPos> {
        self.positions
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map(|(_, p)| *p)
    }
}

#[derive(Debug)]
struct Assembly {
    baseline: Option<u64>,
    checksum: Option<u64>,
    parts: Vec<Option<LimitedChangeSet>>,
    missing: usize,
    bytes: usize,
}

/// A client's replica of the state the server lets it see.
#[derive(Resource, Debug)]
pub struct ClientReplica {
    pub(crate) tick: Option<u64>,
    /// Indexed by id (see `id_map`): ids come from the server, and one beyond
    /// the dense range costs a hash entry, so a hostile server cannot make
    /// the table exceed its 16 MB bound.
    pub(crate) entities: IdMap<ReplicaEntity>,
    pub(crate) precision: f32,
    /// The baseline of the newest change set applied: positions older than it
    /// are no longer needed as delta bases.
    pub(crate) baseline: Option<u64>,
    assembling: BTreeMap<u64, Assembly>,
    ack: Option<u64>,
    /// `(held tick, tick that could not be applied)`, the newest, until taken.
    missing: Option<(u64, u64)>,
    resync_needed: bool,
    stats: ReplicaStats,
}

impl ClientReplica {
    /// An empty replica; `precision` must equal the server's position precision.
    pub fn new(precision: f32) -> Self {
        Self {
            tick: None,
            entities: IdMap::default(),
            precision,
            baseline: None,
            assembling: BTreeMap::new(),
            ack: None,
            missing: None,
            resync_needed: false,
            stats: ReplicaStats::default(),
        }
    }

    /// The server tick the replica holds, once it holds one.
    pub fn tick(&self) -> Option<u64> {
        self.tick
    }

    /// The local entity replicating `id`.
    pub fn entity(&self, id: NetId) -> Option<Entity> {
        self.entities.get(&id).map(|e| e.entity)
    }

    /// The number of replicated entities held.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Whether no entity is held.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// What was received so far.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// The ack to send: the newest applied tick, once per new tick.
    pub fn take_ack(&mut self) -> Option<u64> {
        self.ack.take()
    }

    /// The report to send when a change set could not be applied for want of
    /// its baseline while the replica holds a state: `(tick held, tick of the
    /// set)`, for [`crate::server::ReplicationServer::receive_missing_baseline`].
    /// The server then repairs the chain; until it does, every further set of
    /// the broken chain is reported again, so a lost report costs one tick.
    pub fn take_missing_baseline(&mut self) -> Option<(u64, u64)> {
        self.missing.take()
    }

    /// Whether the replica needs a full state (checksum mismatch or a bad packet); clears the flag.
    pub fn take_resync_request(&mut self) -> bool {
        std::mem::take(&mut self.resync_needed)
    }

    /// Whether a resync request is pending.
    pub fn needs_resync(&self) -> bool {
        self.resync_needed
    }

    /// The held state, in the server's terms (for comparisons and tools).
    pub fn state(&self) -> BTreeMap<NetId, VisibleEntity> {
        self.entities
            .iter()
            .map(|(id, e)| {
                (
                    *id,
                    VisibleEntity {
                        kind: e.kind,
                        position: e.position(),
                        components: e.components.clone(),
                    },
                )
            })
            .collect()
    }

    /// The checksum of the held state, as the server computes it, from the
    /// entities' kept component digests (what a due checksum is checked
    /// against; debug builds check it against [`Self::checksum`]).
    pub(crate) fn held_checksum(&mut self) -> u64 {
        let mut sum = StateChecksum::default();
        for (id, e) in self.entities.iter_mut() {
            sum.add(e.hash(id));
        }
        let sum = sum.finish();
        debug_assert_eq!(sum, self.checksum(), "kept digests went stale");
        sum
    }

    /// The checksum of the held state, as the server computes it, hashing
    /// every held component afresh.
    pub fn checksum(&self) -> u64 {
        let mut sum = StateChecksum::default();
        for (id, e) in &self.entities {
            let components = e.components.iter().map(|(i, b)| (*i, &**b));
            sum.add(entity_hash(*id, e.kind, e.position(), components));
        }
        sum.finish()
    }

    /// Receives one packet into `world` (which holds this replica as a resource
    /// and the [`ReplicationRegistry`]).
    pub fn receive(world: &mut World, bytes: &[u8]) -> Result<Receipt, ClientError> {
        world.resource_scope(|world, mut replica: Mut<ClientReplica>| {
            world.resource_scope(|world, registry: Mut<ReplicationRegistry>| {
                let result = replica.receive_packet(world, &registry, bytes);
                if result.is_err() {
                    replica.stats.rejected += 1;
                    replica.resync_needed = true;
                }
                result
            })
        })
    }

    fn receive_packet(
        &mut self,
        world: &mut World,
        registry: &ReplicationRegistry,
        bytes: &[u8],
    ) -> Result<Receipt, ClientError> {
        let packet = decode_packet(bytes)?;
        let tick = packet.set.tick;
        if self.tick.is_some_and(|t| tick <= t) {
            self.stats.stale += 1;
            return Ok(Receipt::Stale);
        }
        let set = if packet.parts == 1 {
            packet.set
        } else {
            let assembly = self.assembling.entry(tick).or_insert_with(|| Assembly {
                baseline: packet.set.baseline,
                checksum: packet.set.checksum,
                parts: vec![None; usize::from(packet.parts)],
                missing: usize::from(packet.parts),
                bytes: 0,
            });
            if assembly.parts.len() != usize::from(packet.parts)
                || assembly.baseline != packet.set.baseline
                || assembly.checksum != packet.set.checksum
            {
                self.assembling.remove(&tick);
                return Err(ClientError::PartsDisagree(tick));
            }
            let slot = &mut assembly.parts[usize::from(packet.part)];
            if slot.is_some() {
                self.stats.stale += 1;
                return Ok(Receipt::Stale);
            }
            *slot = Some(packet.set);
            assembly.missing -= 1;
            assembly.bytes += bytes.len();
            if assembly.missing > 0 {
                self.bound_assembly();
                return Ok(Receipt::Buffered);
            }
            let assembly = self.assembling.remove(&tick).expect("present");
            merge(assembly)
        };
        self.apply_set(world, registry, set)
    }

    fn bound_assembly(&mut self) {
        let held: usize = self.assembling.values().map(|a| a.bytes).sum();
        if self.assembling.len() > MAX_ASSEMBLING_TICKS || held > MAX_ASSEMBLING_BYTES {
            self.assembling.pop_first();
        }
    }
}

/// Joins the parts of one tick into one change set.
fn merge(assembly: Assembly) -> LimitedChangeSet {
    let mut parts = assembly.parts.into_iter().flatten();
    let mut set = parts.next().unwrap_or_default();
    for part in parts {
        set.created.extend(part.created);
        set.moved.extend(part.moved);
        set.updated.extend(part.updated);
        set.removed.extend(part.removed);
    }
    set
}

/// Packets received from the transport, applied at the start of every update.
#[derive(Resource, Default, Debug)]
pub struct ClientInbox(pub Vec<Vec<u8>>);

/// Client-side replication: a [`ClientReplica`], the registry, and a system that
/// applies [`ClientInbox`] packets in [`PreUpdate`].
#[derive(Default)]
pub struct ClientReplicationPlugin {
    /// Must equal the server's settings (only the position precision is used).
    pub config: ReplicationConfig,
}

impl Plugin for ClientReplicationPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ReplicationRegistry>()
            .insert_resource(ClientReplica::new(self.config.position_precision))
            .init_resource::<ClientInbox>()
            .add_systems(PreUpdate, apply_inbox);
    }
}

fn apply_inbox(world: &mut World) {
    let packets = std::mem::take(&mut world.resource_mut::<ClientInbox>().0);
    for bytes in packets {
        if let Err(e) = ClientReplica::receive(world, &bytes) {
            tracing::warn!("dropped a replication packet: {e}");
        }
    }
}

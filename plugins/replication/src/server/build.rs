//! Building and encoding each client's limited change set.

use super::View;
use super::client_state::ClientState;
use super::history::History;
use super::mirror::{EntityRecord, Mirror};
use crate::change_set::{EntityState, EntityUpdate, LimitedChangeSet, Move, MoveTo, QPos};
use crate::checksum::StateChecksum;
use crate::config::ReplicationConfig;
use crate::net_id::NetId;
use crate::registry::ReplicationRegistry;

/// Shared inputs of every client's build in one tick.
pub(crate) struct BuildContext<'a> {
    pub tick: u64,
    pub mirror: &'a Mirror,
    pub history: &'a History,
    pub registry: &'a ReplicationRegistry,
    pub config: &'a ReplicationConfig,
}

/// Reused storage for the `(id, changed components)` pairs a build gathers.
pub(crate) type ChangeScratch = Vec<(NetId, u64)>;

/// Builds `client`'s change set for the current tick and records it as sent;
/// `None` when there is nothing to tell (no change, no checksum due).
pub(crate) fn build(
    client: &mut ClientState,
    cx: &BuildContext,
    scratch: &mut ChangeScratch,
) -> Option<LimitedChangeSet> {
    let tick = cx.tick;
    let baseline = client.baseline(
        tick,
        |b| cx.history.covers_since(b),
        cx.config.full_state_resend_ticks,
    );
    let mut set = LimitedChangeSet {
        tick,
        baseline,
        ..LimitedChangeSet::default()
    };

    match baseline {
        None => {
            let mut ids: Vec<NetId> = client.visible.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                if let Some(record) = cx.mirror.records.get(&id) {
                    set.created
                        .push(entity_state(id, record, client, cx.registry));
                }
            }
            client.needs_full = false;
            client.full_in_flight = Some(tick);
            client.unacked_entries.clear();
            client.pending_removals.clear();
            client.stats.full_states += 1;
        }
        Some(base) => {
            // A client holds the server's positions of its acked tick (see
            // `trail`), so moves can be deltas when the baseline is that tick.
            let delta_base = client.acked == Some(base);
            for (&id, _) in client
                .unacked_entries
                .iter()
                .filter(|(_, entered)| **entered > base)
            {
                if let Some(record) = cx.mirror.records.get(&id) {
                    set.created
                        .push(entity_state(id, record, client, cx.registry));
                }
            }
            set.removed.extend(client.pending_removals.keys().copied());

            let position_bit = cx.registry.position_index().map_or(0, |p| p.bit());
            for (id, mask, record) in changed_since(client, cx, base, scratch) {
                let owner_view = record.owner == Some(client.id);
                let mut unset = 0;
                if mask & position_bit != 0 {
                    match record.qpos {
                        Some(to) => {
                            let held = delta_base
                                .then(|| record.trail.at(base))
                                .flatten()
                                .flatten();
                            set.moved.push(Move {
                                id,
                                to: move_to(to, held),
                            });
                        }
                        None => unset |= position_bit,
                    }
                }
                let components = mask & record.visible_mask(cx.registry, owner_view);
                let mut update = EntityUpdate {
                    id,
                    set: Vec::new(),
                    unset,
                };
                // Visit only the set bits.
                let mut bits = components;
                while bits != 0 {
                    let i = bits.trailing_zeros() as u8;
                    bits &= bits - 1;
                    match record
                        .components
                        .get(usize::from(i))
                        .and_then(Option::as_ref)
                    {
                        Some(bytes) => update.set.push((i, bytes.clone())),
                        None => update.unset |= 1 << i,
                    }
                }
                if !update.set.is_empty() || update.unset != 0 {
                    set.updated.push(update);
                }
            }
        }
    }

    if client.checksum_due(tick, cx.config.checksum_interval) {
        set.checksum = Some(due_checksum(client, cx));
    }

    let nothing = set.created.is_empty()
        && set.moved.is_empty()
        && set.updated.is_empty()
        && set.removed.is_empty()
        && set.checksum.is_none();
    let horizon = tick.saturating_sub(u64::from(cx.config.history_ticks) + 1);
    while client.sent.front().is_some_and(|&s| s < horizon) {
        client.sent.pop_front();
    }
    if baseline.is_some() && nothing {
        // The client's state at its baseline is already the current one.
        return None;
    }
    client.sent.push_back(tick);
    Some(set)
}

/// The entities `client` held at `base` that changed since, with what
/// changed, sorted by id. Found from whichever is smallest: the changes the
/// interest pass noted for a radius view, the changes since the baseline, or
/// what the client sees.
fn changed_since<'a>(
    client: &ClientState,
    cx: &BuildContext<'a>,
    base: u64,
    scratch: &mut ChangeScratch,
) -> Vec<(NetId, u64, &'a EntityRecord)> {
    let held_since_base =
        |id: &NetId, entered: u64| entered <= base && !client.unacked_entries.contains_key(id);
    let held = |id: &NetId| {
        client
            .visible
            .get(id)
            .is_some_and(|seen| held_since_base(id, seen.entered))
    };
    let with_mask = |id: &NetId| {
        let record = cx.mirror.records.get(id)?;
        let mask = record.changed_since(base);
        (mask != 0).then_some((*id, mask, record))
    };
    let window = cx.history.changes_since(base);
    let mut changed: Vec<(NetId, u64, &EntityRecord)> = if window == 0 {
        Vec::new()
    } else if client.pending_covers(base) {
        let mut ids: Vec<NetId> = client.pending_after(base).map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        return ids
            .iter()
            .filter(|id| held(id))
            .filter_map(with_mask)
            .collect();
    } else if window <= client.visible.len() {
        // The window's changes, sorted and merged per id: cheaper than a hash
        // map entry per change when acks lag and the window spans ticks, and
        // each id is probed once, already in the order the set wants.
        scratch.clear();
        for record in cx.history.since(base) {
            scratch.extend_from_slice(&record.changed);
        }
        scratch.sort_unstable_by_key(|(id, _)| *id);
        return scratch
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|run| held(&run[0].0))
            .filter_map(|run| {
                let (id, _) = run[0];
                let mask = run.iter().fold(0, |mask, (_, m)| mask | m);
                Some((id, mask, cx.mirror.records.get(&id)?))
            })
            .collect();
    } else {
        client
            .visible
            .iter()
            .filter(|(id, seen)| held_since_base(id, seen.entered))
            .filter_map(|(id, _)| with_mask(id))
            .collect()
    };
    changed.sort_unstable_by_key(|(id, _, _)| *id);
    changed
}

/// Whether `client`'s checksum, when due, is the mirror's running room sum:
/// a room view without owner-only components sees exactly the room.
pub(crate) fn uses_room_sum(client: &ClientState, registry: &ReplicationRegistry) -> bool {
    matches!(client.view, View::Room) && !registry.has_private_components()
}

/// The checksum `client`'s change set carries when one is due: the mirror's
/// room sum (see [`uses_room_sum`]; `send` refreshes it first on such ticks)
/// or the view's own running sum (`ClientState::checksum`).
pub(crate) fn due_checksum(client: &mut ClientState, cx: &BuildContext) -> u64 {
    if uses_room_sum(client, cx.registry) {
        cx.mirror.room_checksum()
    } else {
        client.checksum(cx.mirror, cx.history, cx.registry, cx.tick)
    }
}

/// The checksum of everything `client` sees, summed from scratch (see
/// `ClientState::checksum` for the running one change sets carry), from the
/// stored hashes: as of the last whole tick.
pub(crate) fn checksum(client: &ClientState, mirror: &Mirror) -> u64 {
    let mut sum = StateChecksum::default();
    for id in client.visible.keys() {
        if let Some(record) = mirror.records.get(id) {
            sum.add(record.hash_for(client.id));
        }
    }
    sum.finish()
}

fn entity_state(
    id: NetId,
    record: &EntityRecord,
    client: &ClientState,
    registry: &ReplicationRegistry,
) -> EntityState {
    let owner_view = record.owner == Some(client.id);
    EntityState {
        id,
        kind: record.kind,
        position: record.qpos,
        components: record
            .visible_components(registry, owner_view)
            .map(|(i, b)| (i, b.clone()))
            .collect(),
    }
}

/// Deltas this large (in quanta) go absolute: deltas share their section's bit
/// width, so one jump would widen every move of the packet (see `codec::moves`).
const MAX_DELTA: u32 = 2047;

/// A delta when the client's position is known and the delta is the smaller coding.
fn move_to(to: QPos, held: Option<QPos>) -> MoveTo {
    match held {
        Some(h) => {
            let d = QPos {
                x: to.x.wrapping_sub(h.x),
                y: to.y.wrapping_sub(h.y),
            };
            let magnitude = |p: QPos| p.x.unsigned_abs().max(p.y.unsigned_abs());
            if magnitude(d) <= magnitude(to) && magnitude(d) <= MAX_DELTA {
                MoveTo::Delta(d)
            } else {
                MoveTo::Absolute(to)
            }
        }
        None => MoveTo::Absolute(to),
    }
}

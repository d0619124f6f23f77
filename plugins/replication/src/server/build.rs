//! Building and encoding each client's limited change set.

use super::View;
use super::client_state::{Baseline, ClientState};
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
/// `None` when there is nothing to tell (no change, no checksum due, and the
/// client acknowledged everything sent: see `ClientState::awaiting_ack`).
pub(crate) fn build(
    client: &mut ClientState,
    cx: &BuildContext,
    scratch: &mut ChangeScratch,
) -> Option<LimitedChangeSet> {
    let tick = cx.tick;
    let baseline = client.baseline(tick, |b| cx.history.covers_since(b), cx.config);
    let probe = client.awaiting_ack(cx.config);
    if let Some(base) = baseline
        && !probe
        && !client.checksum_due(tick, cx.config.checksum_interval)
        && nothing_since(client, cx, base.tick)
    {
        // The idle tick's common case, decided before building anything.
        return None;
    }
    let mut set = match baseline {
        None => full_state(client, cx),
        Some(base) => delta(client, cx, base, scratch),
    };
    if client.checksum_due(tick, cx.config.checksum_interval) {
        set.checksum = Some(due_checksum(client, cx));
    }
    if baseline.is_some() && set.is_empty_delta() && set.checksum.is_none() && !probe {
        // The client's state at its baseline is already the current one.
        return None;
    }
    client.mark_sent(tick, baseline, sent_horizon(cx));
    Some(set)
}

/// Whether nothing `client` sees changed after `base`: no change in the
/// history window, no entity entered or left its view.
fn nothing_since(client: &ClientState, cx: &BuildContext, base: u64) -> bool {
    cx.history.changes_since(base) == 0
        && !client
            .unacked_entries
            .values()
            .any(|&entered| entered > base)
        && !client.pending_removals.values().any(|&left| left > base)
}

/// Sent ticks older than this are forgotten: the history no longer reaches them.
pub(crate) fn sent_horizon(cx: &BuildContext) -> u64 {
    cx.tick
        .saturating_sub(u64::from(cx.config.history_ticks) + 1)
}

/// The full state of everything `client` sees, which replaces its replica.
fn full_state(client: &mut ClientState, cx: &BuildContext) -> LimitedChangeSet {
    let mut set = LimitedChangeSet {
        tick: cx.tick,
        baseline: None,
        ..LimitedChangeSet::default()
    };
    let mut ids: Vec<NetId> = client.visible.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        if let Some(record) = cx.mirror.records.get(&id) {
            set.created
                .push(entity_state(id, record, client, cx.registry));
        }
    }
    client.needs_full = false;
    client.full_in_flight = Some(cx.tick);
    client.unacked_entries.clear();
    client.pending_removals.clear();
    client.stats.full_states += 1;
    set
}

/// The delta that takes a client holding `base` (or any later tick it was
/// sent) to this tick: see ARCHITECTURE.md, "What tick T's change set holds".
pub(crate) fn delta(
    client: &ClientState,
    cx: &BuildContext,
    base: Baseline,
    scratch: &mut ChangeScratch,
) -> LimitedChangeSet {
    let mut set = LimitedChangeSet {
        tick: cx.tick,
        baseline: Some(base.tick),
        ..LimitedChangeSet::default()
    };
    let b = base.tick;
    for (&id, _) in client
        .unacked_entries
        .iter()
        .filter(|(_, entered)| **entered > b)
    {
        if let Some(record) = cx.mirror.records.get(&id) {
            set.created
                .push(entity_state(id, record, client, cx.registry));
        }
    }
    // Removals up to `b` are already applied by a client holding `b`.
    set.removed.extend(
        client
            .pending_removals
            .iter()
            .filter(|(_, left)| **left > b)
            .map(|(id, _)| *id),
    );

    let position_bit = cx.registry.position_index().map_or(0, |p| p.bit());
    let changed = changed_since(client, cx, b, scratch);
    // Sized once: grown push by push, these lists were most of a build's
    // reallocations.
    set.moved.reserve(changed.len());
    set.updated.reserve(changed.len());
    for (id, mask, record) in changed {
        let owner_view = record.owner == Some(client.id);
        let mut unset = 0;
        if mask & position_bit != 0 {
            match record.qpos {
                Some(to) => {
                    let held = base
                        .positions_held
                        .then(|| record.trail.at(b))
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
        let components = mask & cx.registry.visible_mask(owner_view);
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
    set
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
    // `entered` is the tick the entity last entered view: entities entered
    // after `base` are sent whole (created), not as changes.
    let held_since_base = |entered: u64| entered <= base;
    let held = |id: &NetId| {
        client
            .visible
            .get(id)
            .is_some_and(|seen| held_since_base(seen.entered))
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
        let not_held = not_held_since_pending(client, base);
        let held_pending = |id: &NetId| {
            let fast = not_held.binary_search(id).is_err();
            debug_assert_eq!(fast, held(id), "{id:?} after {base}");
            fast
        };
        let mut changed = Vec::with_capacity(ids.len());
        changed.extend(
            ids.iter()
                .filter(|id| held_pending(id))
                .filter_map(with_mask),
        );
        return changed;
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
            .filter(|(_, seen)| held_since_base(seen.entered))
            .filter_map(|(id, _)| with_mask(id))
            .collect()
    };
    changed.sort_unstable_by_key(|(id, _, _)| *id);
    changed
}

/// The ids among `client`'s pending list after `base` that it did not hold
/// at `base` or no longer does, sorted: those that entered or left its view
/// after `base`. Any other id noted there it held at `base` and still does;
/// so a build needs no probe of the visible set (8 % of the S2i room thread
/// went to that probe), nor one of these maps per noted id.
///
/// A pending entry is only noted for an entity visible in its tick, after
/// `base`. If the entity entered after `base`, `unacked_entries` lists it with
/// that tick; if it left since, `pending_removals` lists it with the tick it
/// left. Neither loses such an entry before the client acknowledges that
/// tick, and a baseline is never older than the acknowledged tick. Both are
/// small (what entered or left within a round trip), and mostly empty.
fn not_held_since_pending(client: &ClientState, base: u64) -> Vec<NetId> {
    let after_base = |(id, &tick): (&NetId, &u64)| (tick > base).then_some(*id);
    let mut ids: Vec<NetId> = client
        .unacked_entries
        .iter()
        .filter_map(after_base)
        .chain(client.pending_removals.iter().filter_map(after_base))
        .collect();
    ids.sort_unstable();
    ids
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

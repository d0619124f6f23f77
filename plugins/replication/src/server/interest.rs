//! Interest management: which entities each client sees, and which of those changed.
//!
//! Work follows change: a client's visibility is recomputed from the grid only
//! when its view changed or its center jumped; a center that moved a little
//! re-evaluates the ring at the view's edge, and otherwise only the entities
//! that moved, appeared or disappeared this tick are re-evaluated against it.
//! A radius view also notes which visible entities changed this tick
//! (`ClientState::pending`), from the cells it covers, so that its change set
//! is built from those rather than from everything it sees.

mod tick_cells;

use super::client_state::ClientState;
use super::mirror::{Mirror, Placement};
use super::{TickScratch, View};
use crate::change_set::QPos;
use crate::config::ReplicationConfig;
use crate::net_id::NetId;
pub(crate) use tick_cells::TickCells;

/// View radii in quanta.
#[derive(Clone, Copy)]
struct Radii {
    enter: f64,
    keep: f64,
}

/// Updates `client`'s visible set for the current tick.
///
/// Clients are independent of each other here, so the tick updates each one
/// right before building its change set, while its state is in cache.
pub(crate) fn update(
    client: &mut ClientState,
    mirror: &Mirror,
    scratch: &TickScratch,
    cells: &TickCells,
    config: &ReplicationConfig,
    tick: u64,
) {
    for (id, _, _) in &scratch.despawned {
        client.leave(*id, tick);
    }
    match client.view {
        View::Room => {
            // Every change concerns a room view: it needs no list of them.
            client.untrack_pending();
            if client.view_dirty {
                client.view_dirty = false;
                for (&id, record) in &mirror.records {
                    client.enter(id, tick, record.hash_for(client.id));
                }
            } else {
                for &id in &scratch.created {
                    enter(client, mirror, id, tick);
                }
            }
        }
        View::Radius { center, radius } => {
            let radii = Radii {
                enter: f64::from(radius / config.position_precision),
                keep: f64::from((radius + config.hysteresis) / config.position_precision),
            };
            let center_pos = center
                .and_then(|id| mirror.records.get(&id))
                .and_then(|r| r.qpos);
            let shift = match (client.view_center, center_pos) {
                _ if client.view_dirty => None,
                (Some(a), Some(b)) => Some(distance(a, b)),
                (None, None) => Some(0.0),
                _ => None,
            };
            let small = f64::from(mirror.grid.cell_quanta);
            client.view_center = center_pos;
            client.track_pending(tick);
            let recomputed = shift.is_none_or(|d| d > small);
            if recomputed {
                client.view_dirty = false;
                recompute(client, mirror, center_pos, radii, tick);
            } else {
                if let (Some(d), Some(c)) = (shift.filter(|d| *d > 0.0), center_pos) {
                    mirror.grid.in_rings(c, &edge_rings(radii, d), |id| {
                        reevaluate(client, mirror, id, center_pos, radii, tick)
                    });
                }
                for &id in &cells.everyone {
                    reevaluate(client, mirror, id, center_pos, radii, tick);
                }
            }
            // A visible entity is within `keep` of the center, so its cell is
            // covered: its changes are found here (see `build`). One that moved
            // away was within `keep` of the previous center, up to `d` from
            // this one, and must be let go from its old cell.
            let d = shift.filter(|_| !recomputed).unwrap_or(0.0);
            let reach = radii.keep + d;
            if let Some(c) = center_pos {
                // Entities that were and are well inside the view need no
                // lookup (see `stays_inside`): most of a view's changes.
                // Rounding margin: `d` is a square root.
                let inner = (radii.enter - d - 1e-6 * radii.enter).max(0.0);
                cells.around(&mirror.grid, c, reach, |entry| {
                    let visible = if stays_inside(&entry, c, radii.enter, inner) {
                        true
                    } else if entry.moved && !recomputed {
                        reevaluate_at(client, entry.id, entry.placement, center_pos, radii, tick)
                    } else {
                        client.visible.contains_key(&entry.id)
                    };
                    if entry.here && visible {
                        client.pend(entry.id, tick);
                    }
                });
            }
            for &id in &cells.anywhere {
                if client.visible.contains_key(&id) {
                    client.pend(id, tick);
                }
            }
        }
    }
}

/// A radius view's update on a tick whose change set is held back
/// (`ClientState::held_back`): only the entities that stopped existing
/// leave it, and the view is recomputed from the grid on its next sending
/// tick, once for all the ticks it skipped, instead of updated every tick.
/// What changed meanwhile is found from the history then (`build`), since
/// the pending list missed those ticks.
pub(crate) fn defer(client: &mut ClientState, scratch: &TickScratch, tick: u64) {
    for (id, _, _) in &scratch.despawned {
        client.leave(*id, tick);
    }
    client.view_dirty = true;
    client.untrack_pending();
}

/// The rings (inner and outer radius around the new center) holding every
/// entity that did not move but whose fate changes when the center moves by
/// `d`. Before the move, everything within `enter` was visible and nothing
/// beyond `keep`; a distance changes by at most `d`. So an entity out of view
/// enters only if it is now within `enter` but was beyond it — between
/// `enter - d` and `enter` — and one in view leaves only if it is now beyond
/// `keep` but was within it — between `keep` and `keep + d`. With a walking
/// center (`d` a quantum or two against a hysteresis of 160), the two thin
/// rings hold a few per cent of what the band from `enter - d` to `keep + d`
/// holds; when they would meet, that band is the one ring.
fn edge_rings(radii: Radii, d: f64) -> [(f64, f64); 2] {
    let entering = ((radii.enter - d).max(0.0), radii.enter);
    let leaving = (radii.keep, radii.keep + d);
    if entering.1 + d >= leaving.0 - d {
        let band = (entering.0, leaving.1);
        [band, band]
    } else {
        [entering, leaving]
    }
}

/// Updates whether `client` sees `id`.
fn reevaluate(
    client: &mut ClientState,
    mirror: &Mirror,
    id: NetId,
    center: Option<QPos>,
    radii: Radii,
    tick: u64,
) {
    if let Some(record) = mirror.records.get(&id) {
        reevaluate_at(client, id, record.placement(), center, radii, tick);
    }
}

/// [`reevaluate`] for an entity's placement at hand; whether the client sees it now.
fn reevaluate_at(
    client: &mut ClientState,
    id: NetId,
    placement: Placement,
    center: Option<QPos>,
    radii: Radii,
    tick: u64,
) -> bool {
    let visible = client.visible.contains_key(&id);
    let sees = sees(client, &placement, center, radii, visible);
    match (visible, sees) {
        (false, true) => client.enter(id, tick, placement.hash_for(client.id)),
        (true, false) => client.leave(id, tick),
        _ => {}
    }
    sees
}

/// Rebuilds a client's visible set from the grid around its center.
fn recompute(
    client: &mut ClientState,
    mirror: &Mirror,
    center: Option<QPos>,
    radii: Radii,
    tick: u64,
) {
    // What it sees stays if still within `keep`; anything else enters if
    // within `enter`, so only the disc of `enter` needs walking. Marked in
    // place rather than gathered into a set of the next view: the set's
    // inserts were most of a recompute, and held-back views recompute often
    // (`defer`).
    let leaving: Vec<NetId> = client
        .visible
        .keys()
        .filter(|id| {
            !mirror
                .records
                .get(id)
                .is_some_and(|r| sees(client, &r.placement(), center, radii, true))
        })
        .copied()
        .collect();
    for id in leaving {
        client.leave(id, tick);
    }
    let mut entering = Vec::new();
    let mut consider = |id: NetId| {
        if !client.visible.contains_key(&id)
            && let Some(record) = mirror.records.get(&id)
            && sees(client, &record.placement(), center, radii, false)
        {
            entering.push(id);
        }
    };
    mirror.everywhere.iter().copied().for_each(&mut consider);
    if let Some(c) = center {
        let reach = radii.enter.ceil().min(f64::from(i32::MAX)) as i32;
        mirror.grid.around(c, reach, &mut consider);
    }
    for id in entering {
        enter(client, mirror, id, tick);
    }
}

/// Makes `id` visible to `client`, if it is still replicated.
fn enter(client: &mut ClientState, mirror: &Mirror, id: NetId, tick: u64) {
    if let Some(record) = mirror.records.get(&id) {
        client.enter(id, tick, record.hash_for(client.id));
    }
}

/// Whether the entity of `entry` was visible before this tick's update and is
/// still: it is within `enter` of the center now, and was within `inner`
/// (`enter` minus how far the center moved) of it before, so within `enter`
/// of the old center. A radius view holds everything within `enter` of its
/// center after every update, so neither needs a look at the visible set.
fn stays_inside(entry: &tick_cells::CellEntry, center: QPos, enter: f64, inner: f64) -> bool {
    // The same comparison `sees` makes, so that the two agree at the edge.
    let within = |p: Option<QPos>, r: f64| {
        p.is_some_and(|p| {
            let dx = f64::from(p.x) - f64::from(center.x);
            let dy = f64::from(p.y) - f64::from(center.y);
            dx * dx + dy * dy <= r * r
        })
    };
    within(entry.placement.qpos, enter) && within(entry.from, inner)
}

/// The distance between two positions, in quanta.
fn distance(a: QPos, b: QPos) -> f64 {
    let dx = f64::from(a.x) - f64::from(b.x);
    let dy = f64::from(a.y) - f64::from(b.y);
    (dx * dx + dy * dy).sqrt()
}

/// Whether `client` sees an entity placed so; entities already visible get the
/// wider keep radius.
fn sees(
    client: &ClientState,
    placement: &Placement,
    center: Option<QPos>,
    radii: Radii,
    visible: bool,
) -> bool {
    if placement.seen_everywhere_by(client.id) {
        return true;
    }
    let (Some(c), Some(p)) = (center, placement.qpos) else {
        return false;
    };
    let dx = f64::from(p.x) - f64::from(c.x);
    let dy = f64::from(p.y) - f64::from(c.y);
    let r = if visible { radii.keep } else { radii.enter };
    dx * dx + dy * dy <= r * r
}

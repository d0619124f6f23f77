//! Lookup structures: sim ids to entities, and a grid over static entities.

use bevy_ecs::prelude::*;
use glam::Vec2;

use super::SimId;

/// Maps [`SimId`]s to the room's entities. Ids are dense, so this is a vector.
#[derive(Resource, Debug, Default)]
pub struct SimIndex {
    entities: Vec<Option<Entity>>,
}

impl SimIndex {
    /// The next unused id.
    pub fn next_id(&self) -> SimId {
        SimId(u32::try_from(self.entities.len()).expect("fewer than 2^32 entities per room"))
    }

    /// An empty index whose next id is `next` (a restored room's counter).
    pub fn with_next_id(next: SimId) -> Self {
        Self {
            entities: vec![None; next.0 as usize],
        }
    }

    /// Records `entity` under `id`.
    pub fn insert(&mut self, id: SimId, entity: Entity) {
        let i = id.0 as usize;
        if self.entities.len() <= i {
            self.entities.resize(i + 1, None);
        }
        self.entities[i] = Some(entity);
    }

    /// Forgets `id` (its entity was despawned). Ids are never reused.
    pub fn remove(&mut self, id: SimId) {
        if let Some(slot) = self.entities.get_mut(id.0 as usize) {
            *slot = None;
        }
    }

    /// The entity with `id`, if it exists.
    pub fn get(&self, id: SimId) -> Option<Entity> {
        self.entities.get(id.0 as usize).copied().flatten()
    }
}

/// A uniform grid over entities that never move (resource nodes, buildings),
/// answering "nearest acceptable entity" without scanning them all.
#[derive(Debug, Clone)]
pub struct StaticGrid {
    cell: f32,
    cols: i32,
    rows: i32,
    cells: Vec<Vec<(SimId, Vec2)>>,
}

impl StaticGrid {
    /// An empty grid covering `(0, 0)..=size` with square cells of side `cell`.
    pub fn new(size: Vec2, cell: f32) -> Self {
        let cols = ((size.x / cell).ceil() as i32).max(1);
        let rows = ((size.y / cell).ceil() as i32).max(1);
        Self {
            cell,
            cols,
            rows,
            cells: vec![Vec::new(); (cols * rows) as usize],
        }
    }

    /// Adds an entity at `pos`.
    pub fn insert(&mut self, id: SimId, pos: Vec2) {
        let (cx, cy) = self.cell_of(pos);
        self.cells[(cy * self.cols + cx) as usize].push((id, pos));
    }

    /// Removes entity `id` recorded at `pos` (it was despawned), keeping the
    /// order of the others.
    pub fn remove(&mut self, id: SimId, pos: Vec2) {
        let (cx, cy) = self.cell_of(pos);
        self.cells[(cy * self.cols + cx) as usize].retain(|(other, _)| *other != id);
    }

    fn cell_of(&self, pos: Vec2) -> (i32, i32) {
        let cx = ((pos.x / self.cell) as i32).clamp(0, self.cols - 1);
        let cy = ((pos.y / self.cell) as i32).clamp(0, self.rows - 1);
        (cx, cy)
    }

    /// The nearest entity within `max_dist` of `from` for which `accept` holds;
    /// ties go to the lower id.
    ///
    /// Searches rings of cells outwards and stops once no unvisited cell can hold
    /// anything closer, so the cost follows the distance to the answer and a
    /// failed search costs at most the cells within `max_dist`.
    pub fn nearest(
        &self,
        from: Vec2,
        max_dist: f32,
        mut accept: impl FnMut(SimId) -> bool,
    ) -> Option<(SimId, Vec2)> {
        let (cx, cy) = self.cell_of(from);
        let mut best: Option<(f32, SimId, Vec2)> = None;
        let max_dist_sq = max_dist * max_dist;
        let max_ring = self
            .cols
            .max(self.rows)
            .min(((max_dist / self.cell).ceil() as i32).saturating_add(1));
        for ring in 0..=max_ring {
            for (x, y) in ring_cells(cx, cy, ring) {
                if x < 0 || y < 0 || x >= self.cols || y >= self.rows {
                    continue;
                }
                for &(id, pos) in &self.cells[(y * self.cols + x) as usize] {
                    let d = from.distance_squared(pos);
                    let better = match best {
                        None => d <= max_dist_sq,
                        Some((bd, bid, _)) => d < bd || (d == bd && id < bid),
                    };
                    if better && accept(id) {
                        best = Some((d, id, pos));
                    }
                }
            }
            // Every cell of ring r+1 or beyond is at least r cells away from `from`.
            if let Some((d, id, pos)) = best {
                let reach = ring as f32 * self.cell;
                if d <= reach * reach {
                    return Some((id, pos));
                }
            }
        }
        best.map(|(_, id, pos)| (id, pos))
    }
}

/// The cells at Chebyshev distance `ring` from `(cx, cy)`, each once.
fn ring_cells(cx: i32, cy: i32, ring: i32) -> impl Iterator<Item = (i32, i32)> {
    let (x0, x1, y0, y1) = (cx - ring, cx + ring, cy - ring, cy + ring);
    let top_bottom = (x0..=x1).flat_map(move |x| {
        let ys: &[i32] = if ring == 0 { &[0] } else { &[0, 1] };
        ys.iter()
            .map(move |&side| (x, if side == 0 { y0 } else { y1 }))
    });
    let sides = (y0 + 1..y1).flat_map(move |y| [(x0, y), (x1, y)]);
    top_bottom.chain(sides)
}

/// Grids over the world's static entities.
#[derive(Resource, Debug, Clone)]
pub struct StaticIndex {
    /// Resource nodes.
    pub resources: StaticGrid,
    /// Buildings.
    pub buildings: StaticGrid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_cells_cover_each_cell_once() {
        for ring in 0..4 {
            let mut cells: Vec<_> = ring_cells(10, 10, ring).collect();
            let n = cells.len();
            cells.sort();
            cells.dedup();
            assert_eq!(cells.len(), n, "duplicates in ring {ring}");
            let expected = if ring == 0 { 1 } else { 8 * ring as usize };
            assert_eq!(n, expected);
            assert!(
                cells
                    .iter()
                    .all(|&(x, y)| (x - 10).abs().max((y - 10).abs()) == ring)
            );
        }
    }

    #[test]
    fn nearest_matches_brute_force() {
        let mut grid = StaticGrid::new(Vec2::splat(100.0), 7.0);
        let points: Vec<Vec2> = (0..200u32)
            .map(|i| Vec2::new((i * 37 % 100) as f32 + 0.5, (i * 61 % 100) as f32 + 0.25))
            .collect();
        for (i, &p) in points.iter().enumerate() {
            grid.insert(SimId(i as u32), p);
        }
        for q in 0..50u32 {
            let from = Vec2::new((q * 13 % 100) as f32, (q * 29 % 100) as f32);
            // Accept only even ids to exercise the filter.
            let got = grid
                .nearest(from, 30.0, |id| id.0 % 2 == 0)
                .map(|(id, _)| id);
            let want = points
                .iter()
                .enumerate()
                .filter(|(i, p)| i % 2 == 0 && from.distance(**p) <= 30.0)
                .min_by(|(ia, a), (ib, b)| {
                    from.distance_squared(**a)
                        .total_cmp(&from.distance_squared(**b))
                        .then(ia.cmp(ib))
                })
                .map(|(i, _)| SimId(i as u32));
            assert_eq!(got, want, "query from {from}");
        }
        assert_eq!(grid.nearest(Vec2::ZERO, f32::INFINITY, |_| false), None);
        assert_eq!(grid.nearest(Vec2::ZERO, 0.1, |_| true), None);
    }
}

//! The interest grid: replicated entities filed by cell, with their positions.

use crate::change_set::QPos;
use crate::id_map::IdMap;
use crate::net_id::NetId;

mod cells;
mod ring;

use cells::Cells;
use ring::ring_runs;

/// A cell's coordinates: its column and row.
pub(crate) type CellAt = (i32, i32);

/// Uniform grid of entity ids by quantized position.
///
/// Each cell lists its entities with their positions, so that a view can
/// tell which of them lie within a distance of its center without a lookup
/// of their records: a cache miss each, which was most of what re-evaluating
/// a view's edge cost. Every move must then update the listed position, so
/// the grid also knows where each entity is filed: a move within its cell
/// (most moves) is one write, with neither a hash nor a search of the cell.
#[derive(Debug, Default)]
pub(crate) struct Grid {
    pub cell_quanta: i32,
    /// The division by `cell_quanta` as a multiplication (see [`Divisor`]).
    divisor: Divisor,
    cells: Cells,
    /// Where each entity is filed: its cell and its place in it.
    filed: IdMap<(CellAt, u32)>,
}

impl Grid {
    pub fn new(cell_quanta: i32) -> Self {
        let cell_quanta = cell_quanta.max(1);
        Self {
            cell_quanta,
            divisor: Divisor::new(cell_quanta),
            ..Self::default()
        }
    }

    /// The cell holding `p`: each coordinate divided by `cell_quanta`,
    /// rounded down.
    pub fn cell_of(&self, p: QPos) -> (i32, i32) {
        (self.div_floor(p.x), self.div_floor(p.y))
    }

    /// `v.div_euclid(cell_quanta)`.
    fn div_floor(&self, v: i32) -> i32 {
        self.divisor.div_floor(v)
    }

    /// Files `id` at `p`, in `cell` (`p`'s); it must not be filed already.
    fn insert(&mut self, id: NetId, p: QPos, cell: CellAt) {
        let entries = self.cells.entry(cell, self.filed.len());
        entries.push((id, p));
        let place = (entries.len() - 1) as u32;
        self.filed.insert(id, (cell, place));
    }

    /// Takes `id` off the grid; returns the cell it was filed in.
    pub fn remove(&mut self, id: NetId) -> Option<CellAt> {
        let (cell, i) = self.filed.remove(&id)?;
        if let Some(entries) = self.cells.get_mut(cell) {
            if (i as usize) < entries.len() {
                entries.swap_remove(i as usize);
            }
            if let Some(&(moved, _)) = entries.get(i as usize)
                && let Some(place) = self.filed.get_mut(&moved)
            {
                place.1 = i;
            }
            if entries.is_empty() {
                self.cells.release(cell);
            }
        }
        Some(cell)
    }

    /// Files `id` at `to` (`None`: off the grid), wherever it was; returns
    /// the cells it was filed in before and after.
    pub fn relocate(&mut self, id: NetId, to: Option<QPos>) -> (Option<CellAt>, Option<CellAt>) {
        let to_cell = to.map(|p| self.cell_of(p));
        if let Some(p) = to
            && let Some(&(cell, i)) = self.filed.get(&id)
            && Some(cell) == to_cell
            && let Some(entry) = self.cells.get_mut(cell).and_then(|e| e.get_mut(i as usize))
        {
            // Most moves stay in their cell: one write.
            entry.1 = p;
            return (to_cell, to_cell);
        }
        let from_cell = self.remove(id);
        if let (Some(p), Some(cell)) = (to, to_cell) {
            self.insert(id, p, cell);
        }
        (from_cell, to_cell)
    }

    /// Every id within `reach` of `center` (in quanta), and perhaps a few
    /// just beyond (see [`Grid::in_ring`]).
    pub fn around(&self, center: QPos, reach: i32, f: impl FnMut(NetId)) {
        self.in_ring(center, 0.0, f64::from(reach), f);
    }

    /// Every id between `inner` and `outer` of `center` (in quanta): what a
    /// view must look at again when its center shifts a little. The ring is
    /// widened by a quantum on both sides, so that no rounding of the
    /// caller's radii (square roots) drops an entity at its edge.
    pub fn in_ring(&self, center: QPos, inner: f64, outer: f64, f: impl FnMut(NetId)) {
        self.in_rings(center, &[(inner, outer)], f);
    }

    /// Every id within any of `rings` (inner and outer radius, in quanta,
    /// widened as in [`Grid::in_ring`]) of `center`, once. Rings a few cells
    /// apart or less share their cells, so the cells are walked once.
    pub fn in_rings(&self, center: QPos, rings: &[(f64, f64)], mut f: impl FnMut(NetId)) {
        let widened = |&(inner, outer): &(f64, f64)| ((inner - 1.0).max(0.0), outer + 1.0);
        let (Some(min), Some(max)) = (
            rings.iter().map(|r| widened(r).0).reduce(f64::min),
            rings.iter().map(|r| widened(r).1).reduce(f64::max),
        ) else {
            return;
        };
        let in_any = |d_sq: f64| {
            rings.iter().any(|r| {
                let (lo, hi) = widened(r);
                d_sq >= lo * lo && d_sq <= hi * hi
            })
        };
        self.ring_runs(center, (min, max), |cy, run| {
            self.cells.run(cy, run, |entries| {
                for &(id, p) in entries {
                    let dx = f64::from(p.x) - f64::from(center.x);
                    let dy = f64::from(p.y) - f64::from(center.y);
                    let d_sq = dx * dx + dy * dy;
                    if d_sq >= min * min && d_sq <= max * max && in_any(d_sq) {
                        f(id);
                    }
                }
            });
        });
    }

    /// Calls `f(row, (first column, last column))` on the runs of cells
    /// overlapping the ring `inner ..= outer` around `center` (in quanta; see
    /// [`ring_runs`]).
    pub fn ring_runs(&self, center: QPos, ring: (f64, f64), f: impl FnMut(i32, (i32, i32))) {
        ring_runs(self.cell_quanta, center, ring, f);
    }
}

/// Floor division of any `i32` by a fixed positive divisor, as one
/// multiplication: an integer division takes tens of cycles, and every move
/// divides several times (its cells before and after, in the grid and in
/// the tick's cells). The earlier float reciprocal needed two conversions
/// and a correction each way: 9 % of the instructions of a tick shed to every sixth.
///
/// `v` is first offset by `offset`, a multiple of the divisor of at least
/// 2³¹, so that it is non-negative and below 2³³; then the quotient of that
/// is `(n · magic) >> 64` with `magic = ⌈2⁶⁴ / d⌉`, exact for every n below
/// 2³³ since `magic · d − 2⁶⁴ < d ≤ 2³¹` (Granlund and Montgomery, 1994,
/// theorem 4.2, with N = 33 and ℓ = 31).
#[derive(Debug, Default, Clone, Copy)]
struct Divisor {
    /// `⌈2⁶⁴ / d⌉`; 0 for `d = 1`, where it would not fit (and the
    /// quotient is `v`).
    magic: u64,
    offset: i64,
    /// `offset / d`.
    offset_quotient: i64,
}

impl Divisor {
    /// A divisor of `d` (at least 1).
    fn new(d: i32) -> Self {
        let d = u64::from(d.max(1).unsigned_abs());
        if d == 1 {
            return Self::default();
        }
        let offset_quotient = (1u64 << 31).div_ceil(d);
        Self {
            // ⌈2⁶⁴ / d⌉ for d ≥ 2 fits: it is at most 2⁶³.
            magic: (u64::MAX / d) + 1,
            offset: (offset_quotient * d) as i64,
            offset_quotient: offset_quotient as i64,
        }
    }

    fn div_floor(&self, v: i32) -> i32 {
        if self.magic == 0 {
            return v;
        }
        let n = (i64::from(v) + self.offset) as u64;
        let q = ((u128::from(n) * u128::from(self.magic)) >> 64) as i64;
        (q - self.offset_quotient) as i32
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn division_is_exact_at_the_edges() {
        let divisors = [1, 2, 3, 49, 91, 640, 1 << 20, (1 << 30) + 1, i32::MAX];
        let values = [i32::MIN, i32::MIN + 1, -70_707, -1, 0, 1, 147, i32::MAX - 1];
        for q in divisors {
            for v in values.into_iter().chain([i32::MAX, q, -q, q - 1, 1 - q]) {
                assert_eq!(Grid::new(q).div_floor(v), v.div_euclid(q), "{v} / {q}");
            }
        }
    }

    proptest! {
        #[test]
        fn cells_are_euclidean_quotients(
            q in prop_oneof![1i32..64, 1i32..=i32::MAX],
            v in prop_oneof![any::<i32>(), Just(i32::MIN), Just(i32::MAX), -1000i32..1000],
            k in -70_000i32..70_000,
        ) {
            let grid = Grid::new(q);
            prop_assert_eq!(grid.div_floor(v), v.div_euclid(q));
            // Exact multiples and their neighbours, where rounding bites.
            if let Some(m) = k.checked_mul(q) {
                for v in [m.saturating_sub(1), m, m.saturating_add(1)] {
                    prop_assert_eq!(grid.div_floor(v), v.div_euclid(q), "{} / {}", v, q);
                }
            }
        }
    }

    fn ring_ids(grid: &Grid, inner: f64, outer: f64) -> Vec<u64> {
        let mut ids = Vec::new();
        grid.in_ring(QPos { x: 0, y: 0 }, inner, outer, |id| ids.push(id.0));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn the_ring_holds_what_lies_between_its_radii_not_whole_cells() {
        let mut grid = Grid::new(100);
        // All in the cells overlapping the ring 40..=60; only 2 and 3 within it.
        for (id, x) in [(1, 30), (2, 40), (3, 60), (4, 70)] {
            grid.relocate(NetId(id), Some(QPos { x, y: 0 }));
        }
        assert_eq!(ring_ids(&grid, 40.0, 60.0), [2, 3]);
        // A quantum of slack either side, for the callers' rounding.
        assert_eq!(ring_ids(&grid, 41.0, 59.0), [2, 3]);
        assert_eq!(ring_ids(&grid, 42.0, 58.0), Vec::<u64>::new());
    }

    #[test]
    fn two_rings_report_what_lies_in_either_once_and_not_the_gap_between() {
        let mut grid = Grid::new(100);
        for (id, x) in [
            (1, 10),
            (2, 20),
            (3, 30),
            (4, 50),
            (5, 70),
            (6, 80),
            (7, 95),
        ] {
            grid.relocate(NetId(id), Some(QPos { x, y: 0 }));
        }
        let mut ids = Vec::new();
        let rings = [(18.0, 31.0), (69.0, 81.0)];
        grid.in_rings(QPos { x: 0, y: 0 }, &rings, |id| ids.push(id.0));
        ids.sort_unstable();
        assert_eq!(ids, [2, 3, 5, 6]);
        // Overlapping rings still report each id once.
        let mut ids = Vec::new();
        grid.in_rings(QPos { x: 0, y: 0 }, &[(5.0, 60.0), (25.0, 90.0)], |id| {
            ids.push(id.0)
        });
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn moves_within_a_cell_update_the_position_the_ring_reads() {
        let mut grid = Grid::new(100);
        let at = |x| Some(QPos { x, y: 0 });
        assert_eq!(grid.relocate(NetId(1), at(50)), (None, Some((0, 0))));
        assert_eq!(ring_ids(&grid, 40.0, 60.0), [1]);
        assert_eq!(
            grid.relocate(NetId(1), at(90)),
            (Some((0, 0)), Some((0, 0)))
        );
        assert_eq!(ring_ids(&grid, 40.0, 60.0), Vec::<u64>::new());
        assert_eq!(ring_ids(&grid, 80.0, 100.0), [1]);
        // Into another cell, and out of the grid.
        assert_eq!(
            grid.relocate(NetId(1), at(150)),
            (Some((0, 0)), Some((1, 0)))
        );
        assert_eq!(ring_ids(&grid, 140.0, 160.0), [1]);
        assert_eq!(grid.relocate(NetId(1), None), (Some((1, 0)), None));
        assert_eq!(ring_ids(&grid, 0.0, 1000.0), Vec::<u64>::new());
        assert_eq!(grid.remove(NetId(1)), None);
    }

    #[test]
    fn removal_keeps_the_other_entities_of_the_cell_filed() {
        let mut grid = Grid::new(100);
        let at = |x| Some(QPos { x, y: 0 });
        for id in 1..=4 {
            grid.relocate(NetId(id), at(10 * id as i32));
        }
        // 4 takes 2's place in the cell; its moves must still find it.
        grid.remove(NetId(2));
        grid.relocate(NetId(4), at(95));
        grid.relocate(NetId(3), at(5));
        assert_eq!(ring_ids(&grid, 90.0, 100.0), [4]);
        assert_eq!(ring_ids(&grid, 0.0, 8.0), [3]);
        assert_eq!(ring_ids(&grid, 0.0, 100.0), [1, 3, 4]);
        // An emptied cell fills again.
        for id in [1, 3, 4] {
            grid.remove(NetId(id));
        }
        grid.relocate(NetId(5), at(50));
        assert_eq!(ring_ids(&grid, 0.0, 100.0), [5]);
    }
}

//! The grid's cells: one dense array where the entities are, a map beyond.

use bevy_platform::collections::HashMap;
use smallvec::SmallVec;

use crate::change_set::QPos;
use crate::net_id::NetId;

/// One cell's entities with their positions; four inline (a village cell
/// holds two on average), more on the heap.
pub(super) type Cell = SmallVec<[(NetId, QPos); 4]>;

/// Cells by their coordinates.
///
/// Views read the cells a row run at a time (see `ring`) and every move
/// writes one. Kept as a map of vectors, each cell read was three cache
/// misses (the map's control bytes, the vector, its entries; `perf
/// annotate` of the room threads in S5), with twenty rooms taking turns on
/// two cores' caches. Here the cells around the entities are one row-major
/// array of inline cells: a lookup is an index, and a row run is adjacent
/// memory. The array grows to cover a new cell while it stays within
/// [`DENSE_CELLS_PER_ENTITY`] cells per entity (at least [`MIN_DENSE_CELLS`]);
/// cells beyond it, which only far-flung entities need, live in a map.
#[derive(Debug, Default)]
pub(super) struct Cells {
    /// The lowest cell of the dense rectangle.
    origin: (i32, i32),
    width: usize,
    height: usize,
    dense: Vec<Cell>,
    sparse: HashMap<(i32, i32), Cell>,
}

/// How sparse the dense rectangle may be: cells per entity filed.
const DENSE_CELLS_PER_ENTITY: usize = 8;

/// The dense rectangle may always cover this many cells (≈ 300 KB).
const MIN_DENSE_CELLS: usize = 4096;

impl Cells {
    /// The dense index of `cell`, if the rectangle covers it.
    fn index(&self, (x, y): (i32, i32)) -> Option<usize> {
        let dx = usize::try_from(i64::from(x) - i64::from(self.origin.0)).ok()?;
        let dy = usize::try_from(i64::from(y) - i64::from(self.origin.1)).ok()?;
        (dx < self.width && dy < self.height).then(|| dy * self.width + dx)
    }

    /// The entities filed in `cell`.
    #[cfg(test)]
    pub fn get(&self, cell: (i32, i32)) -> &[(NetId, QPos)] {
        match self.index(cell) {
            Some(i) => &self.dense[i],
            None => self.sparse.get(&cell).map_or(&[], |c| c.as_slice()),
        }
    }

    /// The entities filed in `cell`, to change, if it has any storage.
    pub fn get_mut(&mut self, cell: (i32, i32)) -> Option<&mut Cell> {
        match self.index(cell) {
            Some(i) => self.dense.get_mut(i),
            None => self.sparse.get_mut(&cell),
        }
    }

    /// The storage of `cell`, made if needed; `entities` is how many the
    /// grid files, which bounds how far the dense rectangle may grow.
    pub fn entry(&mut self, cell: (i32, i32), entities: usize) -> &mut Cell {
        if self.index(cell).is_none() {
            self.grow_to(cell, entities);
        }
        match self.index(cell) {
            Some(i) => &mut self.dense[i],
            None => self.sparse.entry(cell).or_default(),
        }
    }

    /// Lets go of an emptied cell's storage: a spilled cell's heap block,
    /// a cell of the map.
    pub fn release(&mut self, cell: (i32, i32)) {
        match self.index(cell) {
            Some(i) => {
                if self.dense[i].is_empty() && self.dense[i].spilled() {
                    self.dense[i] = Cell::new();
                }
            }
            None => {
                if self.sparse.get(&cell).is_some_and(|c| c.is_empty()) {
                    self.sparse.remove(&cell);
                }
            }
        }
    }

    /// Calls `f` on the entities of the cells `lo ..= hi` of `row`, cell by
    /// cell in column order.
    pub fn run(&self, row: i32, (lo, hi): (i32, i32), mut f: impl FnMut(&[(NetId, QPos)])) {
        let dy = i64::from(row) - i64::from(self.origin.1);
        let (x0, x1) = if (0..self.height as i64).contains(&dy) {
            let x0 = i64::from(self.origin.0);
            (x0, x0 + self.width as i64 - 1)
        } else {
            // No dense cells in this row: an empty range right of the run.
            (i64::from(hi) + 1, i64::from(hi))
        };
        let (lo, hi) = (i64::from(lo), i64::from(hi));
        self.sparse_run(row, (lo, hi.min(x0 - 1)), &mut f);
        // The run's part inside the rectangle: one slice of cells.
        let (in_lo, in_hi) = (lo.max(x0), hi.min(x1));
        if in_lo <= in_hi {
            let start = dy as usize * self.width + (in_lo - x0) as usize;
            let end = start + (in_hi - in_lo) as usize;
            for cell in &self.dense[start..=end] {
                f(cell);
            }
        }
        self.sparse_run(row, (lo.max(x1 + 1), hi), &mut f);
    }

    /// The map's cells among `from ..= to` of `row`, in column order.
    fn sparse_run(&self, row: i32, (from, to): (i64, i64), f: &mut impl FnMut(&[(NetId, QPos)])) {
        if self.sparse.is_empty() {
            return;
        }
        for x in from..=to {
            if let Some(cell) = self.sparse.get(&(x as i32, row)) {
                f(cell);
            }
        }
    }

    /// Widens the rectangle to cover `cell` (with room to spare, so that
    /// growing is rare), unless that would pass the size bound; cells of the
    /// map that the new rectangle covers move into it.
    fn grow_to(&mut self, (x, y): (i32, i32), entities: usize) {
        let limit = (entities.saturating_add(1) * DENSE_CELLS_PER_ENTITY).max(MIN_DENSE_CELLS);
        let (lo, hi) = if self.dense.is_empty() {
            ((x, y), (x, y))
        } else {
            let (ox, oy) = self.origin;
            let far = |o: i32, n: usize| o.saturating_add(n as i32 - 1);
            (
                (ox.min(x), oy.min(y)),
                (far(ox, self.width).max(x), far(oy, self.height).max(y)),
            )
        };
        let span = |a: i32, b: i32| (i64::from(b) - i64::from(a)) as u64 + 1;
        // A quarter more on each side (at least 4 cells) if that fits, else exactly.
        let margin = |a: i32, b: i32| (span(a, b) / 4).max(4) as i32;
        let padded = (
            (
                lo.0.saturating_sub(margin(lo.0, hi.0)),
                lo.1.saturating_sub(margin(lo.1, hi.1)),
            ),
            (
                hi.0.saturating_add(margin(lo.0, hi.0)),
                hi.1.saturating_add(margin(lo.1, hi.1)),
            ),
        );
        let area =
            |(lo, hi): ((i32, i32), (i32, i32))| span(lo.0, hi.0).saturating_mul(span(lo.1, hi.1));
        let Some((lo, hi)) = [padded, (lo, hi)]
            .into_iter()
            .find(|&r| area(r) <= limit as u64)
        else {
            return;
        };
        let (width, height) = (span(lo.0, hi.0) as usize, span(lo.1, hi.1) as usize);
        let mut dense = vec![Cell::new(); width * height];
        let old = std::mem::take(&mut self.dense);
        for (i, cell) in old.into_iter().enumerate() {
            if !cell.is_empty() {
                let (cx, cy) = (
                    self.origin.0 + (i % self.width) as i32,
                    self.origin.1 + (i / self.width) as i32,
                );
                dense[(cy - lo.1) as usize * width + (cx - lo.0) as usize] = cell;
            }
        }
        self.sparse.retain(|&(cx, cy), cell| {
            let inside = (lo.0..=hi.0).contains(&cx) && (lo.1..=hi.1).contains(&cy);
            if inside {
                let i = (cy - lo.1) as usize * width + (cx - lo.0) as usize;
                dense[i] = std::mem::take(cell);
            }
            !inside
        });
        (self.origin, self.width, self.height, self.dense) = (lo, width, height, dense);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn at(id: u64) -> (NetId, QPos) {
        (NetId(id), QPos { x: 0, y: 0 })
    }

    proptest! {
        /// Whatever cells are filed, and however the rectangle grows or
        /// leaves some in the map, every cell and every run reads back what
        /// was filed there, once, in column order.
        #[test]
        fn cells_read_back_what_was_filed(
            filed in prop::collection::vec(
                (prop_oneof![-40i32..40, any::<i32>()], prop_oneof![-40i32..40, any::<i32>()]),
                0..60,
            ),
            // Entities filed per cell filed: the bound on the rectangle grows
            // as they do, so cells left in the map move into it later.
            per_cell in 0usize..400,
        ) {
            let mut cells = Cells::default();
            let mut model: BTreeMap<(i32, i32), Vec<u64>> = BTreeMap::new();
            let mut entities = 0;
            for (i, &cell) in filed.iter().enumerate() {
                entities = i * per_cell;
                cells.entry(cell, entities).push(at(i as u64));
                model.entry(cell).or_default().push(i as u64);
            }
            let ids = |c: &[(NetId, QPos)]| c.iter().map(|e| e.0.0).collect::<Vec<_>>();
            for (&cell, want) in &model {
                prop_assert_eq!(&ids(cells.get(cell)), want);
                let mut got = Vec::new();
                cells.run(cell.1, (cell.0.saturating_sub(3), cell.0.saturating_add(3)), |c| {
                    got.extend(ids(c));
                });
                let want: Vec<u64> = model
                    .range((cell.0.saturating_sub(3), cell.1)..=(cell.0.saturating_add(3), cell.1))
                    .filter(|((_, y), _)| *y == cell.1)
                    .flat_map(|(_, v)| v.iter().copied())
                    .collect();
                prop_assert_eq!(got, want);
            }
            prop_assert!(cells.dense.len() <= ((entities + 1) * DENSE_CELLS_PER_ENTITY).max(MIN_DENSE_CELLS));
        }
    }

    #[test]
    fn far_cells_go_to_the_map_and_near_ones_stay_dense() {
        let mut cells = Cells::default();
        cells.entry((0, 0), 1).push(at(1));
        cells.entry((5, -3), 1).push(at(2));
        assert!(cells.sparse.is_empty());
        cells.entry((1 << 20, 0), 1).push(at(3));
        assert_eq!(cells.sparse.len(), 1);
        assert_eq!(cells.get((1 << 20, 0))[0].0, NetId(3));
        // Emptied, a map cell goes.
        cells.get_mut((1 << 20, 0)).unwrap().clear();
        cells.release((1 << 20, 0));
        assert!(cells.sparse.is_empty());
    }
}

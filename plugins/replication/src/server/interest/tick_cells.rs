//! This tick's changes filed by grid cell, so that each radius view looks only
//! at the cells it covers.

use bevy_platform::collections::HashMap;

use super::super::TickScratch;
use super::super::mirror::{Grid, Mirror, Placement};
use crate::change_set::QPos;
use crate::net_id::NetId;

/// One changed entity in one cell.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CellEntry {
    pub id: NetId,
    /// Its position, owner and hashes, copied once for every view.
    pub placement: Placement,
    /// Its position changed: views must re-evaluate whether they see it.
    pub moved: bool,
    /// It is in this cell now (`false`: it left this cell this tick).
    pub here: bool,
    /// Where it was before this tick (`None`: it had no position).
    pub from: Option<QPos>,
}

impl CellEntry {
    fn new(id: NetId, placement: Placement, moved: bool, here: bool, from: Option<QPos>) -> Self {
        Self {
            id,
            placement,
            moved,
            here,
            from,
        }
    }
}

/// The tick's changes as the views need them.
#[derive(Default)]
pub(crate) struct TickCells {
    /// Entries as they are filed, with their cells; laid out by cell in `seal`.
    staged: Vec<((i32, i32), CellEntry)>,
    by_cell: ByCell,
    /// New entities and entities that gained or lost a position: every view
    /// re-evaluates them.
    pub everyone: Vec<NetId>,
    /// Changed entities a view may see wherever its center is: those without a
    /// position and those in [`Mirror::everywhere`].
    pub anywhere: Vec<NetId>,
}

impl TickCells {
    /// Files the changes of the tick in `scratch`.
    pub fn new(mirror: &Mirror, scratch: &TickScratch, position_bit: u64) -> Self {
        let mut cells = Self {
            everyone: scratch.created.clone(),
            // At most one entry for each change, and one more for each move.
            staged: Vec::with_capacity(scratch.changed.len() + scratch.moved.len()),
            ..Self::default()
        };
        let grid = &mirror.grid;
        for (&id, &mask) in &scratch.changed {
            let Some(record) = mirror.records.get(&id) else {
                continue;
            };
            if record.qpos.is_none() || mirror.everywhere.contains(&id) {
                cells.anywhere.push(id);
            }
            // Moved entities are filed from `scratch.moved`, which knows where they were.
            if mask & position_bit == 0
                && let Some(p) = record.qpos
            {
                let placement = record.placement();
                cells.push(
                    grid.cell_of(p),
                    CellEntry::new(id, placement, false, true, Some(p)),
                );
            }
        }
        for m in &scratch.moved {
            let Some(record) = mirror.records.get(&m.id) else {
                cells.everyone.push(m.id);
                continue;
            };
            let placement = record.placement();
            // The grid filed it in `to_cell` unless it moved again since.
            let now_cell = if record.qpos == m.to {
                m.to_cell
            } else {
                record.qpos.map(|p| grid.cell_of(p))
            };
            if let Some(now) = now_cell {
                cells.push(now, CellEntry::new(m.id, placement, true, true, m.from));
            }
            match (m.from_cell, now_cell) {
                // Views around the old cell may have to let it go.
                (Some(a), Some(b)) if a != b => {
                    cells.push(a, CellEntry::new(m.id, placement, true, false, m.from));
                }
                (Some(_), Some(_)) => {}
                _ => cells.everyone.push(m.id),
            }
        }
        cells.by_cell = ByCell::new(std::mem::take(&mut cells.staged));
        cells
    }

    fn push(&mut self, cell: (i32, i32), entry: CellEntry) {
        self.staged.push((cell, entry));
    }

    /// Every entry in the cells overlapping the disc of `reach` quanta around `center`.
    pub fn around(&self, grid: &Grid, center: QPos, reach: f64, mut f: impl FnMut(CellEntry)) {
        if self.by_cell.is_empty() {
            return;
        }
        grid.ring_runs(center, (0.0, reach), |row, columns| {
            self.by_cell.run(row, columns, &mut f);
        });
    }
}

/// Entries by cell. Every view looks up dozens of cells per tick, so when
/// the changed cells' bounding box is not much larger than the number of
/// entries, the cells are a dense rectangle over one sorted array (a lookup
/// is an index); otherwise a map.
enum ByCell {
    Dense {
        /// The lowest cell of the rectangle, and its width and height.
        origin: (i32, i32),
        size: (usize, usize),
        /// `entries[starts[i]..starts[i + 1]]` are the entries of cell `i`.
        starts: Vec<u32>,
        entries: Vec<CellEntry>,
    },
    Sparse(HashMap<(i32, i32), Vec<CellEntry>>),
}

impl Default for ByCell {
    fn default() -> Self {
        Self::Sparse(HashMap::default())
    }
}

impl ByCell {
    fn new(staged: Vec<((i32, i32), CellEntry)>) -> Self {
        let Some(((x0, y0), (x1, y1))) = bounds(&staged) else {
            return Self::default();
        };
        // In i64: cells of far-apart entities may span more than i32 can hold.
        let span = |lo: i32, hi: i32| (i64::from(hi) - i64::from(lo)) as usize + 1;
        let (w, h) = (span(x0, x1), span(y0, y1));
        if w.saturating_mul(h) > (4 * staged.len()).max(4096) {
            let mut map: HashMap<(i32, i32), Vec<CellEntry>> = HashMap::default();
            for (cell, entry) in staged {
                map.entry(cell).or_default().push(entry);
            }
            return Self::Sparse(map);
        }
        let index = |(x, y): (i32, i32)| (y - y0) as usize * w + (x - x0) as usize;
        // A counting sort by cell.
        let mut starts = vec![0u32; w * h + 1];
        for (cell, _) in &staged {
            starts[index(*cell) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut entries = vec![staged[0].1; staged.len()];
        for (cell, entry) in staged {
            let slot = &mut next[index(cell)];
            entries[*slot as usize] = entry;
            *slot += 1;
        }
        Self::Dense {
            origin: (x0, y0),
            size: (w, h),
            starts,
            entries,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Dense { entries, .. } => entries.is_empty(),
            Self::Sparse(map) => map.is_empty(),
        }
    }

    /// Calls `f` on the entries of the cells `columns.0 ..= columns.1` of
    /// `row`. Dense, a row's cells are adjacent in the array: one slice.
    fn run(&self, row: i32, (lo, hi): (i32, i32), f: &mut impl FnMut(CellEntry)) {
        match self {
            Self::Dense {
                origin,
                size,
                starts,
                entries,
            } => {
                // In i64: the run may reach past i32's range relative to the origin.
                let dy = i64::from(row) - i64::from(origin.1);
                let lo = (i64::from(lo) - i64::from(origin.0)).max(0);
                let hi = (i64::from(hi) - i64::from(origin.0)).min(size.0 as i64 - 1);
                if dy < 0 || dy >= size.1 as i64 || lo > hi {
                    return;
                }
                let first = dy as usize * size.0;
                let cells =
                    starts[first + lo as usize] as usize..starts[first + hi as usize + 1] as usize;
                entries[cells].iter().copied().for_each(f);
            }
            Self::Sparse(map) => {
                for x in lo..=hi {
                    map.get(&(x, row))
                        .into_iter()
                        .flatten()
                        .copied()
                        .for_each(&mut *f);
                }
            }
        }
    }
}

/// The lowest and highest cell among `staged`.
fn bounds(staged: &[((i32, i32), CellEntry)]) -> Option<((i32, i32), (i32, i32))> {
    let mut cells = staged.iter().map(|(cell, _)| *cell);
    let first = cells.next()?;
    Some(cells.fold((first, first), |(lo, hi), (x, y)| {
        ((lo.0.min(x), lo.1.min(y)), (hi.0.max(x), hi.1.max(y)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64) -> CellEntry {
        let placement = Placement {
            qpos: None,
            owner: None,
            always_relevant: false,
            hash_public: id,
            hash_owner: id,
        };
        CellEntry::new(NetId(id), placement, true, true, None)
    }

    fn run(by_cell: &ByCell, row: i32, columns: (i32, i32)) -> Vec<NetId> {
        let mut ids = Vec::new();
        by_cell.run(row, columns, &mut |e| ids.push(e.id));
        ids
    }

    /// Both layouts answer every lookup with the entries filed in that cell, in filing order.
    fn check(cells: &[(i32, i32)], dense: bool) {
        let staged: Vec<_> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, entry(i as u64)))
            .collect();
        let by_cell = ByCell::new(staged.clone());
        assert_eq!(matches!(by_cell, ByCell::Dense { .. }), dense);
        let mut probes: Vec<(i32, i32)> = cells.to_vec();
        probes.extend([(i32::MIN, i32::MIN), (i32::MAX, 0), (-1, -1), (7, 1_000)]);
        for probe in probes {
            let want: Vec<NetId> = staged
                .iter()
                .filter(|(c, _)| *c == probe)
                .map(|(_, e)| e.id)
                .collect();
            assert_eq!(
                run(&by_cell, probe.1, (probe.0, probe.0)),
                want,
                "cell {probe:?}"
            );
            // A run of cells: theirs, cell after cell.
            let (lo, hi) = (probe.0.saturating_sub(2), probe.0.saturating_add(3));
            let want: Vec<NetId> = (lo..=hi)
                .flat_map(|x| run(&by_cell, probe.1, (x, x)))
                .collect();
            assert_eq!(run(&by_cell, probe.1, (lo, hi)), want, "run {lo}..={hi}");
        }
    }

    #[test]
    fn dense_and_sparse_cells_find_the_same_entries() {
        check(&[(0, 0), (3, 2), (3, 2), (-4, 9), (0, 0), (31, 31)], true);
        check(&[(0, 0), (i32::MAX, i32::MIN), (5, 5), (5, 5)], false);
        check(&[], false);
    }
}

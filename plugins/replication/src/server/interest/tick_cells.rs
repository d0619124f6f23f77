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
pub(super) struct TickCells {
    by_cell: HashMap<(i32, i32), Vec<CellEntry>>,
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
        for &(id, old) in &scratch.moved {
            let Some(record) = mirror.records.get(&id) else {
                cells.everyone.push(id);
                continue;
            };
            let placement = record.placement();
            if let Some(now) = record.qpos {
                cells.push(
                    grid.cell_of(now),
                    CellEntry::new(id, placement, true, true, old),
                );
            }
            match (old, record.qpos) {
                // Views around the old cell may have to let it go.
                (Some(a), Some(b)) if grid.cell_of(a) != grid.cell_of(b) => {
                    cells.push(
                        grid.cell_of(a),
                        CellEntry::new(id, placement, true, false, old),
                    );
                }
                (Some(_), Some(_)) => {}
                _ => cells.everyone.push(id),
            }
        }
        cells
    }

    fn push(&mut self, cell: (i32, i32), entry: CellEntry) {
        self.by_cell.entry(cell).or_default().push(entry);
    }

    /// Every entry in the cells overlapping the disc of `reach` quanta around `center`.
    pub fn around(&self, grid: &Grid, center: QPos, reach: f64, mut f: impl FnMut(CellEntry)) {
        if self.by_cell.is_empty() {
            return;
        }
        for cell in grid.cells_in_ring(center, 0.0, reach) {
            for &entry in self.by_cell.get(&cell).into_iter().flatten() {
                f(entry);
            }
        }
    }
}

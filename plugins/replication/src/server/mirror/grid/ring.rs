//! Which cells of the grid a ring around a point overlaps, row by row.
//!
//! Every radius view asks this each tick, for a disc of a dozen cells across.
//! Testing each cell of the bounding square cost a distance computation per
//! cell, more than looking at the changes found in them; a row's overlapping
//! cells are one run (two, where the ring's hole cuts through the row), so
//! each row's ends are found from the circle's width at that row and checked
//! against the exact test.

use crate::change_set::QPos;

/// Calls `f(row, (first column, last column))` on each run of cells
/// overlapping the ring `inner ..= outer` around `center` (in quanta, cells
/// `cell` quanta wide): rows in increasing order, at most two runs per row.
/// A callback rather than an iterator: nested flattening iterators cost more
/// per cell than the ring's arithmetic per row.
///
/// Every cell whose square comes within `outer` of the center and reaches at
/// least `inner` from it is in a run, and every cell in a run comes within
/// `outer`; a cell just inside `inner` may be included where rounding makes
/// the hole's edge uncertain (callers test each entity's own distance).
pub(crate) fn ring_runs(
    cell: i32,
    center: QPos,
    (inner, outer): (f64, f64),
    mut f: impl FnMut(i32, (i32, i32)),
) {
    let cell = cell.max(1);
    let q = f64::from(cell);
    let (px, py) = (f64::from(center.x), f64::from(center.y));
    let reach = outer.ceil().clamp(0.0, f64::from(i32::MAX)) as i32;
    let bound = |v: i32| {
        (
            v.saturating_sub(reach).div_euclid(cell),
            v.saturating_add(reach).div_euclid(cell),
        )
    };
    let (x_min, x_max) = bound(center.x);
    let (y_min, y_max) = bound(center.y);
    // Distances from the center to the nearest and farthest points of a
    // cell's span along one axis.
    let near = |c: i32, p: f64| {
        let lo = f64::from(c) * q;
        (lo - p).max(p - (lo + q)).max(0.0)
    };
    let far = |c: i32, p: f64| {
        let lo = f64::from(c) * q;
        (p - lo).abs().max((lo + q - p).abs())
    };
    // Columns from a coordinate, saturating: `as` clamps to i32's range.
    let column = |x: f64| (x / q).floor() as i32;
    for cy in y_min..=y_max {
        let (near_y, far_y) = (near(cy, py), far(cy, py));
        let overlaps = |cx: i32| {
            let nx = near(cx, px);
            nx * nx + near_y * near_y <= outer * outer
        };
        let in_hole = |cx: i32| {
            let fx = far(cx, px);
            fx * fx + far_y * far_y < inner * inner
        };
        if near_y * near_y > outer * outer {
            continue;
        }
        // The circle's half-width at this row, then a cell of slack each
        // side for rounding, trimmed back with the exact test. The cells
        // that overlap form one run, so trimming its ends leaves exactly it.
        let half = (outer * outer - near_y * near_y).sqrt();
        let Some((lo, hi)) = trim(
            column(px - half).saturating_sub(1).max(x_min),
            column(px + half).saturating_add(1).min(x_max),
            overlaps,
        ) else {
            continue;
        };
        if inner > 0.0 && far_y < inner {
            // The hole's cells form one run too; trimmed until its ends are
            // surely in it, what remains is, and is left out.
            let half = (inner * inner - far_y * far_y).sqrt();
            if let Some((h_lo, h_hi)) = trim(
                column(px - half).saturating_add(1).max(lo),
                column(px + half).saturating_sub(1).min(hi),
                in_hole,
            ) {
                if lo < h_lo {
                    f(cy, (lo, h_lo - 1));
                }
                if h_hi < hi {
                    f(cy, (h_hi + 1, hi));
                }
                continue;
            }
        }
        f(cy, (lo, hi));
    }
}

/// `lo ..= hi` with the ends that fail `keep` cut off, from either side;
/// `None` if no column passes. For columns where `keep` holds on one run,
/// that run (its part within `lo ..= hi`).
fn trim(lo: i32, hi: i32, keep: impl Fn(i32) -> bool) -> Option<(i32, i32)> {
    let lo = (lo..=hi).find(|&c| keep(c))?;
    let hi = (lo..=hi).rev().find(|&c| keep(c))?;
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The test each cell of the bounding square used to get.
    fn exact(cell: i32, center: QPos, inner: f64, outer: f64) -> BTreeSet<(i32, i32)> {
        let q = f64::from(cell);
        let (px, py) = (f64::from(center.x), f64::from(center.y));
        let reach = outer.ceil() as i32;
        let lo = |v: i32| (v - reach).div_euclid(cell);
        let hi = |v: i32| (v + reach).div_euclid(cell);
        let mut cells = BTreeSet::new();
        for cy in lo(center.y)..=hi(center.y) {
            for cx in lo(center.x)..=hi(center.x) {
                let (x0, y0) = (f64::from(cx) * q, f64::from(cy) * q);
                let (x1, y1) = (x0 + q, y0 + q);
                let near_x = (x0 - px).max(px - x1).max(0.0);
                let near_y = (y0 - py).max(py - y1).max(0.0);
                let far_x = (px - x0).abs().max((x1 - px).abs());
                let far_y = (py - y0).abs().max((y1 - py).abs());
                if near_x * near_x + near_y * near_y <= outer * outer
                    && far_x * far_x + far_y * far_y >= inner * inner
                {
                    cells.insert((cx, cy));
                }
            }
        }
        cells
    }

    fn runs(cell: i32, center: QPos, inner: f64, outer: f64) -> Vec<(i32, i32)> {
        let mut cells = Vec::new();
        ring_runs(cell, center, (inner, outer), |cy, (lo, hi)| {
            cells.extend((lo..=hi).map(|cx| (cx, cy)));
        });
        cells
    }

    proptest! {
        /// The runs hold each cell once, every cell the exact test keeps, and
        /// nothing beyond `outer`; at most a cell at the hole's rounded edge more.
        #[test]
        fn runs_are_the_cells_each_cell_tested_alone_would_give(
            cell in 1i32..64,
            (x, y) in (-5_000i32..5_000, -5_000i32..5_000),
            outer in 0.0f64..600.0,
            hole in 0.0f64..1.0,
        ) {
            let center = QPos { x, y };
            let inner = outer * hole;
            let got = runs(cell, center, inner, outer);
            let unique: BTreeSet<_> = got.iter().copied().collect();
            prop_assert_eq!(unique.len(), got.len(), "a cell twice");
            let want = exact(cell, center, inner, outer);
            prop_assert!(unique.is_superset(&want), "missing {:?}", want.difference(&unique).collect::<Vec<_>>());
            let with_hole = exact(cell, center, 0.0, outer);
            prop_assert!(unique.is_subset(&with_hole), "beyond outer");
            // Anything extra is at the hole's edge: within a hair of `inner`.
            let hair = exact(cell, center, inner - 1e-6 * inner.max(1.0), outer);
            prop_assert!(unique.is_subset(&hair), "deep inside the hole");
        }
    }

    #[test]
    fn rings_at_the_edges_of_i32_stay_in_range() {
        for (x, y) in [
            (i32::MAX, i32::MAX),
            (i32::MIN, i32::MIN),
            (i32::MAX, i32::MIN),
        ] {
            // Cells of 1 around the center's are in the ring; a cell of 7
            // reaches past the hole of 1.5, so the center's own cell is too.
            let got = runs(1, QPos { x, y }, 1.5, 4.0);
            assert!(!got.is_empty(), "({x}, {y}) by 1");
            let got = runs(7, QPos { x, y }, 1.5, 4.0);
            assert!(
                got.contains(&(x.div_euclid(7), y.div_euclid(7))),
                "({x}, {y}) by 7"
            );
        }
    }

    #[test]
    fn a_ring_around_a_cell_corner_skips_its_hole_and_its_corners() {
        // Cells 10 wide, center on a corner: the disc of 25 covers a 6×6
        // square less its four corner cells; the hole of 15 takes the middle 2×2.
        let center = QPos { x: 0, y: 0 };
        let got: BTreeSet<_> = runs(10, center, 15.0, 25.0).into_iter().collect();
        assert_eq!(got.len(), 36 - 4 - 4);
        assert!(!got.contains(&(-3, -3)) && !got.contains(&(2, 2)));
        assert!(!got.contains(&(0, 0)) && !got.contains(&(-1, -1)));
        assert!(got.contains(&(-3, 0)) && got.contains(&(1, 1)));
    }
}

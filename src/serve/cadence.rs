//! When a room's ticks fall: on a fixed grid of its own, staggered against
//! the other rooms' grids so that their ticks spread across the slot.
//!
//! Twenty rooms at 30 Hz that tick at the same moments hand the workers
//! twenty ticks at once and then nothing for the rest of the slot; the
//! network thread and the clients get the same bursts after them. The cores
//! sit idle between the bursts while the rooms at the back of each burst
//! miss their slot. Spread evenly, the same work arrives as a steady stream.
//!
//! Every room keeps its phase: a room that falls behind skips whole slots
//! and comes back on its own grid, rather than restarting its grid at the
//! moment it caught up, which would pull the rooms that fell behind
//! together into one burst again.

use std::time::{Duration, Instant};

/// The fractional part of the golden ratio: phase `n` is `n` times this,
/// modulo one, which keeps any number of consecutive rooms close to evenly
/// spread, however many there turn out to be (each new phase falls into
/// the largest gap left, or nearly).
const GOLDEN_FRACTION: f64 = 0.618_033_988_749_894_8;

/// Where the `n`th room opened on a server ticks within the slot, as a
/// fraction of it in `[0, 1)`.
pub(crate) fn phase(n: u64) -> f64 {
    // Exact for any count a server opens: n stays far below 2^52.
    (n as f64 * GOLDEN_FRACTION).fract()
}

/// A room's tick grid: `epoch + phase · slot + k · slot` for whole `k`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cadence {
    /// One point of the grid.
    origin: Instant,
    slot: Duration,
}

impl Cadence {
    /// The grid of tick length `slot` whose points lie `phase` (a fraction
    /// of the slot, see [`phase`]) after `epoch` and after every slot since.
    /// `epoch` is shared by all the server's rooms.
    pub fn new(epoch: Instant, slot: Duration, phase: f64) -> Self {
        Self {
            origin: epoch + slot.mul_f64(phase.clamp(0.0, 1.0)),
            slot,
        }
    }

    /// The time between two ticks.
    pub fn slot(&self) -> Duration {
        self.slot
    }

    /// The first point of the grid at or after `now`: when a new room ticks first.
    pub fn first(&self, now: Instant) -> Instant {
        self.at_or_after(self.origin, now)
    }

    /// The deadline of the tick after the one due at `due` (a point of the
    /// grid): one slot later. When that has passed by more than a slot (a
    /// stall, or more rooms than the cores can tick), the missed ticks are
    /// skipped rather than run back to back: the deadline is the latest
    /// point of the grid within a slot before `now`, already due, so the
    /// room ticks again as soon as a worker is free, behind the rooms that
    /// have waited longer, and stays on its grid.
    pub fn next(&self, due: Instant, now: Instant) -> Instant {
        let next = due + self.slot;
        match now.checked_sub(self.slot) {
            Some(floor) if next < floor => self.at_or_after(next, floor),
            _ => next,
        }
    }

    /// The first of `from + k · slot` (whole `k ≥ 0`) at or after `at`.
    fn at_or_after(&self, from: Instant, at: Instant) -> Instant {
        let behind = at.saturating_duration_since(from);
        let slot = self.slot.as_nanos().max(1);
        let slots = behind.as_nanos().div_ceil(slot);
        // Saturate rather than overflow on absurd gaps: u32 slots of 1 ms
        // are 49 days, and a room that far behind is dead anyway.
        from + self.slot * u32::try_from(slots).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn phases_spread_any_number_of_rooms() {
        for rooms in [2, 3, 5, 20, 50] {
            let mut phases: Vec<f64> = (0..rooms).map(phase).collect();
            phases.sort_by(f64::total_cmp);
            let gaps = phases
                .windows(2)
                .map(|w| w[1] - w[0])
                .chain([1.0 + phases[0] - phases[rooms as usize - 1]]);
            let widest = gaps.fold(0.0, f64::max);
            // Evenly spread would be 1/rooms; the golden sequence stays within
            // about 2.6 times that, where random phases leave gaps of several times.
            assert!(
                widest <= 2.7 / rooms as f64,
                "{rooms} rooms: widest gap {widest}"
            );
        }
    }

    #[test]
    fn a_new_room_starts_on_its_grid() {
        let epoch = Instant::now();
        let grid = Cadence::new(epoch, ms(30), 0.5);
        assert_eq!(grid.first(epoch), epoch + ms(15));
        assert_eq!(grid.first(epoch + ms(15)), epoch + ms(15));
        assert_eq!(grid.first(epoch + ms(16)), epoch + ms(45));
        assert_eq!(grid.first(epoch + ms(1_000)), epoch + ms(1_005));
    }

    #[test]
    fn a_late_room_runs_its_missed_tick_and_skips_whole_slots_on_its_grid() {
        let epoch = Instant::now();
        let grid = Cadence::new(epoch, ms(10), 0.0);
        let at = |n| epoch + ms(n);
        // On time, or less than a slot late: the next point, run at once if due.
        assert_eq!(grid.next(at(0), at(3)), at(10));
        assert_eq!(grid.next(at(0), at(19)), at(10));
        assert_eq!(grid.next(at(0), at(20)), at(10));
        // More than a slot behind: the latest point within a slot before now.
        assert_eq!(grid.next(at(0), at(21)), at(20));
        assert_eq!(grid.next(at(0), at(1_234)), at(1_230));
        // Whatever the lateness, the deadline is on the grid and already due,
        // and it never falls a slot or more behind now.
        for late in 0..100 {
            let now = at(late);
            let next = grid.next(at(0), now);
            assert_eq!((next - epoch).as_millis() % 10, 0);
            assert!(next <= now.max(at(10)) && next + ms(10) >= now, "{late}");
        }
    }
}

//! Load shedding: a room whose tick starts late sends less.
//!
//! Rooms share the workers, so when the cores cannot keep up every room's
//! ticks start later and later, until each one is more than a slot late and
//! skips a tick (`cadence`). That skip is the worst answer: the world's clock
//! falls behind the wall's, and every client misses a tick at once. Most of
//! a room tick is replication's building, encoding and sending per client,
//! not the simulation, so a late room sheds that instead: each client gets a
//! set every second tick, or third, up to every sixth, in turns
//! (`ReplicationServer::set_min_send_interval`), the ticks themselves all
//! run, and no change is lost, only merged into the next set. Unreal's
//! servers shed the same work the same way
//! (`net.MaxConnectionsToTickPerServerFrame`).
//!
//! The lateness is the signal, as queueing delay is for a client that falls
//! behind (`backoff` in the replication crate): it is the backlog itself,
//! whatever caused it, and it shrinks as soon as the shedding works.
//!
//! Lateness alone cannot hold a room at a deep level of shedding: the level
//! it maps to falls as soon as the backlog shrinks, so a room that needs
//! every fifth tick shed would sit a whole slot late, where it skips, for
//! the lateness to ask for it. [`Shedder`] therefore also remembers: a room
//! that stays late sheds one step more every few ticks, and gives a step
//! back only after it has started on time for half a second. The room then
//! settles where its ticks start less than a quarter slot late, however
//! deep that is, instead of at the edge of skipping, as a compressor's
//! fast attack and slow release hold a level without riding the peaks.

use std::time::Duration;

use kasagi_replication::ReplicationServer;

/// Consecutive late ticks (a quarter slot or more) after which the room's
/// held level rises one step: 100 ms at 30 Hz, so that one or two slow
/// ticks (a preemption, a worker busy with a long tick) are not remembered.
const RISE_TICKS: u32 = 3;

/// Consecutive ticks started within a quarter slot after which the room
/// gives one step of shedding back: half a second at 30 Hz. Slower than
/// the rise, so that a room probes the next lighter level twice a second at
/// most and goes back at once if that level is too heavy.
const CALM_TICKS: u32 = 15;

/// Every how many ticks each client gets a change set when the room's tick
/// starts `late` on a grid of `slot`, by the lateness alone: every tick
/// while the room is less than a quarter of a slot late (a worker busy with
/// another room's tick, a preemption), and one tick more for every further
/// quarter slot, up to [`ReplicationServer::MAX_SHED_INTERVAL`]. Even a tick
/// that is all shed costs about half of a whole one (the collection, the
/// simulation, the interest grid), and the cap keeps the delay shedding
/// adds to a fifth of a second at 30 Hz.
pub(crate) fn min_send_interval(late: Duration, slot: Duration) -> u64 {
    let quarters = late.as_nanos() * 4 / slot.as_nanos().max(1);
    u64::try_from(quarters)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
        .min(ReplicationServer::MAX_SHED_INTERVAL)
}

/// A room's shedding over time: a held level that rises while the room
/// stays late and falls once it has been on time for a while, plus what
/// this tick's lateness asks for ([`min_send_interval`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shedder {
    /// The held level: 1 sheds nothing.
    level: u64,
    /// Consecutive ticks that started a quarter slot late or more.
    late_run: u32,
    /// Consecutive ticks that started earlier than that.
    calm_run: u32,
}

impl Default for Shedder {
    fn default() -> Self {
        Self {
            level: 1,
            late_run: 0,
            calm_run: 0,
        }
    }
}

impl Shedder {
    /// The send interval of the tick that starts `late` on a grid of `slot`:
    /// the held level, plus one for every quarter slot this tick is late
    /// (so a held room still sheds more at once when it falls further
    /// behind), up to [`ReplicationServer::MAX_SHED_INTERVAL`].
    pub fn on_tick(&mut self, late: Duration, slot: Duration) -> u64 {
        let extra = min_send_interval(late, slot) - 1;
        if extra > 0 {
            self.calm_run = 0;
            self.late_run += 1;
            if self.late_run >= RISE_TICKS {
                self.late_run = 0;
                self.level = (self.level + 1).min(ReplicationServer::MAX_SHED_INTERVAL);
            }
        } else {
            self.late_run = 0;
            self.calm_run += 1;
            if self.calm_run >= CALM_TICKS {
                self.calm_run = 0;
                self.level = (self.level - 1).max(1);
            }
        }
        (self.level + extra).min(ReplicationServer::MAX_SHED_INTERVAL)
    }

    /// The held level.
    #[cfg(test)]
    fn level(&self) -> u64 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: Duration = Duration::from_micros(33_333);

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_later_the_tick_the_fewer_the_sets() {
        let interval = |late| min_send_interval(ms(late), SLOT);
        assert_eq!(interval(0), 1);
        assert_eq!(interval(8), 1);
        assert_eq!(interval(9), 2);
        assert_eq!(interval(16), 2);
        assert_eq!(interval(17), 3);
        assert_eq!(interval(25), 4);
        assert_eq!(interval(34), 5);
        assert_eq!(interval(42), 6);
        assert_eq!(interval(1_000_000), 6);
        assert_eq!(min_send_interval(Duration::MAX, SLOT), 6);
        assert_eq!(min_send_interval(Duration::ZERO, Duration::ZERO), 1);
    }

    #[test]
    fn a_room_that_stays_a_little_late_sheds_deeper_and_deeper() {
        let mut shedder = Shedder::default();
        // 9 ms late asks for every second tick by itself, every tick.
        let intervals: Vec<u64> = (0..20).map(|_| shedder.on_tick(ms(9), SLOT)).collect();
        assert_eq!(intervals[0], 2, "what the lateness asks for at once");
        assert_eq!(intervals[1], 2);
        assert_eq!(
            intervals[2], 3,
            "the held level rises on the third late tick"
        );
        assert_eq!(intervals[5], 4);
        assert_eq!(intervals[8], 5);
        assert_eq!(intervals[11], 6);
        assert_eq!(intervals[19], 6, "capped");
        assert!(intervals.windows(2).all(|w| w[0] <= w[1]), "{intervals:?}");
    }

    #[test]
    fn one_late_tick_is_not_remembered() {
        let mut shedder = Shedder::default();
        assert_eq!(
            shedder.on_tick(ms(30), SLOT),
            4,
            "the lateness counts at once"
        );
        assert_eq!(shedder.on_tick(ms(1), SLOT), 1, "and only for its own tick");
        assert_eq!(shedder.level(), 1);
        // Two late ticks between calm ones never make a run of three.
        for _ in 0..10 {
            shedder.on_tick(ms(10), SLOT);
            shedder.on_tick(ms(10), SLOT);
            assert_eq!(shedder.on_tick(ms(0), SLOT), 1);
        }
    }

    #[test]
    fn an_on_time_room_gives_the_shedding_back_a_step_at_a_time() {
        let mut shedder = Shedder::default();
        for _ in 0..30 {
            shedder.on_tick(ms(12), SLOT);
        }
        assert_eq!(shedder.level(), 6);
        let intervals: Vec<u64> = (0..80).map(|_| shedder.on_tick(ms(2), SLOT)).collect();
        // Held while the room is on time, one step less every CALM_TICKS.
        let calm = CALM_TICKS as usize;
        assert_eq!(intervals[calm - 2], 6);
        assert_eq!(intervals[calm - 1], 5);
        assert_eq!(intervals[2 * calm - 1], 4);
        assert_eq!(intervals[5 * calm - 1], 1);
        assert_eq!(intervals[79], 1);
        // A late tick in between restarts the count.
        for _ in 0..30 {
            shedder.on_tick(ms(12), SLOT);
        }
        for _ in 0..calm - 1 {
            shedder.on_tick(ms(2), SLOT);
        }
        shedder.on_tick(ms(12), SLOT);
        for _ in 0..calm - 1 {
            assert_eq!(shedder.on_tick(ms(2), SLOT), 6);
        }
        assert_eq!(shedder.on_tick(ms(2), SLOT), 5);
    }

    /// The most a room falls behind, in slots, over ticks 100..600 of a toy
    /// backlog: a slot of capacity per tick, and a tick's cost falling with
    /// the interval as S5's do, with a fixed part: 0.6 slot, plus 1.8 slots
    /// spread over the interval, so the room keeps up only from every fifth.
    fn worst_backlog(mut interval_of: impl FnMut(Duration) -> u64) -> f64 {
        let cost = |interval: u64| 0.6 + 1.8 / interval as f64;
        let mut backlog = 0.0_f64;
        let mut worst = 0.0_f64;
        for tick in 0..600 {
            let interval = interval_of(SLOT.mul_f64(backlog));
            backlog = (backlog + cost(interval) - 1.0).max(0.0);
            if tick >= 100 {
                worst = worst.max(backlog);
            }
        }
        worst
    }

    #[test]
    fn a_room_settles_where_it_keeps_up() {
        let mut shedder = Shedder::default();
        let worst = worst_backlog(|late| shedder.on_tick(late, SLOT));
        assert!(worst < 0.5, "settled {worst} slots late");
        assert!(shedder.level() >= 4, "held at {}", shedder.level());
        // By the lateness alone the room must stay a whole slot late, where
        // it skips, to ask for every fifth tick.
        let by_lateness = worst_backlog(|late| min_send_interval(late, SLOT));
        assert!(by_lateness >= 1.0, "{by_lateness}");
    }
}

//! Drives a room's ticks at a chosen pace and measures them.

use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Room;

/// How fast a [`TickDriver`] runs ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Back to back, for headless simulation runs and benchmarks.
    AsFastAsPossible,
    /// At a fixed rate on the wall clock, for serving clients.
    ///
    /// Deadlines are absolute (`start + n / hz`) so that sleep jitter does not
    /// accumulate into drift; a tick that overruns its slot is counted, and the
    /// driver catches up rather than skipping simulation time.
    RealTime {
        /// Ticks per second.
        hz: f64,
    },
}

/// Wall-clock measurements of the ticks a driver ran.
#[derive(Clone, Debug)]
pub struct TickStats {
    /// Tick durations in nanoseconds.
    pub tick_ns: Histogram<u64>,
    /// Ticks that ran.
    pub ticks: u64,
    /// Real-time ticks that finished after their slot ended (the next tick started late).
    pub overruns: u64,
    /// Wall time from the first tick's start to the last tick's end.
    pub elapsed: Duration,
}

impl TickStats {
    fn new() -> Self {
        Self {
            // Three significant figures from 1 ns to one minute.
            tick_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("constant histogram bounds are valid"),
            ticks: 0,
            overruns: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Ticks per second of wall time.
    pub fn ticks_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ticks as f64 / secs
        } else {
            0.0
        }
    }

    /// The given quantile (0..=1) of tick time, in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.tick_ns.value_at_quantile(q) as f64 / 1_000.0
    }
}

/// Runs a room's ticks at a [`Pace`] and records how long each took.
pub struct TickDriver {
    pace: Pace,
    stats: TickStats,
}

impl TickDriver {
    /// A driver with empty statistics.
    pub fn new(pace: Pace) -> Self {
        Self {
            pace,
            stats: TickStats::new(),
        }
    }

    /// What the driver has measured so far.
    pub fn stats(&self) -> &TickStats {
        &self.stats
    }

    /// Runs `ticks` ticks of `room`, calling `after_tick` after each with the room
    /// and the number of ticks this call has run so far.
    pub fn run(&mut self, room: &mut Room, ticks: u64, mut after_tick: impl FnMut(&mut Room, u64)) {
        let start = Instant::now();
        let slot = match self.pace {
            Pace::AsFastAsPossible => None,
            Pace::RealTime { hz } => Some(Duration::from_secs_f64(1.0 / hz)),
        };
        for n in 1..=ticks {
            let took = room.tick();
            self.record(took);
            after_tick(room, n);
            if let Some(slot) = slot {
                let deadline = start + slot.mul_f64(n as f64);
                let now = Instant::now();
                if now < deadline {
                    thread::sleep(deadline - now);
                } else {
                    self.stats.overruns += 1;
                }
            }
        }
        self.stats.elapsed += start.elapsed();
    }

    fn record(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        // Saturating record: a tick longer than a minute is clamped, not lost.
        self.stats.tick_ns.saturating_record(ns);
        self.stats.ticks += 1;
    }
}

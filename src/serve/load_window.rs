//! The server's half of a load scenario: one measured window of ticks.
//!
//! Every load scenario (see `kasagi bench`) measures the same way: once the
//! expected number of clients is connected, the server lets a warm-up pass and
//! then records every tick of every room over a fixed window: whole-tick wall
//! time (receive + simulate + replicate + send), ticks that overran their slot,
//! ticks run against ticks expected, and the process's CPU time.

use std::time::{Duration, Instant};

use super::TickTiming;
use hdrhistogram::Histogram;
use kasagi_replication::SendTotals;
use serde::Serialize;

/// How long the window waits for every client before measuring anyway (a
/// scenario the machine cannot hold should still be measured, not hang).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long after its end the window still takes ticks due within it: a
/// room's tick is reported when it ends, which may be a slot or two after
/// its due time when the rooms run late.
const STRAGGLERS: Duration = Duration::from_millis(250);

/// When to measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadWindowSpec {
    /// Clients that must be connected before the warm-up starts.
    pub clients: usize,
    /// How long after that measuring starts.
    pub warmup: Duration,
    /// How long the measurement runs.
    pub window: Duration,
}

/// What the server measured; printed as the `load_window` JSON event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadReport {
    /// Rooms running at the end of the window.
    pub rooms: usize,
    /// Clients connected at the end of the window.
    pub clients: usize,
    /// Clients connected when the warm-up started (fewer than expected when
    /// they did not all connect within a minute).
    pub clients_at_start: usize,
    /// The window's length as measured, s.
    pub window_secs: f64,
    /// Ticks run by all rooms that were due within the window (a tick that
    /// started late still counts; one skipped does not).
    pub ticks: u64,
    /// Ticks due within the window (`rooms · tick_hz · window`). Counting by
    /// due time makes the two agree exactly when no tick was skipped; counted
    /// by when their reports arrived, each room's count at the window's
    /// edges was off by one either way.
    pub ticks_expected: u64,
    /// Ticks whose wall time exceeded their slot (`1 / tick_hz`).
    pub overruns: u64,
    /// Tick wall time, median, ms.
    pub tick_p50_ms: f64,
    /// Tick wall time, 99th percentile, ms.
    pub tick_p99_ms: f64,
    /// Longest tick, ms.
    pub tick_max_ms: f64,
    /// CPU time of the worker thread within a tick, median, ms. Where it is
    /// well under the wall time, the thread waited for a core (other rooms,
    /// the network thread, or a load generator on the same machine).
    pub tick_cpu_p50_ms: f64,
    /// CPU time of the worker thread within a tick, 99th percentile, ms.
    pub tick_cpu_p99_ms: f64,
    /// Tick start → its packets handed to the network thread, median, ms:
    /// the server's share of the input-to-observer latency (0 when no tick
    /// handed anything over).
    pub handover_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub handover_p99_ms: f64,
    /// How late ticks started against their place on the room's grid,
    /// median, ms: the wait for a worker.
    pub tick_late_p50_ms: f64,
    /// The same, 99th percentile, ms. A tick a whole slot late is skipped.
    pub tick_late_p99_ms: f64,
    /// CPU time of the whole server process within the window (user + system), s.
    pub cpu_secs: f64,
    /// CPU time of the rooms' ticks within the window (the sum of every
    /// tick's thread CPU time), s: the room workers' share of `cpu_secs`.
    pub room_cpu_secs: f64,
    /// CPU time of the network thread within the window, s (0 where
    /// unsupported). The rest of `cpu_secs` is rooms opening, persistence
    /// and logging.
    pub network_cpu_secs: f64,
    /// Entities each room's world starts with (avatars not included).
    pub world_entities: u64,
    /// Change sets the rooms built for clients within the window.
    pub change_sets: u64,
    /// Client ticks whose change set was held back, within the window:
    /// because the client fell behind (`ReplicationConfig::backoff_after_ticks`)
    /// or the room shed load (`shedding`).
    pub change_sets_held_back: u64,
    /// Of those, the ones held back only because the room shed load.
    pub change_sets_shed: u64,
    /// The share of client ticks held back, for either reason
    /// ([`SendTotals::shares`]).
    pub held_back_share: f64,
    /// The share of client ticks held back only to shed load.
    pub shed_share: f64,
}

/// The phases of a measured window, shared by the server's half (here) and
/// the bots' half (`kasagi bots --window`): wait for the clients, warm up,
/// measure from a snapshot `S` taken at the start, done.
#[derive(Clone, Copy, Debug)]
pub enum WindowPhase<S> {
    /// Waiting for every client, since then.
    Waiting {
        /// When the wait began.
        since: Instant,
    },
    /// Warming up until then.
    WarmingUp {
        /// When measuring begins.
        until: Instant,
    },
    /// Measuring since `start`, from the counters `at_start`.
    Measuring {
        /// When the window began.
        start: Instant,
        /// What the window measures against, read when it began.
        at_start: S,
    },
    /// The window has closed.
    Done,
}

/// The server's counters at the start of its window.
#[derive(Clone, Copy, Debug)]
struct AtStart {
    /// Process CPU time, s.
    cpu: f64,
    /// The network thread's CPU time, µs (the window is polled on it).
    network: u64,
}

/// Tracks one measurement window; fed by the network thread.
pub(crate) struct LoadWindow {
    spec: LoadWindowSpec,
    phase: WindowPhase<AtStart>,
    slot_us: u64,
    tick_hz: u32,
    world_entities: u64,
    tick_us: Histogram<u64>,
    tick_cpu_us: Histogram<u64>,
    handover_us: Histogram<u64>,
    late_us: Histogram<u64>,
    overruns: u64,
    /// Sum of the measured ticks' thread CPU time, µs.
    room_cpu_micros: u64,
    /// Change sets built and held back by the measured ticks.
    sends: SendTotals,
    clients_at_start: usize,
    /// The server's CPU time when the window ended.
    at_end: Option<AtEnd>,
}

/// The server's counters when its window ended, s since it began.
#[derive(Clone, Copy, Debug)]
struct AtEnd {
    secs: f64,
    cpu: f64,
    network: u64,
}

impl LoadWindow {
    pub fn new(spec: LoadWindowSpec, tick_hz: u32, world_entities: u64) -> Self {
        Self {
            spec,
            phase: WindowPhase::Waiting {
                since: Instant::now(),
            },
            clients_at_start: 0,
            at_end: None,
            slot_us: 1_000_000 / u64::from(tick_hz.max(1)),
            tick_hz,
            world_entities,
            tick_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            tick_cpu_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            handover_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            late_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            overruns: 0,
            room_cpu_micros: 0,
            sends: SendTotals::default(),
        }
    }

    /// Records one tick of some room, if it was due within the window.
    pub fn on_tick(&mut self, timing: &TickTiming) {
        if let WindowPhase::Measuring { start, .. } = self.phase
            && timing.due >= start
            && timing.due < start + self.spec.window
        {
            self.sends += timing.sends;
            self.tick_us.saturating_record(timing.micros.max(1));
            self.tick_cpu_us.saturating_record(timing.cpu_micros.max(1));
            self.late_us.saturating_record(timing.late_micros.max(1));
            self.room_cpu_micros += timing.cpu_micros;
            if let Some(handover) = timing.handover_micros {
                self.handover_us.saturating_record(handover.max(1));
            }
            if timing.micros > self.slot_us {
                self.overruns += 1;
            }
        }
    }

    /// Advances the phases; returns the report when the window has just closed.
    pub fn poll(&mut self, clients: usize, rooms: usize) -> Option<LoadReport> {
        let now = Instant::now();
        match self.phase {
            WindowPhase::Waiting { since }
                if clients >= self.spec.clients || now - since >= CONNECT_TIMEOUT =>
            {
                self.clients_at_start = clients;
                self.phase = WindowPhase::WarmingUp {
                    until: now + self.spec.warmup,
                };
            }
            WindowPhase::WarmingUp { until } if now >= until => {
                self.phase = WindowPhase::Measuring {
                    start: now,
                    at_start: AtStart {
                        cpu: process_cpu_secs(),
                        network: thread_cpu_micros(),
                    },
                };
            }
            WindowPhase::Measuring { start, at_start }
                if now - start >= self.spec.window && self.at_end.is_none() =>
            {
                // CPU time over the window itself; its last ticks' reports
                // are still on their way.
                self.at_end = Some(AtEnd {
                    secs: (now - start).as_secs_f64(),
                    cpu: process_cpu_secs() - at_start.cpu,
                    network: thread_cpu_micros().saturating_sub(at_start.network),
                });
            }
            WindowPhase::Measuring { start, .. }
                if now - start >= self.spec.window + STRAGGLERS
                    && let Some(end) = self.at_end =>
            {
                let h = &self.tick_us;
                let report = LoadReport {
                    rooms,
                    clients,
                    clients_at_start: self.clients_at_start,
                    window_secs: end.secs,
                    ticks: h.len(),
                    ticks_expected: (rooms as f64
                        * f64::from(self.tick_hz)
                        * self.spec.window.as_secs_f64())
                    .round() as u64,
                    overruns: self.overruns,
                    tick_p50_ms: h.value_at_quantile(0.5) as f64 / 1_000.0,
                    tick_p99_ms: h.value_at_quantile(0.99) as f64 / 1_000.0,
                    tick_max_ms: h.max() as f64 / 1_000.0,
                    tick_cpu_p50_ms: self.tick_cpu_us.value_at_quantile(0.5) as f64 / 1_000.0,
                    tick_cpu_p99_ms: self.tick_cpu_us.value_at_quantile(0.99) as f64 / 1_000.0,
                    handover_p50_ms: self.handover_us.value_at_quantile(0.5) as f64 / 1_000.0,
                    handover_p99_ms: self.handover_us.value_at_quantile(0.99) as f64 / 1_000.0,
                    tick_late_p50_ms: self.late_us.value_at_quantile(0.5) as f64 / 1_000.0,
                    tick_late_p99_ms: self.late_us.value_at_quantile(0.99) as f64 / 1_000.0,
                    cpu_secs: end.cpu,
                    room_cpu_secs: self.room_cpu_micros as f64 / 1e6,
                    network_cpu_secs: end.network as f64 / 1e6,
                    world_entities: self.world_entities,
                    change_sets: self.sends.change_sets,
                    change_sets_held_back: self.sends.held_back,
                    change_sets_shed: self.sends.shed,
                    held_back_share: self.sends.shares().0,
                    shed_share: self.sends.shares().1,
                };
                self.phase = WindowPhase::Done;
                return Some(report);
            }
            _ => {}
        }
        None
    }
}

/// CPU time of the calling thread so far, µs (0 where unsupported).
pub fn thread_cpu_micros() -> u64 {
    // SAFETY: clock_gettime only writes the struct we hand it.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

/// User + system CPU time of this process so far, s (0 where unsupported).
pub fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use kasagi_replication::SendTotals;

    use super::*;

    fn tick(due: Instant) -> TickTiming {
        TickTiming {
            due,
            micros: 1_000,
            cpu_micros: 900,
            handover_micros: None,
            late_micros: 0,
            sends: SendTotals::default(),
        }
    }

    #[test]
    fn a_window_counts_the_ticks_due_within_it_even_when_reported_late() {
        let spec = LoadWindowSpec {
            clients: 0,
            warmup: Duration::ZERO,
            window: Duration::from_millis(300),
        };
        let mut window = LoadWindow::new(spec, 100, 0);
        assert!(window.poll(0, 1).is_none(), "warming up");
        assert!(window.poll(0, 1).is_none(), "measuring");
        let WindowPhase::Measuring { start, .. } = window.phase else {
            panic!("not measuring: {:?}", window.phase);
        };
        let slot = Duration::from_millis(10);
        // Due before the window (reported within it), thirty within it with
        // one skipped, and one after it.
        window.on_tick(&tick(start - slot));
        for k in (0..30).filter(|&k| k != 17) {
            window.on_tick(&tick(start + slot * k + Duration::from_micros(1)));
        }
        std::thread::sleep(spec.window);
        assert!(window.poll(0, 1).is_none(), "the stragglers' grace");
        window.on_tick(&tick(start + spec.window - Duration::from_micros(1)));
        window.on_tick(&tick(start + spec.window));
        std::thread::sleep(STRAGGLERS);
        let report = window.poll(0, 1).expect("closed");
        assert_eq!(report.ticks_expected, 30);
        assert_eq!(report.ticks, 30, "29 on time, 1 straggler, 1 skipped");
        assert!(report.window_secs >= 0.3, "CPU is measured over the window");
    }
}

//! The bots' half of a load scenario: one measured window of received bytes.
//!
//! Mirrors the server's `load_window`: once every client is synced, a warm-up
//! passes, then the window measures what crossed the clients' sockets (UDP
//! payload, netcode header included, both ways) and finally checks what each
//! client holds.

use std::time::{Duration, Instant};

use kasagi_net::client::{GameClient, UdpCounters};

use crate::serve::{WindowPhase, process_cpu_secs};

/// When to measure.
#[derive(Clone, Copy, Debug)]
pub(super) struct WindowSpec {
    pub warmup: Duration,
    pub window: Duration,
}

/// How long the window waits for every client to sync before measuring anyway.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The bots' counters at the start of the window: sockets, process CPU (s).
type AtStart = (UdpCounters, f64);

/// The window's result.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct WindowResult {
    pub secs: f64,
    /// What crossed all clients' sockets within the window, both ways.
    pub udp: UdpCounters,
    /// CPU time of the bots process within the window (user + system), s.
    pub cpu_secs: f64,
    /// Whether every client was synced when the warm-up started.
    pub all_synced_at_start: bool,
}

/// Tracks the window over the bots' run.
pub(super) struct Window {
    spec: WindowSpec,
    phase: WindowPhase<AtStart>,
    result: Option<WindowResult>,
    all_synced_at_start: bool,
}

impl Window {
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            phase: WindowPhase::Waiting {
                since: Instant::now(),
            },
            result: None,
            all_synced_at_start: false,
        }
    }

    /// Advances the phases; `all_synced` says whether every client holds the room.
    pub fn poll(&mut self, all_synced: bool, clients: &[&GameClient]) {
        let now = Instant::now();
        match self.phase {
            WindowPhase::Waiting { since } if all_synced || now - since >= SYNC_TIMEOUT => {
                self.all_synced_at_start = all_synced;
                self.phase = WindowPhase::WarmingUp {
                    until: now + self.spec.warmup,
                };
            }
            WindowPhase::WarmingUp { until } if now >= until => {
                self.phase = WindowPhase::Measuring {
                    start: now,
                    at_start: (udp_totals(clients), process_cpu_secs()),
                };
            }
            WindowPhase::Measuring {
                start,
                at_start: (udp, cpu),
            } if now - start >= self.spec.window => {
                self.result = Some(WindowResult {
                    secs: (now - start).as_secs_f64(),
                    udp: udp_totals(clients) - udp,
                    cpu_secs: process_cpu_secs() - cpu,
                    all_synced_at_start: self.all_synced_at_start,
                });
                self.phase = WindowPhase::Done;
            }
            _ => {}
        }
    }

    /// Whether the window is being measured now (latency samples count only then).
    pub fn measuring(&self) -> bool {
        matches!(self.phase, WindowPhase::Measuring { .. })
    }

    /// How long the window has been measuring, while it is.
    pub fn measured(&self) -> Option<Duration> {
        match self.phase {
            WindowPhase::Measuring { start, .. } => Some(start.elapsed()),
            _ => None,
        }
    }

    /// The window's length.
    pub fn length(&self) -> Duration {
        self.spec.window
    }

    /// The result, once the window has closed.
    pub fn result(&self) -> Option<WindowResult> {
        self.result
    }
}

/// What crossed all clients' sockets so far.
pub(super) fn udp_totals(clients: &[&GameClient]) -> UdpCounters {
    clients
        .iter()
        .fold(UdpCounters::default(), |sum, c| sum + c.udp())
}

//! Input latency as the bots see it.
//!
//! A bot that turns sends the new heading at once and starts a probe. The
//! probe resolves twice: when the bot's own replica shows its avatar moving the
//! new way (*own*), and when the first *other* client's replica does
//! (*remote*: input → confirmed on another client, the S4 figure).
//!
//! One process drives many bots in turn, so each confirmation is timed when
//! that bot's update finished, not when the harness got round to looking:
//! a real client runs alone on its machine and sees the change as it lands.

use std::time::{Duration, Instant};

use glam::Vec2;
use hdrhistogram::Histogram;
use kasagi_net::client::GameClient;
use kasagi_replication::NetId;

use crate::sim::Velocity;

/// Probes older than this are abandoned (the avatar may be out of everyone's view).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One heading change on its way.
#[derive(Clone)]
pub(super) struct Probe {
    heading: Vec2,
    sent: Instant,
    own: bool,
    remote: bool,
    /// Whether the probe started within the measured window.
    counted: bool,
    /// The other clients that already held the avatar when the input was sent:
    /// only they can confirm it (one that walks into view later would measure
    /// its walk, not the latency).
    observers: Vec<usize>,
}

impl Probe {
    /// A probe for `clients[me]`'s new `heading`, sent at `sent`.
    pub fn new(
        heading: Vec2,
        sent: Instant,
        counted: bool,
        me: usize,
        clients: &[&GameClient],
    ) -> Self {
        let observers = match clients[me].player() {
            Some(player) => clients
                .iter()
                .enumerate()
                .filter(|(j, c)| *j != me && c.replica().entity(player).is_some())
                .map(|(j, _)| j)
                .collect(),
            None => Vec::new(),
        };
        Self {
            heading,
            sent,
            own: false,
            remote: false,
            counted,
            observers,
        }
    }
}

/// Latency histograms, µs.
pub(super) struct Latency {
    pub own: Histogram<u64>,
    pub remote: Histogram<u64>,
    /// Whether remote confirmation is looked for (costs a lookup per client per probe).
    pub measure_remote: bool,
}

impl Latency {
    pub fn new(measure_remote: bool) -> Self {
        let h = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Self {
            own: h(),
            remote: h(),
            measure_remote,
        }
    }

    /// Resolves what it can of every bot's probe; `probes[i]` belongs to
    /// `clients[i]`, whose last update finished at `updated[i]`.
    pub fn resolve(
        &mut self,
        clients: &[&GameClient],
        updated: &[Instant],
        probes: &mut [Option<Probe>],
    ) {
        for (i, slot) in probes.iter_mut().enumerate() {
            let Some(probe) = slot else { continue };
            let Some(player) = clients[i].player() else {
                continue;
            };
            let elapsed = probe.sent.elapsed();
            let micros = |j: usize| {
                let at = updated.get(j).copied().unwrap_or_else(Instant::now);
                at.saturating_duration_since(probe.sent).as_micros().max(1) as u64
            };
            if !probe.own && moving_along(clients[i], player, probe.heading) {
                probe.own = true;
                if probe.counted {
                    self.own.saturating_record(micros(i));
                }
            }
            if self.measure_remote && !probe.remote {
                // The first observer to show it, by when its update finished.
                let first = probe
                    .observers
                    .iter()
                    .filter(|&&j| moving_along(clients[j], player, probe.heading))
                    .map(|&j| micros(j))
                    .min();
                if let Some(micros) = first {
                    probe.remote = true;
                    if probe.counted {
                        self.remote.saturating_record(micros);
                    }
                }
            }
            let remote_done = probe.remote || !self.measure_remote || probe.observers.is_empty();
            let done = probe.own && remote_done;
            if done || elapsed > PROBE_TIMEOUT {
                *slot = None;
            }
        }
    }
}

/// Whether `client` holds `player` with a velocity pointing along `heading`,
/// or along its reflection: an avatar at the map edge bounces off it, which
/// flips the signs of its velocity but not their magnitudes.
fn moving_along(client: &GameClient, player: NetId, heading: Vec2) -> bool {
    let Some(entity) = client.replica().entity(player) else {
        return false;
    };
    client
        .app()
        .world()
        .get::<Velocity>(entity)
        .is_some_and(|v| v.0.normalize_or_zero().abs().dot(heading.abs()) > 0.999)
}

//! Input latency as the bots see it.
//!
//! A bot that turns sends the new heading at once and starts a probe. The
//! probe resolves twice: when the bot's own replica shows its avatar moving the
//! new way (*own*), and when the first *other* client's replica does
//! (*remote*: input → confirmed on another client, the S4 figure).
//!
//! One process drives many bots in turn, so each confirmation is timed when
//! that bot's update finished, not when the harness got round to looking.
//! That still counts the time the confirming datagram sat in the bot's socket
//! while the harness updated the bots before it (≈ 125 µs each in S4, so
//! milliseconds for the last of 50): a real client runs alone on its machine
//! and reads its socket as the data lands. The remote figure is therefore
//! also taken *at arrival*: the kernel's receive time of the newest datagram
//! in the confirming update, plus that update's own duration (the client's
//! processing). Both are reported; S4's target reads the one at arrival.

use std::time::{Duration, Instant, SystemTime};

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
    /// A probe for `clients[me]`'s new `heading`, sent at `sent`. Its
    /// observers (the other clients holding `me`'s avatar) are looked up only
    /// when `measure_remote`: that is a lookup in every client's replica, per
    /// probe, and with a thousand bots it was a twentieth of their CPU.
    pub fn new(
        heading: Vec2,
        sent: Instant,
        counted: bool,
        me: usize,
        measure_remote: bool,
        clients: &[&GameClient],
    ) -> Self {
        let observers = match clients[me].player() {
            Some(player) if measure_remote => clients
                .iter()
                .enumerate()
                .filter(|(j, c)| *j != me && c.replica().entity(player).is_some())
                .map(|(j, _)| j)
                .collect(),
            _ => Vec::new(),
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

/// When a bot's last update finished, and when a client reading its own
/// socket would have finished it.
#[derive(Clone, Copy)]
pub(super) struct Seen {
    /// When the update finished.
    pub updated: Instant,
    /// How much earlier than `updated` a client reading its own socket would
    /// have finished the update: the kernel's arrival of the newest datagram
    /// it read plus the update's duration; `None` when it read none. Kept as
    /// a difference of wall-clock times (the kernel's clock) and subtracted
    /// from the harness's `Instant` figures, so that the figure at arrival is
    /// never later than the harness's own, however the two clocks round.
    pub early: Option<Duration>,
}

impl Seen {
    /// A bot's update that ran from `started` to `updated` (`updated_wall`
    /// by the wall clock) and whose newest datagram the kernel received at
    /// `arrival`. A datagram that landed during the update is timed at the
    /// update's end, so the figure at arrival is never later than the
    /// harness's own.
    pub fn new(
        started: Instant,
        (updated, updated_wall): (Instant, SystemTime),
        arrival: Option<SystemTime>,
    ) -> Self {
        let processing = updated.saturating_duration_since(started);
        Self {
            updated,
            early: arrival.map(|t| {
                updated_wall
                    .duration_since(t + processing)
                    .unwrap_or(Duration::ZERO)
            }),
        }
    }
}

/// Latency histograms, µs.
pub(super) struct Latency {
    pub own: Histogram<u64>,
    /// Input → another client's update that showed it.
    pub remote: Histogram<u64>,
    /// Input → the same, timed at arrival (see the module docs).
    pub remote_at_arrival: Histogram<u64>,
    /// Whether remote confirmation is looked for (costs a lookup per client per probe).
    pub measure_remote: bool,
}

impl Latency {
    pub fn new(measure_remote: bool) -> Self {
        let h = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Self {
            own: h(),
            remote: h(),
            remote_at_arrival: h(),
            measure_remote,
        }
    }

    /// Resolves what it can of every bot's probe; `probes[i]` belongs to
    /// `clients[i]`, whose last update is `seen[i]`.
    pub fn resolve(
        &mut self,
        clients: &[&GameClient],
        seen: &[Seen],
        probes: &mut [Option<Probe>],
    ) {
        for (i, slot) in probes.iter_mut().enumerate() {
            let Some(probe) = slot else { continue };
            let Some(player) = clients[i].player() else {
                continue;
            };
            let elapsed = probe.sent.elapsed();
            let micros = |j: usize| {
                let at = seen.get(j).map_or_else(Instant::now, |s| s.updated);
                at.saturating_duration_since(probe.sent).as_micros().max(1) as u64
            };
            // Without an arrival time (the update read nothing new, or no
            // timestamps here), the update's own finish stands.
            let micros_at_arrival = |j: usize| {
                let early = seen.get(j).and_then(|s| s.early).unwrap_or_default();
                micros(j).saturating_sub(early.as_micros() as u64).max(1)
            };
            if !probe.own && moving_along(clients[i], player, probe.heading) {
                probe.own = true;
                if probe.counted {
                    self.own.saturating_record(micros(i));
                }
            }
            if self.measure_remote && !probe.remote {
                // The first observer to show it, by when its update finished,
                // and by when a client of its own would have had it.
                let showing: Vec<usize> = probe
                    .observers
                    .iter()
                    .copied()
                    .filter(|&j| moving_along(clients[j], player, probe.heading))
                    .collect();
                let first = showing.iter().map(|&j| micros(j)).min();
                let first_at_arrival = showing.iter().map(|&j| micros_at_arrival(j)).min();
                if let (Some(micros), Some(at_arrival)) = (first, first_at_arrival) {
                    probe.remote = true;
                    if probe.counted {
                        self.remote.saturating_record(micros);
                        self.remote_at_arrival.saturating_record(at_arrival);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_timing_adds_the_update_and_never_passes_its_end() {
        let started = Instant::now();
        let updated = started + Duration::from_micros(300);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        // Landed 5 ms before the harness got to this bot: 5 ms earlier, less processing.
        let early = Seen::new(
            started,
            (updated, wall),
            Some(wall - Duration::from_millis(5)),
        );
        assert_eq!(
            early.early,
            Some(Duration::from_millis(5) - Duration::from_micros(300))
        );
        // Landed while the update ran: the update's end.
        let during = Seen::new(
            started,
            (updated, wall),
            Some(wall - Duration::from_micros(100)),
        );
        assert_eq!(during.early, Some(Duration::ZERO));
        // Nothing read: no arrival time.
        assert_eq!(Seen::new(started, (updated, wall), None).early, None);
    }
}

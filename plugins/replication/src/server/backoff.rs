//! Fewer change sets for a client that falls behind.
//!
//! A client that reads its change sets more slowly than they come (a starved
//! or overloaded device, a congested link) gets every set late: each one
//! waits in a queue in front of it, and each costs the server a build, an
//! encryption and a send, and the client a receive, a decryption and an
//! apply. One set every two or three ticks carries the same changes, merged
//! (an entity that moved every tick moves once), in fewer and smaller
//! packets, and the client catches up.
//!
//! The signal is delay, as in delay-based congestion control (LEDBAT, BBR):
//! how much later than its round trip a client's acks come. The round trip
//! is the least lag between a set and its ack seen over the last few
//! seconds; anything above it is queueing. So a client far away but keeping
//! up is never held back, however long its round trip, and a near one is as
//! soon as a queue builds.

use super::client_state::ClientState;
use crate::config::ReplicationConfig;

/// The most ticks between two change sets of a client that fell behind. The
/// position trail (`trail`) covers a baseline three ticks old for an entity
/// that moves every tick, so at one set every three ticks every move still
/// travels as a delta.
pub(crate) const MAX_SEND_INTERVAL: u64 = 3;

/// The most ticks between two change sets of a client while the host sheds
/// load (`ReplicationServer::set_min_send_interval`). Past the trail's
/// three ticks an entity moving every tick travels as an absolute position,
/// a few bytes more: a host that sheds is short of CPU, not of bandwidth,
/// and a tick that is shed entirely costs a third less than one shed to
/// every third tick (`serve_tick` under callgrind).
pub(crate) const MAX_SHED_INTERVAL: u64 = 6;

/// Ticks over which the least ack lag stands for the round trip: about ten
/// seconds at 30 Hz, as BBR keeps its least round trip. Long enough that a
/// queue lasting seconds does not become the new normal, short enough to
/// follow a client whose route changed.
const ROUND_TRIP_WINDOW: u64 = 300;

/// The least lag between a change set and its ack seen lately: the client's
/// round trip, in ticks, when nothing queues.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RoundTrip {
    /// The least lag in the current window, and in the one before it.
    current: Option<u64>,
    previous: Option<u64>,
    /// The tick the current window started.
    since: u64,
}

impl RoundTrip {
    /// The client acknowledged the set of tick `acked` (newer than any
    /// before) when the server was at tick `now`.
    pub fn sample(&mut self, now: u64, acked: u64) {
        if now.saturating_sub(self.since) >= ROUND_TRIP_WINDOW {
            self.previous = self.current.take();
            self.since = now;
        }
        let lag = now.saturating_sub(acked);
        self.current = Some(self.current.map_or(lag, |least| least.min(lag)));
    }

    /// The round trip in ticks; `None` before the first ack.
    pub fn ticks(&self) -> Option<u64> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl ClientState {
    /// How many ticks later than its round trip this client is to
    /// acknowledge the oldest set it has not acknowledged (nor anything sent
    /// after it), at `tick`: 0 while it keeps up.
    pub fn queued_ticks(&self, tick: u64) -> u64 {
        match (self.sent.front(), self.round_trip.ticks()) {
            (Some(&oldest), Some(round_trip)) => {
                tick.saturating_sub(oldest).saturating_sub(round_trip)
            }
            _ => 0,
        }
    }

    /// Every how many ticks this client gets a change set at `tick`: 1 while
    /// less than `backoff_after_ticks` queue in front of it
    /// ([`Self::queued_ticks`]), then 2, and [`MAX_SEND_INTERVAL`] from twice
    /// that (see [`ReplicationConfig::backoff_after_ticks`]).
    pub fn send_interval(&self, tick: u64, config: &ReplicationConfig) -> u64 {
        match u64::from(config.backoff_after_ticks) {
            0 => 1,
            after => (1 + self.queued_ticks(tick) / after).min(MAX_SEND_INTERVAL),
        }
    }

    /// Whether this client's change set of `tick` is held back: it gets one
    /// only on every `n`th tick, `n` being the larger of its own
    /// [`Self::send_interval`] (it fell behind) and `floor` (the host sheds
    /// load: `ReplicationServer::set_min_send_interval`), staggered so that
    /// such clients take turns. However `n` changes from tick to tick, no
    /// two sets are more than `n` ticks apart: the tick after the last set
    /// sent that the turns skip past is sent anyway. A held-back tick's
    /// changes go with the next set sent, which is built like any other.
    /// Never held back: a full state, and sets that carry a due checksum.
    ///
    /// Repairs (the chain is broken) and the sets that follow a full state
    /// until it is acknowledged take turns too. Each of those is a delta
    /// against an older tick, as large as everything that changed since, and
    /// the clients that get them are mostly the ones already behind: sent
    /// every tick, they made a client that fell two seconds behind get a
    /// near-full set every tick, fall further behind and need full states
    /// again and again, and the room that built them fall behind with it
    /// (S5 under load, `BENCHMARKS.md`). One of them that arrives heals the
    /// client as well a few ticks later.
    ///
    /// A client that has not acknowledged a full state for the whole history
    /// gets nothing at all: see [`Self::awaits_full_state`].
    pub fn held_back(&self, tick: u64, config: &ReplicationConfig, floor: u64) -> bool {
        if self.awaits_full_state(tick, config) {
            return true;
        }
        let interval = self
            .send_interval(tick, config)
            .max(floor.min(MAX_SHED_INTERVAL));
        // The newest set sent: the chain's tip, or the newest repair or
        // set after a full state not yet acknowledged.
        let Some(last) = self.sent.back().copied().max(self.tip) else {
            return false;
        };
        interval > 1
            && tick.saturating_sub(last) < interval
            && !self.needs_full
            && !self.checksum_due(tick, config.checksum_interval)
            && !(tick + u64::from(self.stagger)).is_multiple_of(interval)
    }

    /// Whether the client has left a full state unacknowledged for longer
    /// than the history (`history_ticks`) while the transport delivers full
    /// states reliably (no `full_state_resend_ticks`): it has stopped
    /// reading (a stalled process, a suspended device), and the full state
    /// still waits for it in its reliable channel. Anything built now could
    /// only be another full state, since the history no longer reaches the
    /// one in flight, and would queue behind it: a client that stalled for
    /// eight seconds used to get one every two, each read and applied in
    /// turn when it woke up. Nothing is sent until it acknowledges something
    /// (which resumes it as usual: a delta if the history still reaches
    /// that tick, else one full state), or asks for a full state itself.
    pub fn awaits_full_state(&self, tick: u64, config: &ReplicationConfig) -> bool {
        config.full_state_resend_ticks.is_none()
            && !self.needs_full
            && self
                .full_in_flight
                .is_some_and(|f| tick.saturating_sub(f) > u64::from(config.history_ticks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net_id::ClientId;
    use crate::server::View;

    #[test]
    fn the_round_trip_is_the_least_lag_of_the_last_two_windows() {
        let mut rt = RoundTrip::default();
        assert_eq!(rt.ticks(), None);
        rt.sample(10, 6);
        rt.sample(12, 10);
        rt.sample(20, 13);
        assert_eq!(rt.ticks(), Some(2));
        // A queue that lasts a window does not become the round trip...
        rt.sample(ROUND_TRIP_WINDOW + 50, ROUND_TRIP_WINDOW + 30);
        assert_eq!(rt.ticks(), Some(2));
        // ...but after two windows of it, it has: the route changed.
        rt.sample(2 * ROUND_TRIP_WINDOW + 60, 2 * ROUND_TRIP_WINDOW + 40);
        assert_eq!(rt.ticks(), Some(20));
    }

    fn behind_client(round_trip: u64) -> ClientState {
        let view = View::Radius {
            center: None,
            radius: 10.0,
        };
        let mut c = ClientState::new(ClientId(1), view, 0);
        c.needs_full = false;
        c.tip = Some(100);
        c.round_trip.sample(100 + round_trip, 100);
        c.sent.push_back(101);
        c
    }

    /// The ticks of `ticks` on which `c` gets a set, each one the chain's new tip.
    fn sent(
        c: &mut ClientState,
        ticks: std::ops::Range<u64>,
        config: &ReplicationConfig,
        floor: u64,
    ) -> Vec<u64> {
        let mut sent = Vec::new();
        for t in ticks {
            if !c.held_back(t, config, floor) {
                sent.push(t);
                c.sent.push_back(t);
                if c.tip.is_some() {
                    c.tip = Some(t);
                }
            }
        }
        sent
    }

    #[test]
    fn a_client_that_falls_behind_gets_fewer_sets() {
        let config = ReplicationConfig {
            backoff_after_ticks: 10,
            checksum_interval: 7,
            ..ReplicationConfig::default()
        };
        let mut c = behind_client(0);
        let interval = |c: &ClientState, tick| c.send_interval(tick, &config);
        assert_eq!(interval(&c, 110), 1);
        assert_eq!(interval(&c, 111), 2);
        assert_eq!(interval(&c, 120), 2);
        assert_eq!(interval(&c, 121), 3);
        assert_eq!(interval(&c, 10_000), MAX_SEND_INTERVAL);
        let sent = |c: &mut ClientState, ticks: std::ops::Range<u64>| sent(c, ticks, &config, 1);
        assert_eq!(sent(&mut c, 100..111), (100..111).collect::<Vec<_>>());
        // Every second tick, and every due checksum (multiples of 7).
        assert_eq!(sent(&mut c, 111..121), [112, 114, 116, 118, 119, 120]);
        assert_eq!(sent(&mut c, 121..131), [123, 126, 129]);
        // Repairs and the sets after a full state take turns like any other,
        // never more than the interval after the last set sent.
        c.tip = None;
        assert_eq!(sent(&mut c, 131..141), [132, 133, 135, 138, 140]);
        c.tip = Some(100);
        c.full_in_flight = Some(100);
        assert_eq!(sent(&mut c, 141..151), [141, 144, 147, 150]);
        c.full_in_flight = None;
        // Never held back: a full state.
        c.needs_full = true;
        assert_eq!(sent(&mut c, 151..155).len(), 4);
        c.needs_full = false;
        // Off, or everything sent acknowledged, however long ago: every tick.
        let off = ReplicationConfig {
            backoff_after_ticks: 0,
            ..config.clone()
        };
        assert!((111..131).all(|t| !c.held_back(t, &off, 1)));
        c.sent.clear();
        assert!((111..131).all(|t| !c.held_back(t, &config, 1)));
    }

    #[test]
    fn a_full_state_unacknowledged_for_the_whole_history_holds_everything() {
        let config = ReplicationConfig {
            full_state_resend_ticks: None,
            backoff_after_ticks: 0,
            checksum_interval: 1,
            ..ReplicationConfig::default()
        };
        let history = u64::from(config.history_ticks);
        let mut c = behind_client(0);
        c.full_in_flight = Some(100);
        // Within the history the sets after it go (every tick: no backoff,
        // and a checksum is due on every tick).
        assert!((101..=100 + history).all(|t| !c.held_back(t, &config, 1)));
        // Past it, nothing, checksum or not, at any floor.
        assert!((101 + history..400).all(|t| c.held_back(t, &config, 1)));
        assert!(c.held_back(400, &config, 6));
        // A client asking for a full state gets one.
        c.needs_full = true;
        assert!(!c.held_back(400, &config, 1));
        c.needs_full = false;
        // Over a transport that resends full states, they are resent instead.
        let resending = ReplicationConfig {
            full_state_resend_ticks: Some(8),
            ..config.clone()
        };
        assert!(!c.held_back(400, &resending, 1));
        // Acknowledged, the client is served again.
        c.full_in_flight = None;
        assert!(!c.held_back(400, &config, 1));
    }

    #[test]
    fn a_long_round_trip_alone_holds_nothing_back() {
        let config = ReplicationConfig {
            backoff_after_ticks: 10,
            ..ReplicationConfig::default()
        };
        // Acks come 25 ticks after their sets, always: far away, keeping up.
        let c = behind_client(25);
        assert_eq!(c.send_interval(101 + 25, &config), 1);
        assert_eq!(c.send_interval(101 + 34, &config), 1);
        assert_eq!(c.send_interval(101 + 35, &config), 2);
    }

    #[test]
    fn a_floor_holds_back_prompt_clients_too_and_no_gap_outgrows_it() {
        let config = ReplicationConfig {
            backoff_after_ticks: 10,
            checksum_interval: 1_000,
            ..ReplicationConfig::default()
        };
        let mut c = behind_client(0);
        c.sent.clear();
        assert_eq!(sent(&mut c, 101..111, &config, 1).len(), 10);
        assert_eq!(
            sent(&mut c, 111..121, &config, 2),
            [112, 114, 116, 118, 120]
        );
        assert_eq!(sent(&mut c, 121..131, &config, 3), [123, 126, 129]);
        assert_eq!(sent(&mut c, 131..141, &config, 6), [132, 138]);
        // Beyond the most shedding allows, the floor is that most.
        assert_eq!(sent(&mut c, 141..161, &config, 9), [144, 150, 156]);
        // A floor that changes every tick: turns alone would skip 11 ticks here.
        let mut last = 160;
        for t in 161..600 {
            let floor = [2, 3, 6, 5, 4][t as usize % 5];
            if !c.held_back(t, &config, floor) {
                assert!(t - last <= MAX_SHED_INTERVAL, "{last} to {t}");
                last = t;
                c.tip = Some(t);
            }
        }
        assert!(600 - last <= MAX_SHED_INTERVAL);
    }
}

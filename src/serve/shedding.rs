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

use std::time::Duration;

use kasagi_replication::ReplicationServer;

/// Every how many ticks each client gets a change set when the room's tick
/// starts `late` on a grid of `slot`: every tick while the room is less than
/// a quarter of a slot late (a worker busy with another room's tick, a
/// preemption), and one tick more for every further quarter slot, up to
/// [`ReplicationServer::MAX_SHED_INTERVAL`]. A room skips a tick once it is
/// a whole slot late (`cadence`), so a room that reaches the cap is already
/// skipping: even a tick that is all shed costs about half of a whole one
/// (the collection, the simulation, the interest grid), and the cap keeps
/// the delay shedding adds to a fifth of a second at 30 Hz.
pub(crate) fn min_send_interval(late: Duration, slot: Duration) -> u64 {
    let quarters = late.as_nanos() * 4 / slot.as_nanos().max(1);
    u64::try_from(quarters)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
        .min(ReplicationServer::MAX_SHED_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_later_the_tick_the_fewer_the_sets() {
        let slot = Duration::from_micros(33_333);
        let interval = |ms| min_send_interval(Duration::from_millis(ms), slot);
        assert_eq!(interval(0), 1);
        assert_eq!(interval(8), 1);
        assert_eq!(interval(9), 2);
        assert_eq!(interval(16), 2);
        assert_eq!(interval(17), 3);
        assert_eq!(interval(25), 4);
        assert_eq!(interval(34), 5);
        assert_eq!(interval(42), 6);
        assert_eq!(interval(1_000_000), 6);
        assert_eq!(min_send_interval(Duration::MAX, slot), 6);
        assert_eq!(min_send_interval(Duration::ZERO, Duration::ZERO), 1);
    }
}

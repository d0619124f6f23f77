//! The player's held movement, repeated in the datagram that acknowledges
//! each new server tick.
//!
//! Inputs travel unreliably, so a client repeats the movement it holds: a
//! lost input is then replaced by the next one instead of being resent. The
//! repeat could run on a timer of its own, but then it leaves in a datagram
//! of its own too, beside the one that acknowledges the server's change set:
//! two datagrams per tick upstream, each one encrypted, sent, read and
//! decrypted. Repeating it when a new tick arrives puts both messages into
//! one datagram, and keeps the repeats in step with the server, which applies
//! at most one input per client per tick anyway.

use std::time::{Duration, Instant};

/// How often the held movement is repeated when no new server tick arrives
/// (a stalled or lossy server): often enough that a lost input is replaced
/// within a few ticks.
pub const HELD_INPUT_REPEAT: Duration = Duration::from_millis(100);

/// A movement held until the game changes it.
#[derive(Clone, Copy, Debug)]
pub(super) struct HeldInput {
    movement: [f32; 2],
    last_sent: Instant,
}

impl HeldInput {
    /// Holds `movement`, just sent.
    pub fn new(movement: [f32; 2], sent: Instant) -> Self {
        Self {
            movement,
            last_sent: sent,
        }
    }

    /// The movement to repeat now, if it is due: with every new server tick
    /// (`tick_arrived`, its ack leaves in the same datagram), or after
    /// [`HELD_INPUT_REPEAT`] without one.
    pub fn due(&mut self, tick_arrived: bool, now: Instant) -> Option<[f32; 2]> {
        let due =
            tick_arrived || now.saturating_duration_since(self.last_sent) >= HELD_INPUT_REPEAT;
        if due {
            self.last_sent = now;
        }
        due.then_some(self.movement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_with_each_tick_and_on_a_timer_without_ticks() {
        let t0 = Instant::now();
        let mut held = HeldInput::new([1.0, 0.0], t0);
        assert_eq!(held.due(false, t0 + Duration::from_millis(10)), None);
        assert_eq!(
            held.due(true, t0 + Duration::from_millis(33)),
            Some([1.0, 0.0])
        );
        // The tick's repeat restarts the timer.
        assert_eq!(held.due(false, t0 + Duration::from_millis(120)), None);
        assert_eq!(
            held.due(false, t0 + Duration::from_millis(133)),
            Some([1.0, 0.0])
        );
        assert_eq!(held.due(false, t0 + Duration::from_millis(134)), None);
    }
}

//! Client-side prediction of the own player, reconciled with the server.
//!
//! Every input is applied locally at once (prediction) and kept until the
//! server says it applied it (`InputAck`). The predicted position is always
//! recomputed as *the authoritative replicated position* plus a replay of the
//! inputs the server has not applied yet (reconciliation): a server correction
//! therefore shows up immediately, and no error accumulates.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Inputs unacknowledged for longer than this are taken as lost (the server
/// never applied them) and stop being replayed.
pub const MAX_UNACKED_AGE: Duration = Duration::from_millis(500);

/// How the game moves its player: the only game knowledge prediction needs.
pub type StepFn = fn(position: [f32; 2], movement: [f32; 2], dt: f32) -> [f32; 2];

/// Inputs not yet applied by the server, and how to replay them.
pub struct Predictor {
    step: StepFn,
    /// (sequence, movement, when it started to apply)
    unacked: VecDeque<(u32, [f32; 2], Instant)>,
    /// The movement the server last confirmed, still in force until the next input.
    confirmed: Option<([f32; 2], Instant)>,
}

impl Predictor {
    /// A predictor moving the player with `step`.
    pub fn new(step: StepFn) -> Self {
        Self {
            step,
            unacked: VecDeque::new(),
            confirmed: None,
        }
    }

    /// Records an input the moment it is sent.
    pub fn sent(&mut self, sequence: u32, movement: [f32; 2], at: Instant) {
        self.unacked.push_back((sequence, movement, at));
    }

    /// Drops inputs the server has applied.
    pub fn acked(&mut self, sequence: u32) {
        while let Some(&(seq, movement, at)) = self.unacked.front() {
            // Sequence numbers wrap; compare by distance.
            if seq.wrapping_sub(sequence) as i32 > 0 {
                break;
            }
            self.confirmed = Some((movement, at));
            self.unacked.pop_front();
        }
    }

    /// Forgets inputs older than [`MAX_UNACKED_AGE`]: lost on the way, or dropped by the server.
    pub fn prune(&mut self, now: Instant) {
        while self
            .unacked
            .front()
            .is_some_and(|(_, _, at)| now.saturating_duration_since(*at) > MAX_UNACKED_AGE)
        {
            self.unacked.pop_front();
        }
    }

    /// Inputs waiting for the server.
    pub fn pending(&self) -> usize {
        self.unacked.len()
    }

    /// The authoritative `position` advanced by every unacknowledged input,
    /// each applied from when it was sent until the next one (or `now`).
    pub fn predict(&self, position: [f32; 2], now: Instant) -> [f32; 2] {
        let mut p = position;
        let mut inputs = self.unacked.iter().peekable();
        while let Some(&(_, movement, at)) = inputs.next() {
            let until = inputs.peek().map_or(now, |(_, _, next)| *next);
            let dt = until.saturating_duration_since(at).as_secs_f32();
            p = (self.step)(p, movement, dt);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn walk(p: [f32; 2], m: [f32; 2], dt: f32) -> [f32; 2] {
        [p[0] + m[0] * 10.0 * dt, p[1] + m[1] * 10.0 * dt]
    }

    #[test]
    fn unacked_inputs_are_replayed_on_top_of_the_server_position() {
        let t0 = Instant::now();
        let mut p = Predictor::new(walk);
        p.sent(1, [1.0, 0.0], t0);
        p.sent(2, [0.0, 1.0], t0 + Duration::from_secs(1));
        let now = t0 + Duration::from_secs(2);
        assert_eq!(p.predict([0.0, 0.0], now), [10.0, 10.0]);
        // The server applied input 1 and reports the position that includes it.
        p.acked(1);
        assert_eq!(p.pending(), 1);
        assert_eq!(p.predict([10.0, 0.0], now), [10.0, 10.0]);
        // A correction from the server moves the prediction with it.
        assert_eq!(p.predict([5.0, 0.0], now), [5.0, 10.0]);
        p.acked(2);
        assert_eq!(p.predict([10.0, 10.0], now), [10.0, 10.0]);
        // An input the server never acknowledges is given up after a while.
        p.sent(3, [1.0, 0.0], now);
        p.prune(now + MAX_UNACKED_AGE + Duration::from_millis(1));
        assert_eq!(p.pending(), 0);
    }
}

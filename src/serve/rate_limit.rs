//! Per-client rate limits: token buckets on messages and bytes.
//!
//! Excess messages are dropped and counted; a client that keeps exceeding its
//! limits is disconnected with an error instead of costing the server forever.

use std::time::{Duration, Instant};

/// Limits of one client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    /// Sustained messages per second.
    pub messages_per_sec: f64,
    /// Sustained bytes per second.
    pub bytes_per_sec: f64,
    /// Seconds of sustained rate a burst may use.
    pub burst_secs: f64,
    /// Dropped messages within one `window` that get a client disconnected.
    pub abuse_drops: u32,
    /// The window over which drops are counted.
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            // A 60 Hz client sends an input and an ack per frame: 120 msg/s.
            messages_per_sec: 240.0,
            bytes_per_sec: 64.0 * 1024.0,
            burst_secs: 2.0,
            abuse_drops: 1_000,
            window: Duration::from_secs(5),
        }
    }
}

/// What to do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within limits.
    Pass,
    /// Over the limit: drop it.
    Drop,
    /// Over the limit for too long: disconnect the client.
    Disconnect,
}

/// One client's buckets.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    messages: f64,
    bytes: f64,
    last: Instant,
    drops_in_window: u32,
    window_start: Instant,
    /// Messages dropped so far.
    pub dropped: u64,
}

impl RateLimiter {
    /// Full buckets at `now`.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        Self {
            messages: limits.messages_per_sec * limits.burst_secs,
            bytes: limits.bytes_per_sec * limits.burst_secs,
            limits,
            last: now,
            drops_in_window: 0,
            window_start: now,
            dropped: 0,
        }
    }

    /// Charges one message of `len` bytes at `now`.
    pub fn check(&mut self, len: usize, now: Instant) -> Verdict {
        let l = self.limits;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.messages =
            (self.messages + elapsed * l.messages_per_sec).min(l.messages_per_sec * l.burst_secs);
        self.bytes = (self.bytes + elapsed * l.bytes_per_sec).min(l.bytes_per_sec * l.burst_secs);
        if now.saturating_duration_since(self.window_start) >= l.window {
            self.window_start = now;
            self.drops_in_window = 0;
        }
        if self.messages >= 1.0 && self.bytes >= len as f64 {
            self.messages -= 1.0;
            self.bytes -= len as f64;
            return Verdict::Pass;
        }
        self.dropped += 1;
        self.drops_in_window += 1;
        if self.drops_in_window >= l.abuse_drops {
            Verdict::Disconnect
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_client_passes_and_a_flood_is_dropped_then_disconnected() {
        let limits = RateLimits {
            messages_per_sec: 100.0,
            bytes_per_sec: 10_000.0,
            burst_secs: 1.0,
            abuse_drops: 50,
            window: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        let mut steady = RateLimiter::new(limits, t0);
        for i in 0..1_000u64 {
            // 50 messages per second of 50 bytes: well within limits.
            assert_eq!(
                steady.check(50, t0 + Duration::from_millis(i * 20)),
                Verdict::Pass
            );
        }
        let mut flood = RateLimiter::new(limits, t0);
        let verdicts: Vec<Verdict> = (0..200).map(|_| flood.check(10, t0)).collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Pass).count(),
            100,
            "the burst passes"
        );
        assert_eq!(verdicts[100], Verdict::Drop);
        assert_eq!(verdicts[149], Verdict::Disconnect);
        assert!(flood.dropped >= 50);
        let mut big = RateLimiter::new(limits, t0);
        assert_eq!(big.check(9_000, t0), Verdict::Pass);
        assert_eq!(big.check(9_000, t0), Verdict::Drop, "bytes are limited too");
    }
}

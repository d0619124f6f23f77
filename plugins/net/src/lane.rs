//! The direct lane: stream messages in netcode payloads of their own, beside renet.
//!
//! renet acknowledges packets with ack packets of their own: every flush that
//! finds unconfirmed acks sends one, and the acks are only confirmed by the
//! other end's ack packets. A server that flushes each client once per tick
//! therefore sent two datagrams per tick where one would do (the change set,
//! and renet's ack of the client's last ack), and each client did the same
//! back: half of all datagrams, each one encrypted, sent, read and decrypted,
//! on both ends. The per-tick stream needs none of renet's acks. Its messages
//! are unreliable, replication acknowledges change sets with messages of its
//! own, and a lost change set is repaired by a later one, never resent.
//!
//! So the unreliable messages (server: `Changes` channel; client: `Stream`)
//! travel outside renet. They are packed, in order, into netcode payloads
//! that start with [`DIRECT`] (renet's packet types are 0 to 4, so the two
//! never mix), each message behind a 2-byte length ([`DirectBatch`]), and read
//! back on arrival ([`messages`]). A message too large for one payload goes
//! through renet's unreliable channel, which slices it. renet keeps the
//! reliable `Control` channel, and flushes only when it has work
//! ([`AckDuty`]).
//!
//! Delivery on the lane is what it was on renet's unreliable channel: each
//! payload arrives once, or not at all, in any order (netcode drops
//! duplicates and replays), and the messages of one payload arrive together.

use std::time::{Duration, Instant};

use renetcode::NETCODE_MAX_PAYLOAD_BYTES;
use thiserror::Error;

use crate::channels::IDLE_FLUSH_INTERVAL;

/// The first byte of a direct payload. renet's packets start with their
/// type, 0 to 4.
pub const DIRECT: u8 = 0xD1;

/// Bytes of the length before each message.
const LEN_BYTES: usize = 2;

/// The largest message that fits a direct payload.
pub const MAX_DIRECT_MESSAGE: usize = NETCODE_MAX_PAYLOAD_BYTES - 1 - LEN_BYTES;

/// How often renet flushes a connection whose only work is acknowledging
/// the other end's acks (see [`AckDuty`]).
pub const ACK_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Messages packed into direct payloads for one peer, in the order given.
#[derive(Debug, Default)]
pub struct DirectBatch {
    payloads: Vec<Vec<u8>>,
}

impl DirectBatch {
    /// Appends `message` to the last payload, or to a new one when it does
    /// not fit. `false` (nothing added) when it is larger than
    /// [`MAX_DIRECT_MESSAGE`]: it must go through renet.
    pub fn push(&mut self, message: &[u8]) -> bool {
        if message.len() > MAX_DIRECT_MESSAGE {
            return false;
        }
        let need = LEN_BYTES + message.len();
        let fits = self
            .payloads
            .last()
            .is_some_and(|p| p.len() + need <= NETCODE_MAX_PAYLOAD_BYTES);
        if !fits {
            let mut payload = Vec::with_capacity(1 + need);
            payload.push(DIRECT);
            self.payloads.push(payload);
        }
        let payload = self.payloads.last_mut().expect("a payload with room");
        // Fits in 16 bits: at most `MAX_DIRECT_MESSAGE`.
        payload.extend_from_slice(&(message.len() as u16).to_le_bytes());
        payload.extend_from_slice(message);
        true
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// Takes the payloads, oldest first.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.payloads)
    }
}

/// Why a direct payload cannot be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LaneError {
    /// The payload does not start with [`DIRECT`].
    #[error("not a direct payload")]
    NotDirect,
    /// A length runs past the end of the payload.
    #[error("message of {claimed} bytes with {left} bytes left")]
    Truncated {
        /// The length the payload claimed.
        claimed: usize,
        /// The bytes that were left.
        left: usize,
    },
    /// Bytes after the last message too few to hold a length.
    #[error("{0} stray bytes after the last message")]
    Stray(usize),
}

/// Whether `payload` belongs to the direct lane rather than to renet.
pub fn is_direct(payload: &[u8]) -> bool {
    payload.first() == Some(&DIRECT)
}

/// The messages of a direct payload, in order. Stops after the first error.
pub fn messages(payload: &[u8]) -> Messages<'_> {
    match payload.split_first() {
        Some((&DIRECT, rest)) => Messages { rest, error: None },
        _ => Messages {
            rest: &[],
            error: Some(LaneError::NotDirect),
        },
    }
}

/// Iterator over a direct payload's messages (see [`messages`]).
#[derive(Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
    error: Option<LaneError>,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<&'a [u8], LaneError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            self.rest = &[];
            return Some(Err(error));
        }
        if self.rest.is_empty() {
            return None;
        }
        let Some((len, rest)) = self.rest.split_first_chunk::<LEN_BYTES>() else {
            let stray = self.rest.len();
            self.rest = &[];
            return Some(Err(LaneError::Stray(stray)));
        };
        let claimed = usize::from(u16::from_le_bytes(*len));
        if claimed > rest.len() {
            self.rest = &[];
            return Some(Err(LaneError::Truncated {
                claimed,
                left: rest.len(),
            }));
        }
        let (message, rest) = rest.split_at(claimed);
        self.rest = rest;
        Some(Ok(message))
    }
}

/// When one connection's renet must flush.
///
/// renet sends an ack packet on every flush while it holds acks the other
/// end has not confirmed, and confirms only by acking those ack packets, so
/// two ends that flush on a timer trade ack datagrams forever. A connection
/// therefore flushes:
/// * at once when messages were queued;
/// * every [`IDLE_FLUSH_INTERVAL`] while the other end sent reliable
///   packets since the last flush (they need their acks before renet's
///   150 ms resend) or this end has reliable messages unacknowledged (renet
///   resends them from a flush);
/// * every [`ACK_REFRESH_INTERVAL`] after any other renet packet, so that
///   both ends' lists of acks to send are confirmed and pruned.
#[derive(Debug, Clone, Copy)]
pub struct AckDuty {
    queued: bool,
    /// Reliable messages were queued and not yet seen acknowledged.
    unconfirmed: bool,
    owed: bool,
    heard: bool,
    last_flush: Instant,
}

impl AckDuty {
    /// A connection that has not flushed since `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            queued: false,
            unconfirmed: false,
            owed: false,
            heard: false,
            last_flush: now,
        }
    }

    /// Messages were handed to renet; `reliable` ones need acks.
    pub fn queue(&mut self, reliable: bool) {
        self.queued = true;
        self.unconfirmed |= reliable;
    }

    /// renet received `packet` from the other end.
    pub fn hear(&mut self, packet: &[u8]) {
        self.heard = true;
        // renet's packet types 0 (small reliable) and 2 (reliable slice).
        if matches!(packet.first(), Some(0 | 2)) {
            self.owed = true;
        }
    }

    /// Whether to flush at `now`; `in_flight` tells whether this end has
    /// reliable messages the other has not acknowledged. It is asked only
    /// after reliable messages were queued, until it says no: a server
    /// checks every client on every pass, thousands of times a second.
    pub fn due(&mut self, now: Instant, in_flight: impl FnOnce() -> bool) -> bool {
        if self.queued {
            return true;
        }
        let since = now.saturating_duration_since(self.last_flush);
        if since >= IDLE_FLUSH_INTERVAL {
            if self.owed {
                return true;
            }
            if self.unconfirmed {
                if in_flight() {
                    return true;
                }
                self.unconfirmed = false;
            }
        }
        self.heard && since >= ACK_REFRESH_INTERVAL
    }

    /// The connection flushed at `now`.
    pub fn flushed(&mut self, now: Instant) {
        *self = Self {
            unconfirmed: self.unconfirmed,
            ..Self::new(now)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_come_back_in_order_across_payloads() {
        let mut batch = DirectBatch::default();
        let sent: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        for m in &sent {
            assert!(batch.push(m));
        }
        let payloads = batch.take();
        assert!(batch.is_empty());
        assert!(payloads.len() > 1, "40 messages of 100+ bytes need several");
        let mut got = Vec::new();
        for p in &payloads {
            assert!(p.len() <= NETCODE_MAX_PAYLOAD_BYTES && is_direct(p));
            for m in messages(p) {
                got.push(m.unwrap().to_vec());
            }
        }
        assert_eq!(got, sent);
    }

    #[test]
    fn a_message_too_large_for_a_payload_is_refused() {
        let mut batch = DirectBatch::default();
        assert!(batch.push(&vec![7; MAX_DIRECT_MESSAGE]));
        assert!(!batch.push(&vec![7; MAX_DIRECT_MESSAGE + 1]));
        let payloads = batch.take();
        assert_eq!(payloads.len(), 1);
        assert_eq!(payloads[0].len(), NETCODE_MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert_eq!(
            messages(&[0, 1, 2]).collect::<Vec<_>>(),
            vec![Err(LaneError::NotDirect)]
        );
        assert_eq!(
            messages(&[DIRECT, 5, 0, 1]).collect::<Vec<_>>(),
            vec![Err(LaneError::Truncated {
                claimed: 5,
                left: 1
            })]
        );
        assert_eq!(
            messages(&[DIRECT, 1, 0, 9, 3]).collect::<Vec<_>>(),
            vec![Ok(&[9u8][..]), Err(LaneError::Stray(1))]
        );
    }

    #[test]
    fn renet_flushes_only_when_it_has_work() {
        let t0 = Instant::now();
        let mut duty = AckDuty::new(t0);
        let later = |d: Duration| t0 + d;
        let (busy, quiet) = (|| true, || false);
        assert!(!duty.due(later(Duration::from_secs(10)), quiet), "idle");
        assert!(
            !duty.due(later(IDLE_FLUSH_INTERVAL), || unreachable!()),
            "nothing reliable was queued: nothing to ask"
        );
        duty.queue(true);
        duty.flushed(t0);
        assert!(duty.due(later(IDLE_FLUSH_INTERVAL), busy), "resends");
        assert!(!duty.due(t0, busy), "resends wait for the interval");
        assert!(
            !duty.due(later(IDLE_FLUSH_INTERVAL), quiet),
            "all acknowledged"
        );
        assert!(
            !duty.due(later(IDLE_FLUSH_INTERVAL), || unreachable!()),
            "and not asked again"
        );
        duty.hear(&[4, 0]); // an ack packet
        assert!(!duty.due(later(IDLE_FLUSH_INTERVAL), quiet));
        assert!(duty.due(later(ACK_REFRESH_INTERVAL), quiet), "prunes acks");
        duty.hear(&[0, 0]); // a reliable packet
        assert!(!duty.due(t0, quiet));
        assert!(duty.due(later(IDLE_FLUSH_INTERVAL), quiet), "owes its ack");
        duty.flushed(later(IDLE_FLUSH_INTERVAL));
        assert!(!duty.due(later(Duration::from_secs(5)), quiet));
        duty.queue(false);
        assert!(duty.due(t0, quiet), "messages go at once");
    }

    proptest! {
        /// Any bytes: reading never panics and never yields more than was there.
        #[test]
        fn reading_arbitrary_payloads_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let total: usize = messages(&bytes).filter_map(Result::ok).map(<[u8]>::len).sum();
            prop_assert!(total <= bytes.len());
        }
    }
}

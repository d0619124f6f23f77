//! Kasagi persistence: the store contract every backend honours, and the
//! embedded backend used when no Redis is configured.
//!
//! The contract follows the Redis key schema of the design brief (braces are
//! literal cluster hash tags, so every key of a world shares a slot):
//!
//! | key | content |
//! |---|---|
//! | `snapshot:{<world>}:<tick>` | the tick's snapshot, expiring after the snapshot TTL |
//! | `full_state:{<world>}` | `data`, `tick`, `seq`, `ts`: the full world state, rewritten every archive interval |
//! | `latest_tick:{<world>}` | the latest persisted tick |
//! | `room:{<world>}:ops` | one entry per tick's change set, capped at about `MAXLEN` entries |
//!
//! Backends store opaque bytes; what the bytes are (encoded
//! `kasagi_replication` snapshots and change sets) is the writer's business.
//! Status: the contract and the embedded backend exist; the Redis backend, the
//! background writer and recovery are still to come.

#![warn(missing_docs)]

mod embedded;
mod keys;

pub use embedded::EmbeddedStore;
pub use keys::{channel_key, full_state_key, latest_tick_key, ops_key, snapshot_key};

use thiserror::Error;

/// Everything persisted for one tick, written in one round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickWrite {
    /// The world (room) name.
    pub world: String,
    /// The tick.
    pub tick: u64,
    /// The tick's snapshot (`snapshot:{world}:tick`).
    pub snapshot: Vec<u8>,
    /// The tick's change set, appended to `room:{world}:ops`.
    pub change_set: Vec<u8>,
    /// Every archive interval: the full state to rewrite `full_state:{world}` with.
    pub full_state: Option<FullState>,
}

/// The `full_state:{world}` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullState {
    /// The encoded full world state.
    pub data: Vec<u8>,
    /// The tick it is the state of.
    pub tick: u64,
    /// A counter of full-state writes.
    pub seq: u64,
    /// Wall-clock time of the write, Unix milliseconds.
    pub ts: u64,
}

/// Retention settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Seconds a snapshot key lives (`EX`).
    pub snapshot_ttl_secs: u64,
    /// About how many ops entries are kept per world (`MAXLEN ~`).
    pub ops_max_len: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            snapshot_ttl_secs: 600,
            ops_max_len: 10_000,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption, connection).
    #[error("store backend: {0}")]
    Backend(String),
    /// Stored bytes are not what the store wrote.
    #[error("corrupt record at {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// The persistence contract. Every backend passes the same conformance tests.
pub trait SnapshotStore: Send {
    /// Persists one tick: snapshot (with TTL), ops entry, `latest_tick`, and the
    /// full state when present. Atomic for the embedded backend.
    fn write(&mut self, tick: &TickWrite, now_ms: u64) -> Result<(), StoreError>;

    /// The latest persisted tick of `world`.
    fn latest_tick(&mut self, world: &str) -> Result<Option<u64>, StoreError>;

    /// The last full state of `world`.
    fn full_state(&mut self, world: &str) -> Result<Option<FullState>, StoreError>;

    /// The change sets of ticks after `after`, oldest first (what recovery replays).
    fn ops_after(&mut self, world: &str, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// The unexpired snapshots of ticks `from..=to`, oldest first.
    fn snapshots(
        &mut self,
        world: &str,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Remaining lifetime of a snapshot key in seconds, `None` if absent or expired.
    fn snapshot_ttl(
        &mut self,
        world: &str,
        tick: u64,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError>;
}

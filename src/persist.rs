//! Persistence: every tick of every room goes to a [`SnapshotStore`] (Redis or
//! the embedded file store), off the tick thread, and a restarted room comes
//! back exactly where it was.
//!
//! - [`sink`]: the Persist-stage system that hands each tick to the writer
//!   without ever blocking.
//! - [`PersistService`] / [`PersistHandle`]: the writer as rooms see it; the
//!   background thread behind it owns the store, coalesces and retries.
//! - [`records`]: what the stored bytes are.
//! - [`recovery`]: whole state + replayed ops → a live room again.
//!
//! A room is persisted as its inputs, not only its outputs: each ops entry
//! holds the [`SimInput`](crate::sim::input::SimInput)s applied before each
//! tick together with the replicated change set of the tick. Because the
//! simulation is deterministic, replaying inputs from the last whole state
//! re-creates server-only state too (needs, cooldowns, generators) at the cost
//! of a few bytes per tick, and the change sets let recovery prove that the
//! replay matched the original, tick by tick.

pub mod records;
pub mod recovery;
mod service;
pub mod sink;
mod stats;
mod writer;

mod job;

pub use kasagi_store::{
    EmbeddedStore, FullState, OpsEntry, Retention, SnapshotStore, StoreError, open_store,
};
pub use recovery::{Recovery, RecoveryError, recover};
pub use service::{HistoryReply, PersistHandle, PersistService};
pub use sink::{PersistPlugin, PersistSink, Start, archive_now, attach, detach, try_archive};
pub use stats::{PersistSnapshot, PersistStats};

use std::time::Duration;

/// Persistence settings (`[persist]` in `kasagi.toml`).
#[derive(Clone, Debug)]
pub struct PersistConfig {
    /// Every how many ticks a room's whole state is archived (`full_state`).
    pub archive_interval: u64,
    /// How many jobs the writer's queue holds before rooms coalesce ticks.
    pub queue_capacity: usize,
    /// Approximate bytes the writer keeps while the store is unreachable;
    /// past it, ticks are dropped and a whole state is written on recovery.
    pub backlog_limit_bytes: usize,
    /// How long shutdown waits for the store to take the last writes.
    pub shutdown_timeout: Duration,
    /// Components left out of the world-visible cast of snapshots.
    pub private_components: Vec<String>,
}

impl Default for PersistConfig {
    fn default() -> Self {
        Self {
            archive_interval: 100,
            queue_capacity: 64,
            backlog_limit_bytes: 64 << 20,
            shutdown_timeout: Duration::from_secs(5),
            private_components: Vec::new(),
        }
    }
}

/// What the store holds for one room: what recovery starts from.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The last whole state.
    pub full_state: FullState,
    /// The ops entries after it, oldest first.
    pub ops: Vec<OpsEntry>,
    /// The latest persisted tick.
    pub latest_tick: u64,
}

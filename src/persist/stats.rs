//! Counters of the persistence writer, readable from any thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::job::TickJob;

/// Live counters, updated by the writer and the rooms.
#[derive(Debug, Default)]
pub struct PersistStats {
    received_ticks: AtomicU64,
    persisted_ticks: AtomicU64,
    writes: AtomicU64,
    full_states: AtomicU64,
    coalesced_ticks: AtomicU64,
    failed_writes: AtomicU64,
    dropped_ticks: AtomicU64,
    recovered_writes: AtomicU64,
    last_tick: AtomicU64,
    backlog_bytes: AtomicU64,
    write_micros: AtomicU64,
    store_down: AtomicBool,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PersistSnapshot {
    /// Ticks handed to the writer.
    pub received_ticks: u64,
    /// Ticks whose changes are in the store.
    pub persisted_ticks: u64,
    /// Store round trips that succeeded.
    pub writes: u64,
    /// Whole states written.
    pub full_states: u64,
    /// Ticks that were written as part of another tick's write.
    pub coalesced_ticks: u64,
    /// Store round trips that failed (and were retried).
    pub failed_writes: u64,
    /// Ticks dropped past the memory bound (each gap is closed by a whole state).
    pub dropped_ticks: u64,
    /// Successful writes right after failures (the store came back).
    pub recovered_writes: u64,
    /// The newest tick written, of any room.
    pub last_tick: u64,
    /// Approximate bytes waiting to be written.
    pub backlog_bytes: u64,
    /// Total time spent in successful store writes, in microseconds.
    pub write_micros: u64,
    /// Whether the last write failed.
    pub store_down: bool,
}

impl PersistStats {
    pub(crate) fn received(&self, ticks: u64) {
        self.received_ticks.fetch_add(ticks, Ordering::Relaxed);
    }

    pub(crate) fn written(
        &self,
        job: &TickJob,
        full_state: bool,
        took: Duration,
        after_failure: bool,
    ) {
        let ticks = if job.has_ops() { job.ticks() } else { 0 };
        self.persisted_ticks.fetch_add(ticks, Ordering::Relaxed);
        self.coalesced_ticks
            .fetch_add(ticks.saturating_sub(1), Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.full_states
            .fetch_add(u64::from(full_state), Ordering::Relaxed);
        self.recovered_writes
            .fetch_add(u64::from(after_failure), Ordering::Relaxed);
        self.last_tick.fetch_max(job.tick, Ordering::Relaxed);
        self.write_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.store_down.store(false, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed_writes.fetch_add(1, Ordering::Relaxed);
        self.store_down.store(true, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, ticks: u64) {
        self.dropped_ticks.fetch_add(ticks, Ordering::Relaxed);
    }

    pub(crate) fn set_backlog_bytes(&self, bytes: u64) {
        self.backlog_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> PersistSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PersistSnapshot {
            received_ticks: get(&self.received_ticks),
            persisted_ticks: get(&self.persisted_ticks),
            writes: get(&self.writes),
            full_states: get(&self.full_states),
            coalesced_ticks: get(&self.coalesced_ticks),
            failed_writes: get(&self.failed_writes),
            dropped_ticks: get(&self.dropped_ticks),
            recovered_writes: get(&self.recovered_writes),
            last_tick: get(&self.last_tick),
            backlog_bytes: get(&self.backlog_bytes),
            write_micros: get(&self.write_micros),
            store_down: self.store_down.load(Ordering::Relaxed),
        }
    }
}

//! The background writer: one thread per server owns the store and turns
//! room jobs into store writes, so that the tick never waits on I/O.
//!
//! Delivery semantics:
//! - Writes of one room happen in tick order, each covering the ticks right
//!   after the previous one: persisted ticks have no gaps, except where the
//!   writer dropped ticks past its memory bound; such a gap is always closed
//!   by a whole state written before any later ops.
//! - Whatever is queued when a write is due is coalesced into that write
//!   (change sets compose), so a slow store means fewer, larger writes.
//! - A failed write is retried with exponential backoff (50 ms to 2 s) while
//!   new ticks keep coalescing into it, up to the memory bound.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use kasagi_replication::FullChangeSet;
use kasagi_store::{FullState, OpsEntry, SnapshotStore, StoreError, TickWrite};

use super::HistoryReply;
use super::job::TickJob;
use super::records::{self, OpsRecordRef, SnapshotRecord, SnapshotRecordRef, StateRecordRef};
use super::stats::PersistStats;
use super::{Loaded, PersistConfig};

/// How far past a history request's last tick the writer looks for a
/// coalesced change set that covers it (see `Writer::history`): three
/// seconds at 30 Hz. Coalescing runs longer only while the writer is that
/// far behind, and such a set's ticks up to the range's end are then
/// missing from the answer.
const HISTORY_LOOKAHEAD: u64 = 90;

/// A request to the writer thread.
pub(crate) enum Job {
    /// Some ticks of a room.
    Tick(TickJob),
    /// A room starts: the flag it watches for "send me a whole state".
    Open {
        world: String,
        wants_state: Arc<AtomicBool>,
    },
    /// Read what recovery needs.
    Load {
        world: String,
        reply: Sender<Result<Option<Loaded>, StoreError>>,
    },
    /// Read persisted snapshots for a client (see [`PersistHandle::history`]).
    History {
        world: String,
        from: u64,
        to: u64,
        reply: HistoryReply,
    },
    /// Write what is pending (for at most the shutdown timeout) and stop.
    Shutdown,
    /// Answer once everything queued before is written, or `deadline` passed.
    Flush {
        deadline: Instant,
        reply: Sender<bool>,
    },
}

pub(super) struct Writer {
    store: Box<dyn SnapshotStore>,
    receiver: Receiver<Job>,
    stats: Arc<PersistStats>,
    config: PersistConfig,
    /// Per room, everything received and not yet written, folded into one job.
    pending: BTreeMap<String, TickJob>,
    wants_state: HashMap<String, Arc<AtomicBool>>,
    /// Per room, the last full-state sequence number written.
    seq: HashMap<String, u64>,
    backoff: Option<Duration>,
    retry_at: Option<Instant>,
    /// Per room, the newest tick the store acknowledged.
    written: HashMap<String, u64>,
    /// Rooms to check after a failure: a store that comes back may have lost
    /// data (a restarted Redis without persistence comes back empty).
    check: HashSet<String>,
}

impl Writer {
    pub(super) fn new(
        store: Box<dyn SnapshotStore>,
        receiver: Receiver<Job>,
        stats: Arc<PersistStats>,
        config: PersistConfig,
    ) -> Self {
        Self {
            store,
            receiver,
            stats,
            config,
            pending: BTreeMap::new(),
            wants_state: HashMap::new(),
            seq: HashMap::new(),
            backoff: None,
            retry_at: None,
            written: HashMap::new(),
            check: HashSet::new(),
        }
    }

    pub(super) fn run(mut self) {
        let mut flushes: Vec<(Instant, Sender<bool>)> = Vec::new();
        loop {
            let timeout = self.retry_at.map_or(Duration::from_millis(250), |at| {
                at.saturating_duration_since(Instant::now())
            });
            let mut closed = false;
            match self.receiver.recv_timeout(timeout) {
                Ok(job) => {
                    closed |= self.accept(job, &mut flushes);
                    // Everything already queued joins this round of writes.
                    while let Ok(job) = self.receiver.try_recv() {
                        closed |= self.accept(job, &mut flushes);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => closed = true,
            }
            if self.retry_at.is_none_or(|at| at <= Instant::now()) {
                self.write_pending();
            }
            let done = self
                .pending
                .values()
                .all(|j| !j.has_ops() && j.state.is_none());
            flushes.retain(|(deadline, reply)| {
                if done || *deadline <= Instant::now() {
                    let _ = reply.send(done);
                    false
                } else {
                    true
                }
            });
            if closed {
                self.drain_on_close();
                return;
            }
        }
    }

    /// Takes one request; `true` when it asks the writer to stop.
    fn accept(&mut self, job: Job, flushes: &mut Vec<(Instant, Sender<bool>)>) -> bool {
        match job {
            Job::Shutdown => return true,
            Job::Tick(job) => self.enqueue(job),
            Job::Open { world, wants_state } => {
                self.wants_state.insert(world, wants_state);
            }
            Job::Load { world, reply } => {
                let _ = reply.send(self.load(&world));
            }
            Job::History {
                world,
                from,
                to,
                reply,
            } => reply(self.history(&world, from, to)),
            Job::Flush { deadline, reply } => {
                // Try now rather than waiting out a backoff.
                self.retry_at = None;
                flushes.push((deadline, reply));
            }
        }
        false
    }

    fn enqueue(&mut self, job: TickJob) {
        self.stats.received(job.ticks());
        match self.pending.get_mut(&job.world) {
            Some(pending) => pending.absorb(job),
            None => {
                self.pending.insert(job.world.clone(), job);
            }
        }
        let bytes: usize = self.pending.values().map(TickJob::approx_bytes).sum();
        self.stats.set_backlog_bytes(bytes as u64);
        if bytes > self.config.backlog_limit_bytes {
            // Past the bound: keep nothing but the promise of a whole state.
            for (world, job) in &mut self.pending {
                let dropped = job.drop_ticks();
                if dropped > 0 {
                    tracing::warn!(
                        world,
                        dropped,
                        "persistence backlog over its bound: ticks dropped, a whole state will be written instead"
                    );
                    self.stats.dropped(dropped);
                }
                if let Some(flag) = self.wants_state.get(world) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            self.stats.set_backlog_bytes(0);
        }
    }

    fn load(&mut self, world: &str) -> Result<Option<Loaded>, StoreError> {
        let Some(full_state) = self.store.full_state(world)? else {
            return Ok(None);
        };
        self.seq.insert(world.to_string(), full_state.seq);
        let ops = self.store.ops_after(world, full_state.tick)?;
        let latest_tick = self.store.latest_tick(world)?.unwrap_or(full_state.tick);
        Ok(Some(Loaded {
            full_state,
            ops,
            latest_tick,
        }))
    }

    /// The persisted change sets covering ticks `from..=to`, oldest first.
    ///
    /// Ticks the writer coalesced are stored as one change set under the
    /// last of them, so one that covers `to` but ends after it lies outside
    /// the keys `from..=to`: without it the answer would silently lack the
    /// range's last ticks. When `to` is not the last tick found, the first
    /// change set stored within [`HISTORY_LOOKAHEAD`] ticks after it is
    /// added if it starts at or before `to` (its `tick` is then beyond `to`).
    fn history(
        &mut self,
        world: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, u64, FullChangeSet)>, StoreError> {
        let now = unix_ms();
        let decode = |(tick, bytes): (u64, Vec<u8>)| {
            let record: SnapshotRecord =
                records::decode(&bytes).map_err(|e| StoreError::Corrupt {
                    key: kasagi_store::snapshot_key(world, tick),
                    reason: e.to_string(),
                })?;
            Ok((
                tick,
                record.from,
                record.visible(&self.config.private_components),
            ))
        };
        let found = self.store.snapshots(world, from, to, now)?;
        let last = found.last().map(|(tick, _)| *tick);
        let mut history = found
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<_>, StoreError>>()?;
        if last.is_none_or(|tick| tick < to) {
            let ahead = to.saturating_add(HISTORY_LOOKAHEAD);
            let next = self
                .store
                .snapshots(world, to.saturating_add(1), ahead, now)?;
            if let Some(next) = next.into_iter().next().map(decode).transpose()?
                && next.1 <= to
            {
                history.push(next);
            }
        }
        Ok(history)
    }

    /// Writes every room's pending job; stops at the first failure.
    fn write_pending(&mut self) {
        let worlds: Vec<String> = self.pending.keys().cloned().collect();
        for world in worlds {
            let Some(job) = self.pending.get(&world) else {
                continue;
            };
            if !job.has_ops() && job.state.is_none() {
                // Nothing to write yet (a gap waiting for its whole state).
                continue;
            }
            if self.check.contains(&world) {
                match self.store.latest_tick(&world) {
                    Ok(latest) if latest == self.written.get(&world).copied() => {
                        self.check.remove(&world);
                    }
                    Ok(latest) => {
                        tracing::warn!(
                            world,
                            ?latest,
                            "the store lost this room's recent writes; rewriting a whole state"
                        );
                        self.check.remove(&world);
                        self.lost(&world);
                        continue;
                    }
                    Err(e) => {
                        self.fail(&e);
                        return;
                    }
                }
            }
            let Some(job) = self.pending.get_mut(&world) else {
                continue;
            };
            job.compact();
            let write = self.encode(&self.pending[&world]);
            let now_ms = unix_ms();
            let started = Instant::now();
            match self.store.write(&write, now_ms) {
                Ok(()) => {
                    let job = self.pending.remove(&world).expect("present");
                    self.stats.written(
                        &job,
                        write.full_state.is_some(),
                        started.elapsed(),
                        self.backoff.is_some(),
                    );
                    if let Some(full) = &write.full_state {
                        self.seq.insert(world.clone(), full.seq);
                    }
                    self.written.insert(world, write.tick);
                    self.backoff = None;
                    self.retry_at = None;
                }
                Err(e) => {
                    self.fail(&e);
                    return;
                }
            }
        }
        self.stats.set_backlog_bytes(0);
    }

    /// A write failed: back off, and distrust the store until checked.
    fn fail(&mut self, e: &StoreError) {
        let backoff = self.backoff.map_or(Duration::from_millis(50), |b| {
            (b * 2).min(Duration::from_secs(2))
        });
        if self.backoff.is_none() {
            tracing::warn!("persistence write failed, retrying with backoff: {e}");
        }
        self.stats.failed();
        self.check.extend(self.written.keys().cloned());
        self.backoff = Some(backoff);
        self.retry_at = Some(Instant::now() + backoff);
    }

    /// The store no longer has what was written for `world`: what is pending
    /// cannot be appended to it. Unless it carries a whole state, drop it and
    /// ask the room for one; either way the next write starts a new lineage.
    fn lost(&mut self, world: &str) {
        self.written.remove(world);
        let Some(job) = self.pending.get_mut(world) else {
            return;
        };
        if job.state.is_some() {
            job.reset = true;
            return;
        }
        let dropped = job.drop_ticks();
        self.stats.dropped(dropped);
        if let Some(flag) = self.wants_state.get(world) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    fn encode(&self, job: &TickJob) -> TickWrite {
        let (ops, snapshot) = match job.composed().filter(|_| job.has_ops()) {
            Some(changes) => {
                let ops = OpsEntry {
                    from: job.from,
                    tick: job.tick,
                    data: records::encode(&OpsRecordRef {
                        inputs: &job.inputs,
                        changes,
                    }),
                };
                let snapshot = records::encode(&SnapshotRecordRef {
                    from: job.from,
                    full: changes,
                });
                (Some(ops), Some(snapshot))
            }
            None => (None, None),
        };
        let full_state = job.state.as_ref().map(|archive| FullState {
            tick: archive.state.tick,
            seq: self.seq.get(&job.world).map_or(1, |s| s + 1),
            ts: unix_ms(),
            data: records::encode(&StateRecordRef {
                hash: archive.state.hash(),
                state: &archive.state,
                def: archive.def.as_ref(),
            }),
        });
        TickWrite {
            world: job.world.clone(),
            tick: job.tick.max(job.state.as_ref().map_or(0, |a| a.state.tick)),
            ops,
            snapshot,
            full_state,
            reset_ops: job.reset,
        }
    }

    /// The channel closed (server shutdown): keep trying for a bounded time.
    fn drain_on_close(&mut self) {
        let deadline = Instant::now() + self.config.shutdown_timeout;
        while !self.pending.is_empty() && Instant::now() < deadline {
            self.retry_at = None;
            self.write_pending();
            self.pending.retain(|_, j| j.has_ops() || j.state.is_some());
            if !self.pending.is_empty() {
                std::thread::sleep(self.backoff.unwrap_or(Duration::from_millis(50)));
            }
        }
        if !self.pending.is_empty() {
            let ticks: u64 = self.pending.values().map(TickJob::ticks).sum();
            tracing::error!(
                ticks,
                "shutting down with unpersisted ticks: the store is unreachable"
            );
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::{EmbeddedStore, Retention};

    /// Ticks `ticks` as one job, coalesced as the writer does while busy.
    fn coalesced(ticks: std::ops::RangeInclusive<u64>) -> TickJob {
        let mut jobs = ticks.map(|tick| {
            let changes = FullChangeSet {
                tick,
                ..FullChangeSet::default()
            };
            TickJob::tick("w", tick, Vec::new(), Arc::new(changes), None)
        });
        let mut job = jobs.next().expect("a tick");
        jobs.for_each(|next| job.absorb(next));
        job
    }

    #[test]
    fn a_history_range_that_ends_inside_a_coalesced_set_gets_that_set() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = EmbeddedStore::open(dir.path().join("history.redb"), Retention::default())
            .expect("the store opens");
        let (_jobs, receiver) = crossbeam_channel::unbounded();
        let mut writer = Writer::new(
            Box::new(store),
            receiver,
            Arc::default(),
            PersistConfig::default(),
        );
        for ticks in [1..=1, 2..=4, 5..=5] {
            writer.pending.insert("w".into(), coalesced(ticks));
            writer.write_pending();
        }
        let mut ranges = |from, to| -> Vec<(u64, u64)> {
            let history = writer.history("w", from, to).expect("the store answers");
            history
                .iter()
                .map(|(tick, from, _)| (*from, *tick))
                .collect()
        };
        assert_eq!(ranges(1, 3), [(1, 1), (2, 4)]);
        assert_eq!(ranges(1, 2), [(1, 1), (2, 4)]);
        assert_eq!(ranges(1, 4), [(1, 1), (2, 4)]);
        assert_eq!(ranges(1, 5), [(1, 1), (2, 4), (5, 5)]);
        // Past the newest tick there is nothing more to add.
        assert_eq!(ranges(5, 9), [(5, 5)]);
        assert_eq!(ranges(6, 9), []);
    }
}

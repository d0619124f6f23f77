//! The persistence service as rooms and the server see it: start the writer,
//! hand out handles, load, flush, read history. The thread itself is
//! [`super::writer`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use kasagi_replication::FullChangeSet;
use kasagi_store::{SnapshotStore, StoreError};

use super::stats::PersistStats;
use super::writer::{Job, Writer};
use super::{Loaded, PersistConfig};

/// The running writer. Dropping it stops the thread once everything queued
/// so far is written, or the shutdown timeout gave up on an unreachable store.
pub struct PersistService {
    sender: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<PersistStats>,
    config: PersistConfig,
}

impl PersistService {
    /// Starts the writer thread over `store`.
    pub fn start(store: Box<dyn SnapshotStore>, config: PersistConfig) -> Self {
        let (sender, receiver) = bounded(config.queue_capacity.max(1));
        let stats = Arc::new(PersistStats::default());
        let writer = Writer::new(store, receiver, stats.clone(), config.clone());
        let thread = std::thread::Builder::new()
            .name("kasagi-persist".into())
            .spawn(move || writer.run())
            .expect("spawn the persistence thread");
        Self {
            sender: Some(sender),
            thread: Some(thread),
            stats,
            config,
        }
    }

    /// A handle rooms use to talk to the writer.
    pub fn handle(&self) -> PersistHandle {
        PersistHandle {
            sender: self.sender.clone().expect("running"),
            stats: self.stats.clone(),
            config: self.config.clone(),
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<PersistStats> {
        &self.stats
    }
}

impl Drop for PersistService {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Job::Shutdown);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Receives the world-visible casts of the asked ticks: `(tick, from, cast)`.
pub type HistoryReply = Box<dyn FnOnce(Result<Vec<(u64, u64, FullChangeSet)>, StoreError>) + Send>;

/// A room's connection to the writer: cheap to clone, never blocks a tick.
#[derive(Clone)]
pub struct PersistHandle {
    pub(crate) sender: Sender<Job>,
    pub(crate) stats: Arc<PersistStats>,
    pub(crate) config: PersistConfig,
}

impl std::fmt::Debug for PersistHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistHandle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PersistHandle {
    /// Reads the persisted state of `world` (blocks: call it when a room is
    /// created, not during ticks).
    pub fn load(&self, world: &str) -> Result<Option<Loaded>, StoreError> {
        let (reply, answer) = bounded(1);
        self.sender
            .send(Job::Load {
                world: world.to_string(),
                reply,
            })
            .map_err(|_| StoreError::Backend("the persistence writer has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Backend("the persistence writer has stopped".into()))?
    }

    /// Reads the persisted snapshots of ticks `from..=to` of `world` on the
    /// writer thread and hands their world-visible casts to `reply` there; the
    /// caller does not wait. Returns `false` if the writer is gone or busy.
    pub fn history(&self, world: &str, from: u64, to: u64, reply: HistoryReply) -> bool {
        let job = Job::History {
            world: world.to_string(),
            from,
            to,
            reply,
        };
        self.sender.try_send(job).is_ok()
    }

    /// Waits until everything queued so far is written, at most `timeout`.
    /// Returns whether it all was.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (reply, answer) = bounded(1);
        let deadline = Instant::now() + timeout;
        let job = Job::Flush { deadline, reply };
        if self.sender.send_deadline(job, deadline).is_err() {
            return false;
        }
        answer.recv_deadline(deadline + Duration::from_millis(100)) == Ok(true)
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<PersistStats> {
        &self.stats
    }
}

//! A fixed set of worker threads that tick every room, earliest deadline first.
//!
//! A thread per room let twenty rooms on two cores preempt one another in
//! the middle of their ticks (a tick's wall time grew to several times its
//! CPU time) and, by the kernel's per-thread fairness, crowded out every
//! other thread on the machine: the network thread and processes beside the
//! server. The pool keeps as many rooms running as it has workers; a worker
//! takes the room whose tick is due first, runs its step to the end and puts
//! it back under its next deadline. A room whose deadline has passed is taken
//! before any whose has not, so under overload rooms take turns rather than
//! one of them starving.
//!
//! A room stays with the worker that last stepped it (its *home*), whose
//! core's caches hold its world, unless that worker is busy when the room
//! comes due: then any idle worker takes it, and it moves home there.
//!
//! A step must not block: a room is opened (which may read the store) on a
//! thread of its own before it is handed to the pool.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

/// Something the pool runs again and again until it is done.
pub(crate) trait Task: Send + 'static {
    /// Runs one step; the deadline of the next, or `None` when finished.
    fn step(&mut self) -> Option<Instant>;
}

/// Worker threads and the rooms they take turns on.
pub(crate) struct RoomPool<T: Task> {
    shared: Arc<Shared<T>>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// Signalled when a task is queued, a worker takes one (its other rooms
    /// may now go to idle workers), one finishes, or the pool is closing.
    changed: Condvar,
}

struct Queue<T> {
    /// Waiting tasks, unordered: a pool holds tens of rooms, and a scan is
    /// cheaper than keeping an order that depends on who is busy.
    waiting: Vec<Waiting<T>>,
    /// Which workers are stepping a task right now.
    busy: Vec<bool>,
    /// Ties between equal deadlines go to the task queued first.
    seq: u64,
    /// Workers leave once nothing is waiting or running.
    closing: bool,
}

struct Waiting<T> {
    at: Instant,
    seq: u64,
    /// The worker that stepped it last; `None` before its first step.
    home: Option<usize>,
    task: T,
}

impl<T> Queue<T> {
    fn push(&mut self, task: T, at: Instant, home: Option<usize>) {
        let seq = self.seq;
        self.seq += 1;
        self.waiting.push(Waiting {
            at,
            seq,
            home,
            task,
        });
    }

    /// The earliest task `worker` may take: its own, new ones, and those
    /// whose home worker is busy. An idle home worker takes its own.
    fn earliest_for(&self, worker: usize) -> Option<usize> {
        self.waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| w.home.is_none_or(|h| h == worker || self.busy[h]))
            .min_by_key(|(_, w)| (w.at, w.seq))
            .map(|(i, _)| i)
    }
}

impl<T: Task> RoomPool<T> {
    /// Starts `threads` workers (at least one), named `rooms-0`, `rooms-1`, ….
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                busy: vec![false; threads],
                seq: 0,
                closing: false,
            }),
            changed: Condvar::new(),
        });
        let workers = (0..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("rooms-{i}"))
                    .spawn(move || work(&shared, i))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { shared, workers })
    }

    /// A handle that queues tasks from other threads.
    pub fn sender(&self) -> PoolSender<T> {
        PoolSender(self.shared.clone())
    }

    /// Waits until every task has finished, then stops the workers. Tasks
    /// must be on their way to finishing (rooms told to shut down).
    pub fn finish(mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl<T: Task> Drop for RoomPool<T> {
    /// A pool dropped without [`RoomPool::finish`] lets its workers go once
    /// their tasks end (a room ends when its inbox's sender is gone); it
    /// does not wait for them.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
    }
}

/// Queues tasks on a [`RoomPool`] from any thread.
pub(crate) struct PoolSender<T>(Arc<Shared<T>>);

impl<T: Task> PoolSender<T> {
    /// Queues `task`, its first step due at `at`.
    pub fn submit(&self, task: T, at: Instant) {
        let shared = &self.0;
        shared.lock().push(task, at, None);
        // Every idle worker may be sleeping towards a later deadline.
        shared.changed.notify_all();
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // A task that panicked poisons nothing the queue relies on.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker: take the earliest task it may, wait for its deadline, step it, requeue it.
fn work<T: Task>(shared: &Shared<T>, me: usize) {
    let mut queue = shared.lock();
    loop {
        let Some(i) = queue.earliest_for(me) else {
            if queue.closing && queue.waiting.is_empty() && !queue.busy.contains(&true) {
                drop(queue);
                // The others may be waiting for this very moment.
                shared.changed.notify_all();
                return;
            }
            queue = shared
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let now = Instant::now();
        let at = queue.waiting[i].at;
        if at > now {
            queue = shared
                .changed
                .wait_timeout(queue, at - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        let Waiting { mut task, .. } = queue.waiting.swap_remove(i);
        queue.busy[me] = true;
        let others_waiting = queue.waiting.iter().any(|w| w.home == Some(me));
        drop(queue);
        if others_waiting {
            // Idle workers may take this worker's other rooms while it is busy.
            shared.changed.notify_all();
        }
        // A room's bug ends that room, as it ended its thread before the
        // pool; the worker and the other rooms carry on.
        let next =
            std::panic::catch_unwind(AssertUnwindSafe(|| task.step())).unwrap_or_else(|_| {
                tracing::error!("a room panicked in its tick and was dropped");
                None
            });
        queue = shared.lock();
        queue.busy[me] = false;
        match next {
            Some(at) => queue.push(task, at, Some(me)),
            None if queue.closing => shared.changed.notify_all(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;

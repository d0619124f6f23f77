use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::time::Duration;

use super::*;

/// Steps `left` times, writing its name into `log` each time; the next step
/// is due `every` later (`None`: at once, as an overdue room would be).
struct Logger {
    name: char,
    left: u32,
    every: Option<Duration>,
    log: Arc<Mutex<String>>,
}

impl Task for Logger {
    fn step(&mut self) -> Option<Instant> {
        self.log.lock().unwrap().push(self.name);
        self.left -= 1;
        (self.left > 0).then(|| Instant::now() + self.every.unwrap_or_default())
    }
}

fn logger(name: char, left: u32, every: Option<Duration>, log: &Arc<Mutex<String>>) -> Logger {
    Logger {
        name,
        left,
        every,
        log: log.clone(),
    }
}

#[test]
fn the_earliest_deadline_runs_first() {
    let log = Arc::new(Mutex::new(String::new()));
    let pool = RoomPool::new(1).unwrap();
    let soon = Instant::now() + Duration::from_millis(30);
    // Queued in the opposite order of their deadlines.
    pool.sender()
        .submit(logger('c', 1, None, &log), soon + Duration::from_millis(20));
    pool.sender()
        .submit(logger('b', 1, None, &log), soon + Duration::from_millis(10));
    pool.sender().submit(logger('a', 1, None, &log), soon);
    pool.finish();
    assert_eq!(*log.lock().unwrap(), "abc");
}

#[test]
fn overdue_tasks_take_turns() {
    let log = Arc::new(Mutex::new(String::new()));
    let pool = RoomPool::new(1).unwrap();
    let past = Instant::now() - Duration::from_secs(1);
    // Both always overdue: neither may run twice while the other waits.
    pool.sender().submit(logger('a', 4, None, &log), past);
    pool.sender().submit(logger('b', 4, None, &log), past);
    pool.finish();
    assert_eq!(*log.lock().unwrap(), "abababab");
}

/// Counts its steps into a shared counter and finishes after `left`.
struct Counter {
    left: u32,
    steps: Arc<AtomicU32>,
}

impl Task for Counter {
    fn step(&mut self) -> Option<Instant> {
        self.steps.fetch_add(1, AtomicOrdering::Relaxed);
        self.left -= 1;
        (self.left > 0).then(|| Instant::now() + Duration::from_millis(1))
    }
}

#[test]
fn finish_waits_for_every_task_on_every_worker() {
    let steps = Arc::new(AtomicU32::new(0));
    let pool = RoomPool::new(3).unwrap();
    for _ in 0..10 {
        let task = Counter {
            left: 7,
            steps: steps.clone(),
        };
        pool.sender().submit(task, Instant::now());
    }
    pool.finish();
    assert_eq!(steps.load(AtomicOrdering::Relaxed), 70);
}

/// Panics on its first step.
struct Faulty;

impl Task for Box<dyn Task> {
    fn step(&mut self) -> Option<Instant> {
        (**self).step()
    }
}

impl Task for Faulty {
    fn step(&mut self) -> Option<Instant> {
        panic!("a room's bug");
    }
}

#[test]
fn a_panicking_task_is_dropped_and_the_others_run_on() {
    let log = Arc::new(Mutex::new(String::new()));
    let pool: RoomPool<Box<dyn Task>> = RoomPool::new(1).unwrap();
    pool.sender().submit(Box::new(Faulty), Instant::now());
    pool.sender().submit(
        Box::new(logger('a', 3, Some(Duration::from_millis(1)), &log)),
        Instant::now(),
    );
    pool.finish();
    assert_eq!(*log.lock().unwrap(), "aaa");
}

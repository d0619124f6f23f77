//! The embedded store's own guarantees: TTLs enforced on read against the
//! caller's clock, durability across reopening and across `kill -9`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kasagi_store::{EmbeddedStore, Retention, SnapshotStore};

use super::{CAPPED, NOW, lineage_start, tick_write, ticks};

#[test]
fn snapshots_expire_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path().join("s.redb"), Retention::default()).unwrap();
    for t in 1..=3 {
        store
            .write(&tick_write("village", t, false), NOW + t)
            .unwrap();
    }
    // Tick 1 expires at NOW + 1 + 600 s.
    let expired = NOW + 1 + 600_000;
    assert_eq!(
        store.snapshot_ttl("village", 1, expired - 1).unwrap(),
        Some(1)
    );
    assert_eq!(store.snapshot_ttl("village", 1, expired).unwrap(), None);
    let live: Vec<u64> = store
        .snapshots("village", 1, 3, expired)
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(live, [2, 3]);
    // A later write purges it; the live ones stay.
    store
        .write(&tick_write("village", 4, false), expired)
        .unwrap();
    assert_eq!(store.snapshots("village", 1, 4, expired).unwrap().len(), 3);
    // A TTL of 0 keeps no snapshots at all.
    let none = Retention {
        snapshot_ttl_secs: 0,
        ..Retention::default()
    };
    let mut store = EmbeddedStore::open(dir.path().join("t.redb"), none).unwrap();
    store.write(&tick_write("village", 1, false), NOW).unwrap();
    assert_eq!(store.snapshots("village", 1, 1, NOW).unwrap(), vec![]);
}

#[test]
fn survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let mut store = EmbeddedStore::open(&path, CAPPED).unwrap();
        for t in 1..=120 {
            store
                .write(&tick_write("village", t, t % 100 == 0), NOW)
                .unwrap();
        }
    }
    let mut store = EmbeddedStore::open(&path, CAPPED).unwrap();
    assert_eq!(store.latest_tick("village").unwrap(), Some(120));
    assert_eq!(store.full_state("village").unwrap().unwrap().tick, 100);
    assert_eq!(store.ops_after("village", 100).unwrap().len(), 20);
    // The entry count survives too: the cap keeps working after a reopen.
    for t in 121..=400 {
        store.write(&tick_write("village", t, false), NOW).unwrap();
    }
    let kept = store.ops_after("village", 0).unwrap().len();
    assert!((100..=110).contains(&kept), "{kept} kept");
    // ... and restarts from zero with a new lineage.
    store.write(&lineage_start("village", 1), NOW).unwrap();
    for t in 2..=105 {
        store.write(&tick_write("village", t, false), NOW).unwrap();
    }
    assert_eq!(store.ops_after("village", 0).unwrap().len(), 104);
}

/// Set in the child process of [`survives_a_kill`]: the store path to write to.
const CHILD_ENV: &str = "KASAGI_STORE_CHILD";
const CHILD_READY: &str = "KASAGI_STORE_CHILD_READY";

/// Writes ticks to `path` until killed (or 60 s pass, so a lost child ends).
fn child_writer(path: &str) {
    let mut store = EmbeddedStore::open(path, Retention::default()).unwrap();
    store.write(&lineage_start("village", 0), NOW).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for t in 1.. {
        store
            .write(&tick_write("village", t, t % 100 == 0), NOW + t)
            .unwrap();
        if t == 1 {
            println!("{CHILD_READY}");
        }
        if Instant::now() > deadline {
            break;
        }
    }
}

#[test]
fn survives_a_kill() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child_writer(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "embedded_only::survives_a_kill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first committed tick, let it write for a while, kill -9.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let ready = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(CHILD_READY));
    assert!(ready, "the writer child never got going");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");

    let mut store = EmbeddedStore::open(&path, Retention::default()).unwrap();
    let latest = store.latest_tick("village").unwrap().unwrap();
    assert!(latest >= 1, "latest tick {latest}");
    let kept = ticks(&store.ops_after("village", 0).unwrap());
    let first = *kept.first().unwrap();
    assert_eq!(
        kept,
        (first..=latest).collect::<Vec<_>>(),
        "contiguous up to {latest}"
    );
    let state = store.full_state("village").unwrap().unwrap();
    assert!(
        state.tick <= latest && state.tick.is_multiple_of(100),
        "{state:?}"
    );
    store
        .write(&tick_write("village", latest + 1, false), NOW)
        .unwrap();
    assert_eq!(store.latest_tick("village").unwrap(), Some(latest + 1));
    eprintln!(
        "killed after tick {latest}, {} ops entries kept",
        kept.len()
    );
}

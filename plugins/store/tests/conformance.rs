//! The store contract, run against every backend: the same
//! [`conformance`] suite on the embedded store and on a real `redis-server`
//! (started by [`kasagi_store::testing::RedisServer`]; the Redis tests fail,
//! never skip, when it is not installed). Backend-specific behaviour is in
//! `conformance/embedded_only.rs` and `conformance/redis_only.rs`.

use kasagi_store::testing::RedisServer;
use kasagi_store::{
    EMBEDDED_FILE_NAME, FullState, InitState, MAX_SNAPSHOT_RANGE, OpsEntry, Retention,
    SnapshotStore, StoreError, TickWrite, open_store,
};

#[path = "conformance/embedded_only.rs"]
mod embedded_only;
#[path = "conformance/redis_only.rs"]
mod redis_only;

/// The fake clock. Redis ignores it and uses real time: TTLs of 600 s do not
/// run out during a test.
const NOW: u64 = 1_700_000_000_000;

/// A running `redis-server`, or a panic saying how to install it.
fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

fn full(tick: u64) -> FullState {
    FullState {
        data: format!("state {tick}").into_bytes(),
        tick,
        seq: tick / 100,
        ts: NOW + tick,
    }
}

fn entry(from: u64, tick: u64) -> OpsEntry {
    OpsEntry {
        from,
        tick,
        data: format!("ops {from}..={tick}").into_bytes(),
    }
}

/// An ordinary tick: ops and snapshot, the full state when `with_full`.
fn tick_write(world: &str, tick: u64, with_full: bool) -> TickWrite {
    TickWrite {
        world: world.into(),
        tick,
        ops: Some(entry(tick, tick)),
        snapshot: Some(format!("snapshot {tick}").into_bytes()),
        full_state: with_full.then(|| full(tick)),
        reset_ops: false,
    }
}

/// The start of a lineage: a full state and nothing else.
fn lineage_start(world: &str, tick: u64) -> TickWrite {
    TickWrite {
        world: world.into(),
        tick,
        ops: None,
        snapshot: None,
        full_state: Some(full(tick)),
        reset_ops: true,
    }
}

fn ticks(ops: &[OpsEntry]) -> Vec<u64> {
    ops.iter().map(|e| e.tick).collect()
}

/// The conformance suite: any backend must pass it.
fn conformance(store: &mut dyn SnapshotStore) {
    // A world never written.
    assert_eq!(store.latest_tick("village").unwrap(), None);
    assert_eq!(store.full_state("village").unwrap(), None);
    assert_eq!(store.init("village", NOW).unwrap(), None);
    assert_eq!(store.ops_after("village", 0).unwrap(), vec![]);
    assert_eq!(store.snapshots("village", 0, 10, NOW).unwrap(), vec![]);
    assert_eq!(store.snapshot_ttl("village", 1, NOW).unwrap(), None);

    // A room starts from a full state: a write without ops or snapshot.
    store.write(&lineage_start("village", 0), NOW).unwrap();
    assert_eq!(store.latest_tick("village").unwrap(), Some(0));
    assert_eq!(store.full_state("village").unwrap(), Some(full(0)));
    assert_eq!(store.ops_after("village", 0).unwrap(), vec![]);

    // 250 ticks with a full state every 100, and another world in between.
    for t in 1..=250 {
        store
            .write(&tick_write("village", t, t % 100 == 0), NOW + t)
            .unwrap();
        if t == 120 {
            store.write(&lineage_start("forest", 6), NOW).unwrap();
            store.write(&tick_write("forest", 7, false), NOW).unwrap();
        }
    }
    assert_eq!(store.latest_tick("village").unwrap(), Some(250));
    assert_eq!(store.latest_tick("forest").unwrap(), Some(7));
    let state = store.full_state("village").unwrap().unwrap();
    assert_eq!(state, full(200));

    // Recovery: the full state, then exactly the entries after it, oldest first.
    let ops = store.ops_after("village", state.tick).unwrap();
    assert_eq!(ticks(&ops), (201..=250).collect::<Vec<_>>());
    assert_eq!(ops[0], entry(201, 201));
    assert_eq!(ops[49], entry(250, 250));
    assert_eq!(store.ops_after("village", 250).unwrap(), vec![]);
    assert_eq!(store.ops_after("village", u64::MAX).unwrap(), vec![]);
    assert_eq!(ticks(&store.ops_after("village", 0).unwrap()).len(), 250);
    // Worlds do not leak into each other.
    assert_eq!(store.ops_after("forest", 0).unwrap(), vec![entry(7, 7)]);
    assert_eq!(store.full_state("forest").unwrap(), Some(full(6)));
    assert_eq!(store.snapshots("forest", 0, 300, NOW).unwrap().len(), 1);

    // A coalesced entry (ticks 251..=253 in one write) round-trips.
    let coalesced = TickWrite {
        ops: Some(entry(251, 253)),
        ..tick_write("village", 253, false)
    };
    store.write(&coalesced, NOW + 253).unwrap();
    assert_eq!(
        store.ops_after("village", 250).unwrap(),
        vec![entry(251, 253)]
    );
    assert_eq!(store.latest_tick("village").unwrap(), Some(253));

    // A full-state-only write leaves the ops alone.
    let archive = TickWrite {
        reset_ops: false,
        ..lineage_start("village", 253)
    };
    store.write(&archive, NOW + 253).unwrap();
    assert_eq!(store.full_state("village").unwrap(), Some(full(253)));
    assert_eq!(store.ops_after("village", 0).unwrap().len(), 251);

    // The lineage rule: an older entry is refused and nothing of its write
    // applied; the same last entry again is the retry of a stored write.
    let stale = TickWrite {
        ops: Some(entry(252, 252)),
        ..tick_write("village", 252, true)
    };
    let err = store.write(&stale, NOW + 254).unwrap_err();
    assert!(
        matches!(&err, StoreError::OutOfOrder { world, tick: 252 } if world == "village"),
        "{err}"
    );
    assert_eq!(store.latest_tick("village").unwrap(), Some(253));
    assert_eq!(store.full_state("village").unwrap(), Some(full(253)));
    store.write(&coalesced, NOW + 254).unwrap();
    assert_eq!(store.ops_after("village", 250).unwrap().len(), 1);
    let forged = TickWrite {
        ops: Some(OpsEntry {
            data: b"something else".to_vec(),
            ..entry(251, 253)
        }),
        ..coalesced.clone()
    };
    assert!(matches!(
        store.write(&forged, NOW + 254),
        Err(StoreError::OutOfOrder { tick: 253, .. })
    ));

    // Snapshots: ranges (oldest first, only ticks that have one), bounds, TTLs.
    let range = store.snapshots("village", 10, 12, NOW + 300).unwrap();
    let expected: Vec<_> = (10..=12)
        .map(|t| (t, format!("snapshot {t}").into_bytes()))
        .collect();
    assert_eq!(range, expected);
    let tail = store.snapshots("village", 248, 260, NOW + 300).unwrap();
    assert_eq!(
        tail.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [248, 249, 250, 253]
    );
    assert_eq!(store.snapshots("village", 12, 10, NOW).unwrap(), vec![]);
    assert_eq!(store.snapshots("village", 0, 0, NOW).unwrap(), vec![]);
    let widest = store.snapshots("village", 0, MAX_SNAPSHOT_RANGE, NOW + 300);
    assert_eq!(widest.unwrap().len(), 251);
    for (from, to) in [(0, MAX_SNAPSHOT_RANGE + 1), (0, u64::MAX)] {
        let err = store.snapshots("village", from, to, NOW).unwrap_err();
        assert!(matches!(err, StoreError::RangeTooLarge { .. }), "{err}");
    }
    let ttl = store
        .snapshot_ttl("village", 250, NOW + 250)
        .unwrap()
        .unwrap();
    assert!(0 < ttl && ttl <= 600, "ttl {ttl}");
    assert_eq!(store.snapshot_ttl("village", 252, NOW + 254).unwrap(), None);

    // The read API's starting point.
    assert_eq!(
        store.init("village", NOW + 254).unwrap(),
        Some(InitState {
            full_state: full(253),
            latest_tick: 253,
            latest_snapshot: Some((253, b"snapshot 253".to_vec())),
        })
    );
    let forest = store.init("forest", NOW).unwrap().unwrap();
    assert_eq!((forest.latest_tick, forest.full_state.tick), (7, 6));

    // A new lineage drops the old one's ops; its ticks may start lower.
    store
        .write(&lineage_start("village", 10), NOW + 300)
        .unwrap();
    assert_eq!(store.ops_after("village", 0).unwrap(), vec![]);
    store
        .write(&tick_write("village", 11, false), NOW + 301)
        .unwrap();
    assert_eq!(store.ops_after("village", 0).unwrap(), vec![entry(11, 11)]);
    assert_eq!(store.latest_tick("village").unwrap(), Some(11));
    // ... also when the reset comes with the new lineage's first entry.
    let restart = TickWrite {
        reset_ops: true,
        ..tick_write("village", 5, true)
    };
    store.write(&restart, NOW + 302).unwrap();
    assert_eq!(store.ops_after("village", 0).unwrap(), vec![entry(5, 5)]);
    assert_eq!(store.full_state("village").unwrap(), Some(full(5)));
    assert_eq!(store.ops_after("forest", 0).unwrap(), vec![entry(7, 7)]);
}

/// Writes 1,000 ticks under a cap of 100 and checks what is kept: at least
/// the newest 100, at most `most`.
fn ops_capped(store: &mut dyn SnapshotStore, most: usize) {
    for t in 1..=1_000 {
        store.write(&tick_write("village", t, false), NOW).unwrap();
    }
    let kept = ticks(&store.ops_after("village", 0).unwrap());
    assert!((100..=most).contains(&kept.len()), "{} kept", kept.len());
    let newest: Vec<u64> = (1_001 - kept.len() as u64..=1_000).collect();
    assert_eq!(kept, newest, "the newest are kept, contiguous");
}

const CAPPED: Retention = Retention {
    snapshot_ttl_secs: 600,
    ops_max_len: 100,
};

#[test]
fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("data").display());
    let mut store = open_store(&url, Retention::default()).unwrap();
    assert!(dir.path().join("data").join(EMBEDDED_FILE_NAME).is_file());
    conformance(store.as_mut());
}

#[test]
fn redis_store_conforms() {
    let server = redis();
    let mut store = open_store(&server.url(), Retention::default()).unwrap();
    conformance(store.as_mut());
}

#[test]
fn embedded_ops_are_capped_near_maxlen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = kasagi_store::EmbeddedStore::open(dir.path().join("s.redb"), CAPPED).unwrap();
    // "About N": at most 10 % over.
    ops_capped(&mut store, 110);
}

#[test]
fn redis_ops_are_capped_near_maxlen() {
    let server = redis();
    let mut store = kasagi_store::RedisStore::connect(&server.url(), CAPPED).unwrap();
    // Redis trims whole stream nodes (100 entries by default).
    ops_capped(&mut store, 300);
}

#[test]
fn open_store_refuses_other_schemes() {
    let err = open_store("postgres://db/kasagi", Retention::default()).err();
    let err = err.expect("refused").to_string();
    assert!(
        err.contains("redis://") && err.contains("file://"),
        "the message names the accepted schemes: {err}"
    );
}

//! The store contract, run against every backend (for now: the embedded one).

use kasagi_store::{EmbeddedStore, FullState, Retention, SnapshotStore, TickWrite};

const NOW: u64 = 1_700_000_000_000;

fn tick(world: &str, tick: u64, full: bool) -> TickWrite {
    TickWrite {
        world: world.into(),
        tick,
        snapshot: format!("snapshot {tick}").into_bytes(),
        change_set: format!("ops {tick}").into_bytes(),
        full_state: full.then(|| FullState {
            data: format!("state {tick}").into_bytes(),
            tick,
            seq: tick / 100,
            ts: NOW + tick,
        }),
    }
}

/// The conformance suite: any backend must pass it.
fn conformance(store: &mut dyn SnapshotStore) {
    assert_eq!(store.latest_tick("village").unwrap(), None);
    assert_eq!(store.full_state("village").unwrap(), None);
    for t in 1..=250 {
        store
            .write(&tick("village", t, t % 100 == 0), NOW + t)
            .unwrap();
    }
    store.write(&tick("forest", 7, true), NOW).unwrap();

    assert_eq!(store.latest_tick("village").unwrap(), Some(250));
    assert_eq!(store.latest_tick("forest").unwrap(), Some(7));
    let full = store.full_state("village").unwrap().unwrap();
    assert_eq!(
        (full.tick, full.seq, full.data.as_slice()),
        (200, 2, b"state 200".as_slice())
    );

    // Recovery: the full state, then the ops after it, in order, and nothing of other worlds.
    let ops = store.ops_after("village", full.tick).unwrap();
    let ticks: Vec<u64> = ops.iter().map(|(t, _)| *t).collect();
    assert_eq!(ticks, (201..=250).collect::<Vec<_>>());
    assert_eq!(ops[0].1, b"ops 201");
    assert_eq!(store.ops_after("village", 250).unwrap(), vec![]);
    assert_eq!(store.ops_after("village", u64::MAX).unwrap(), vec![]);

    // Snapshots: a range, and TTLs in (0, 600].
    let range = store.snapshots("village", 10, 12, NOW + 300).unwrap();
    assert_eq!(
        range,
        vec![
            (10, b"snapshot 10".to_vec()),
            (11, b"snapshot 11".to_vec()),
            (12, b"snapshot 12".to_vec())
        ]
    );
    let ttl = store
        .snapshot_ttl("village", 250, NOW + 250)
        .unwrap()
        .unwrap();
    assert!(0 < ttl && ttl <= 600, "ttl {ttl}");
    // After the TTL a snapshot is gone.
    assert_eq!(
        store.snapshot_ttl("village", 1, NOW + 1 + 600_001).unwrap(),
        None
    );
    assert!(
        store
            .snapshots("village", 1, 1, NOW + 1 + 600_001)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        EmbeddedStore::open(dir.path().join("store.redb"), Retention::default()).unwrap();
    conformance(&mut store);
}

#[test]
fn embedded_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let mut store = EmbeddedStore::open(&path, Retention::default()).unwrap();
        for t in 1..=120 {
            store.write(&tick("village", t, t % 100 == 0), NOW).unwrap();
        }
    }
    let mut store = EmbeddedStore::open(&path, Retention::default()).unwrap();
    assert_eq!(store.latest_tick("village").unwrap(), Some(120));
    assert_eq!(store.full_state("village").unwrap().unwrap().tick, 100);
    assert_eq!(store.ops_after("village", 100).unwrap().len(), 20);
}

#[test]
fn ops_are_capped_near_maxlen() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        snapshot_ttl_secs: 600,
        ops_max_len: 100,
    };
    let mut store = EmbeddedStore::open(dir.path().join("s.redb"), retention).unwrap();
    for t in 1..=1_000 {
        store.write(&tick("village", t, false), NOW).unwrap();
    }
    let kept = store.ops_after("village", 0).unwrap();
    assert!(
        (100..=110).contains(&kept.len()),
        "{} entries kept",
        kept.len()
    );
    assert_eq!(kept.last().unwrap().0, 1_000, "the newest are kept");
}

//! The Redis store's own guarantees: the key schema verbatim (checked with a
//! raw connection), pub/sub, outages, garbled data, and the lineage rule
//! across store instances.

use std::time::{Duration, Instant};

use kasagi_store::{
    OpsEntry, RedisStore, Retention, SnapshotStore, StoreError, TickWrite, channel_key,
};

use super::{NOW, entry, lineage_start, redis, tick_write};

/// A stream entry as Redis answers it: id, then field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con).unwrap()
}

#[test]
fn keys_follow_the_schema() {
    let server = redis();
    let mut store = RedisStore::connect(&server.url(), Retention::default()).unwrap();
    let mut con = raw(&server.url());
    let mut subscriber = raw(&server.url());
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe(channel_key("village")).unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    store.write(&lineage_start("village", 0), NOW).unwrap();
    for t in 1..=250 {
        store
            .write(&tick_write("village", t, t % 100 == 0), NOW)
            .unwrap();
    }
    let exists: i64 = query(&mut con, &["EXISTS", "snapshot:{village}:250"]);
    assert_eq!(exists, 1);
    let ttl: i64 = query(&mut con, &["TTL", "snapshot:{village}:250"]);
    assert!(0 < ttl && ttl <= 600, "TTL {ttl}");
    let kind: String = query(&mut con, &["TYPE", "full_state:{village}"]);
    assert_eq!(kind, "hash");
    let mut fields: Vec<String> = query(&mut con, &["HKEYS", "full_state:{village}"]);
    fields.sort();
    assert_eq!(fields, ["data", "seq", "tick", "ts"]);
    let tick: String = query(&mut con, &["HGET", "full_state:{village}", "tick"]);
    assert_eq!(tick, "200");
    let kind: String = query(&mut con, &["TYPE", "room:{village}:ops"]);
    assert_eq!(kind, "stream");
    let latest: String = query(&mut con, &["GET", "latest_tick:{village}"]);
    assert_eq!(latest, "250");
    // Entry ids are `<tick>-1`, the fields `tick`, `from`, `data`.
    let last: Vec<StreamEntry> = query(
        &mut con,
        &["XRANGE", "room:{village}:ops", "250-1", "250-1"],
    );
    assert_eq!(
        last,
        [(
            "250-1".to_string(),
            vec![
                ("tick".to_string(), b"250".to_vec()),
                ("from".to_string(), b"250".to_vec()),
                ("data".to_string(), b"ops 250..=250".to_vec()),
            ]
        )]
    );
    // Every snapshot was published, in order.
    for t in 1..=250u64 {
        let message = pubsub.get_message().unwrap();
        assert_eq!(message.get_channel_name(), "room:{village}:channel");
        assert_eq!(
            message.get_payload_bytes(),
            format!("snapshot {t}").as_bytes()
        );
    }
}

#[test]
fn writes_fail_fast_while_redis_is_down_and_recover_without_a_new_store() {
    let mut server = redis();
    let mut store = RedisStore::connect(&server.url(), Retention::default()).unwrap();
    for t in 1..=10 {
        store.write(&tick_write("village", t, false), NOW).unwrap();
    }
    server.stop();
    // Twice: the dead connection, then the refused reconnects.
    for t in [11, 12] {
        let started = Instant::now();
        let err = store
            .write(&tick_write("village", t, false), NOW)
            .unwrap_err();
        let took = started.elapsed();
        eprintln!("write {t} with Redis down: {err} after {took:?}");
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
    let started = Instant::now();
    assert!(store.latest_tick("village").is_err());
    assert!(started.elapsed() < Duration::from_secs(5));

    server.restart().unwrap();
    // The restarted server is empty (no persistence); the same store writes on.
    for t in 11..=20 {
        store.write(&tick_write("village", t, false), NOW).unwrap();
    }
    assert_eq!(store.latest_tick("village").unwrap(), Some(20));
    let ops = store.ops_after("village", 0).unwrap();
    assert_eq!(ops.first(), Some(&entry(11, 11)));
    assert_eq!(ops.len(), 10);
}

#[test]
fn connect_fails_clearly_when_redis_is_unreachable() {
    let mut server = redis();
    let url = server.url();
    server.stop();
    let started = Instant::now();
    let err = RedisStore::connect(&url, Retention::default())
        .err()
        .expect("no server");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(err.to_string().contains(&url), "names the URL: {err}");

    let port = server.port();
    let err = RedisStore::connect(
        &format!("rediss://u:secret@127.0.0.1:{port}"),
        Retention::default(),
    )
    .err()
    .expect("no TLS");
    assert!(matches!(err, StoreError::Url(_)), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = RedisStore::connect("redis://127.0.0.1:notaport", Retention::default())
        .err()
        .expect("bad URL");
    assert!(matches!(err, StoreError::Url(_)), "{err}");
}

#[test]
fn the_lineage_holds_across_store_instances() {
    let server = redis();
    let mut first = RedisStore::connect(&server.url(), Retention::default()).unwrap();
    for t in 1..=5 {
        first.write(&tick_write("village", t, false), NOW).unwrap();
    }
    // A second store knows nothing of the first: Redis refuses the entry.
    let mut second = RedisStore::connect(&server.url(), Retention::default()).unwrap();
    let err = second
        .write(&tick_write("village", 3, false), NOW)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::OutOfOrder { tick: 3, .. }),
        "{err}"
    );
    // The retry of the last write (its outcome unknown to the writer) is fine.
    second.write(&tick_write("village", 5, false), NOW).unwrap();
    second.write(&tick_write("village", 6, false), NOW).unwrap();
    assert_eq!(first.ops_after("village", 4).unwrap().len(), 2);
}

#[test]
fn garbled_data_is_corrupt_not_a_panic() {
    let server = redis();
    let mut store = RedisStore::connect(&server.url(), Retention::default()).unwrap();
    let mut con = raw(&server.url());
    let _: () = query(&mut con, &["SET", "latest_tick:{bad}", "eleven"]);
    let _: () = query(&mut con, &["HSET", "full_state:{bad}", "data", "x"]);
    let _: () = query(&mut con, &["XADD", "room:{bad}:ops", "5-1", "tick", "5"]);
    let _: () = query(
        &mut con,
        &[
            "XADD",
            "room:{bad}:ops",
            "6-1",
            "tick",
            "7",
            "from",
            "6",
            "data",
            "x",
        ],
    );
    let is_corrupt = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Corrupt { .. }));
    assert!(is_corrupt(store.latest_tick("bad").map(|_| ())));
    assert!(is_corrupt(store.full_state("bad").map(|_| ())));
    assert!(is_corrupt(store.ops_after("bad", 0).map(|_| ())));
    assert!(is_corrupt(store.ops_after("bad", 5).map(|_| ())));
    // A key of the wrong type is the server's error, not a panic either.
    let _: () = query(&mut con, &["SET", "full_state:{worse}", "x"]);
    assert!(store.full_state("worse").is_err());
    let write = TickWrite {
        ops: Some(OpsEntry {
            from: 1,
            tick: 1,
            data: vec![],
        }),
        ..lineage_start("worse", 1)
    };
    assert!(matches!(
        store.write(&write, NOW),
        Err(StoreError::Backend(_))
    ));
}

#[test]
fn ops_after_pages_through_long_streams() {
    let server = redis();
    let retention = Retention {
        ops_max_len: 10_000,
        ..Retention::default()
    };
    let mut store = RedisStore::connect(&server.url(), retention).unwrap();
    for t in 1..=2_500 {
        store.write(&tick_write("village", t, false), NOW).unwrap();
    }
    let ops = store.ops_after("village", 0).unwrap();
    assert_eq!(
        ops.iter().map(|e| e.tick).collect::<Vec<_>>(),
        (1..=2_500).collect::<Vec<_>>()
    );
    assert_eq!(store.ops_after("village", 999).unwrap().len(), 1_501);
    assert_eq!(
        store.ops_after("village", 2_000).unwrap()[0],
        entry(2_001, 2_001)
    );
}

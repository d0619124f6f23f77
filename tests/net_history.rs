//! The store's read API over the protocol: a client asks a persisting server
//! for past ticks and gets the world-visible change sets the store holds.

mod common;
mod net_support;

use std::time::Duration;

use kasagi::persist::{EmbeddedStore, PersistConfig, PersistService, Retention};
use kasagi::serve::ServeOptions;
use kasagi_net::client::SyncState;
use kasagi_net::protocol::{ErrorCode, HistoryTick, MAX_HISTORY_TICKS};
use kasagi_net::server::ServerAuth;
use net_support::{insecure, options, pump, start_options};

#[test]
fn a_client_fetches_the_persisted_history_of_its_room() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("kasagi.redb"), Retention::default()).unwrap();
    let persist = PersistService::start(Box::new(store), PersistConfig::default());
    let server = start_options(ServeOptions {
        persist: Some(persist.handle()),
        ..options(ServerAuth::Insecure, Vec::new())
    });
    let mut client = insecure(server.addr, 7);
    assert!(pump(&mut [&mut client], Duration::from_secs(10), |c| {
        c[0].state() == SyncState::Synced
    }));
    // Let some ticks reach the store.
    pump(&mut [&mut client], Duration::from_millis(700), |_| false);
    let now = client.replica().tick().expect("synced");
    let me = client.player().expect("joined");
    assert!(
        persist.handle().flush(Duration::from_secs(10)),
        "store caught up"
    );

    // One request answers at most MAX_HISTORY_TICKS ticks; a slow start
    // (a loaded machine) can put `now` beyond that.
    let last = now.min(MAX_HISTORY_TICKS);
    client.fetch_history(1, last);
    let mut got: Vec<HistoryTick> = Vec::new();
    assert!(pump(&mut [&mut client], Duration::from_secs(10), |c| {
        got.extend(c[0].take_history());
        !got.is_empty()
    }));

    // Every tick from the room's first to `last` is there, once, in order.
    // A set the writer coalesced over ticks up to and past `last` comes
    // whole: without it the range's last ticks would be missing.
    let ranges: Vec<(u64, u64)> = got.iter().map(|e| (e.from, e.tick)).collect();
    let mut next = 1;
    let mut saw_me = false;
    for entry in &got {
        assert!(entry.from <= entry.tick && entry.from <= last, "{entry:?}");
        assert_eq!(entry.from, next, "ticks covered once, in order: {ranges:?}");
        next = entry.tick + 1;
        let set = entry.decode().expect("a well-formed change set");
        assert_eq!(set.tick, entry.tick);
        assert!(
            set.kinds.values().all(|k| k.updated.is_empty()),
            "no old values"
        );
        saw_me |= set
            .kinds
            .get("players")
            .is_some_and(|k| k.created.iter().any(|e| e.id == me));
    }
    assert!(next > last, "ticks covered up to {last}: {ranges:?}");
    assert!(
        saw_me,
        "the history shows this client's avatar being created"
    );
}

#[test]
fn a_server_without_a_store_says_so() {
    let server = start_options(options(ServerAuth::Insecure, Vec::new()));
    let mut client = insecure(server.addr, 8);
    assert!(pump(&mut [&mut client], Duration::from_secs(10), |c| {
        c[0].state() == SyncState::Synced
    }));
    client.fetch_history(1, 10);
    assert!(pump(&mut [&mut client], Duration::from_secs(10), |c| {
        c[0].last_error()
            .is_some_and(|(code, _)| *code == ErrorCode::RoomUnavailable)
    }));
}

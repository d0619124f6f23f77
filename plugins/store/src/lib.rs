//! Kasagi persistence: the store contract every backend honours, and its two
//! backends.
//!
//! The contract follows the Redis key schema of the design brief (braces are
//! literal cluster hash tags, so every key of a world shares a slot):
//!
//! | key | content |
//! |---|---|
//! | `snapshot:{<world>}:<tick>` | the tick's snapshot, expiring after the snapshot TTL |
//! | `full_state:{<world>}` | `data`, `tick`, `seq`, `ts`: the full world state, rewritten every archive interval |
//! | `latest_tick:{<world>}` | the latest persisted tick |
//! | `room:{<world>}:ops` | one entry per tick's change set (fields `tick`, `from`, `data`, id `<tick>-1`), capped at about `MAXLEN` entries |
//! | `room:{<world>}:channel` | pub/sub: every snapshot written is also published here (Redis only) |
//!
//! Modules:
//!
//! - the contract: [`SnapshotStore`], [`TickWrite`], [`OpsEntry`],
//!   [`FullState`], [`InitState`], [`Retention`], [`StoreError`], and
//!   [`open_store`], which picks a backend from a URL;
//! - [`EmbeddedStore`]: one redb file (`file://<dir>`), for a single server
//!   without Redis;
//! - [`RedisStore`]: Redis (`redis://`), the schema above verbatim;
//! - the key names: [`snapshot_key`], [`full_state_key`], [`latest_tick_key`],
//!   [`ops_key`], [`channel_key`];
//! - [`testing`]: a throwaway `redis-server` for tests.
//!
//! Backends store opaque bytes; what the bytes are (encoded
//! `kasagi_replication` snapshots and change sets) is the writer's business.
//! The background writer, recovery and the encoding of the bytes live in the
//! `kasagi` crate (`src/persist`).

#![warn(missing_docs)]

mod embedded;
mod keys;
mod redis;
pub mod testing;

pub use self::redis::RedisStore;
pub use embedded::EmbeddedStore;
pub use keys::{channel_key, full_state_key, latest_tick_key, ops_key, snapshot_key};

use thiserror::Error;

/// Everything persisted for one tick (or several coalesced ticks), written in
/// one round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickWrite {
    /// The world (room) name.
    pub world: String,
    /// The newest tick this write covers; becomes `latest_tick:{world}`.
    pub tick: u64,
    /// The ops entry appended to `room:{world}:ops`. `None` when this write only
    /// carries a full state (e.g. the state a room starts from).
    pub ops: Option<OpsEntry>,
    /// The tick's snapshot (`snapshot:{world}:tick`, expiring after the TTL);
    /// also published on `room:{world}:channel` by backends that have pub/sub.
    pub snapshot: Option<Vec<u8>>,
    /// Every archive interval: the full state to rewrite `full_state:{world}` with.
    pub full_state: Option<FullState>,
    /// Starts a new lineage: the world's ops are dropped before this write, so
    /// recovery never mixes entries of an abandoned history with this one.
    /// Only meaningful together with `full_state`.
    pub reset_ops: bool,
}

/// One entry of `room:{world}:ops`: the change set of ticks `from..=tick`
/// (a single tick unless the writer coalesced several).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsEntry {
    /// The first tick covered.
    pub from: u64,
    /// The last tick covered; entries are keyed and ordered by it.
    pub tick: u64,
    /// The encoded change set.
    pub data: Vec<u8>,
}

/// What a tool or a resyncing client needs to start following a world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitState {
    /// The last full state.
    pub full_state: FullState,
    /// The latest persisted tick.
    pub latest_tick: u64,
    /// The snapshot of the latest tick, if it has not expired.
    pub latest_snapshot: Option<(u64, Vec<u8>)>,
}

/// The `full_state:{world}` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullState {
    /// The encoded full world state.
    pub data: Vec<u8>,
    /// The tick it is the state of.
    pub tick: u64,
    /// A counter of full-state writes.
    pub seq: u64,
    /// Wall-clock time of the write, Unix milliseconds.
    pub ts: u64,
}

/// Retention settings, the same for every world of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Seconds a snapshot lives after its write (`EX`). After that it is gone
    /// from [`SnapshotStore::snapshots`] and [`SnapshotStore::snapshot_ttl`];
    /// `0` means snapshots are not kept at all (Redis still publishes them).
    pub snapshot_ttl_secs: u64,
    /// About how many ops entries are kept per world (`MAXLEN ~`): never fewer
    /// than this many of the newest (unless fewer were written since the last
    /// `reset_ops`), and a bounded amount more (the embedded store keeps at
    /// most 10 % more; Redis trims whole stream nodes, 100 entries each by
    /// default). The oldest go first. The default, 1,000 (33 s at 30 Hz, ten
    /// archive intervals), is what recovery needs many times over; each entry
    /// holds a tick's full change set, hundreds of kilobytes for a busy
    /// 10k-entity room.
    pub ops_max_len: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            snapshot_ttl_secs: 600,
            ops_max_len: 1_000,
        }
    }
}

/// The widest tick range [`SnapshotStore::snapshots`] answers in one call:
/// `to - from` may be at most this, wider ranges fail with
/// [`StoreError::RangeTooLarge`] instead of allocating without bound.
pub const MAX_SNAPSHOT_RANGE: u64 = 100_000;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend failed (I/O, connection, timeout, a server error). For a
    /// write, whether it was applied is unknown (Redis: the server may have
    /// executed it before the connection failed); retrying the same write is
    /// safe, see [`SnapshotStore::write`].
    #[error("store backend: {0}")]
    Backend(String),
    /// Stored bytes are not what the store wrote.
    #[error("corrupt record at {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An ops entry was not after the world's last one (the lineage rule of
    /// [`SnapshotStore::write`]); start a new lineage with `reset_ops`.
    #[error(
        "ops entry for tick {tick} of world {world:?} is not after the last one stored \
         (ops ticks must increase; start a new lineage with reset_ops)"
    )]
    OutOfOrder {
        /// The world.
        world: String,
        /// The rejected entry's tick.
        tick: u64,
    },
    /// A [`SnapshotStore::snapshots`] range wider than [`MAX_SNAPSHOT_RANGE`].
    #[error("snapshot range {from}..={to} is wider than {MAX_SNAPSHOT_RANGE} ticks")]
    RangeTooLarge {
        /// The first tick asked for.
        from: u64,
        /// The last tick asked for.
        to: u64,
    },
    /// [`open_store`] was given a URL it does not accept.
    #[error("{0}")]
    Url(String),
}

/// The persistence contract. Every backend passes the same conformance suite
/// (`tests/conformance.rs`).
///
/// Stores are synchronous and meant to be driven from one dedicated writer
/// thread; reads may come from the same thread or another store instance.
pub trait SnapshotStore: Send {
    /// Persists one write: the ops entry, the snapshot (with its TTL; Redis also
    /// publishes it on `room:{world}:channel`), the full state when present,
    /// and `latest_tick:{world}` = `write.tick` (always), in one round trip.
    /// `reset_ops` drops the world's ops before anything else. Parts that are
    /// `None` are left as they are.
    ///
    /// Atomic: after a crash (of the process or, for Redis with persistence,
    /// of the server) either all of the write is there or none of it.
    /// Durability is the backend's: the embedded store has fsynced the write
    /// when this returns `Ok`; Redis has applied it in memory (and to its AOF
    /// per its `appendfsync` setting).
    ///
    /// The lineage rule: an ops entry's tick must be greater than the tick of
    /// the world's last stored entry (none after `reset_ops`). An entry equal
    /// to the last one (same `tick`, `from` and `data`) is accepted as the
    /// retry of a write whose outcome was unknown, and the rest of the write is
    /// applied again. Anything else fails with [`StoreError::OutOfOrder`]:
    /// the embedded store then applies nothing; Redis (whose transactions do
    /// not roll back) may still have applied the other parts of the write.
    fn write(&mut self, write: &TickWrite, now_ms: u64) -> Result<(), StoreError>;

    /// The latest persisted tick of `world` (`write.tick` of its last write).
    fn latest_tick(&mut self, world: &str) -> Result<Option<u64>, StoreError>;

    /// The last full state of `world`.
    fn full_state(&mut self, world: &str) -> Result<Option<FullState>, StoreError>;

    /// The kept ops entries whose `tick` is after `after`, oldest first, with
    /// `from`, `tick` and `data` as written (what recovery replays on top of
    /// the full state). Empty for `after == u64::MAX`.
    fn ops_after(&mut self, world: &str, after: u64) -> Result<Vec<OpsEntry>, StoreError>;

    /// The unexpired snapshots of ticks `from..=to`, oldest first; empty when
    /// `from > to`, [`StoreError::RangeTooLarge`] when `to - from` exceeds
    /// [`MAX_SNAPSHOT_RANGE`].
    fn snapshots(
        &mut self,
        world: &str,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// The read API's starting point: the full state, the latest tick and the
    /// latest tick's snapshot (if unexpired); `None` for a world without a full
    /// state. Three reads, not a consistent snapshot of the world: a write in
    /// between may make `latest_tick` newer than the state.
    fn init(&mut self, world: &str, now_ms: u64) -> Result<Option<InitState>, StoreError> {
        let Some(full_state) = self.full_state(world)? else {
            return Ok(None);
        };
        let latest_tick = self.latest_tick(world)?.unwrap_or(full_state.tick);
        let latest_snapshot = self
            .snapshots(world, latest_tick, latest_tick, now_ms)?
            .pop();
        Ok(Some(InitState {
            full_state,
            latest_tick,
            latest_snapshot,
        }))
    }

    /// Remaining lifetime of a snapshot in whole seconds, rounded up (so at
    /// least 1 while it exists); `None` if absent or expired.
    fn snapshot_ttl(
        &mut self,
        world: &str,
        tick: u64,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError>;
}

/// Opens the store a URL names:
///
/// - `redis://[user:password@]host[:port][/db]` (and `rediss://`, which needs
///   a TLS-enabled build and fails with a clear error in this one):
///   [`RedisStore::connect`], which fails if the server does not answer now;
/// - `file://<dir>`: [`EmbeddedStore`] in `<dir>/kasagi.redb`, creating the
///   directory; a relative `<dir>` (`file://./kasagi-data`, `file://data`) is
///   relative to the current directory, `file:///var/lib/kasagi` is absolute.
///
/// Anything else fails with [`StoreError::Url`] naming the accepted schemes.
pub fn open_store(url: &str, retention: Retention) -> Result<Box<dyn SnapshotStore>, StoreError> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(Box::new(RedisStore::connect(url, retention)?));
    }
    if let Some(dir) = url.strip_prefix("file://") {
        if dir.is_empty() {
            return Err(StoreError::Url(
                "file:// needs a directory, e.g. file://./kasagi-data".into(),
            ));
        }
        let path = std::path::Path::new(dir).join(EMBEDDED_FILE_NAME);
        return Ok(Box::new(EmbeddedStore::open(path, retention)?));
    }
    Err(StoreError::Url(format!(
        "unsupported store URL {:?}: use redis://host[:port][/db], rediss://… or file://<dir>",
        redact_url(url)
    )))
}

/// The file [`open_store`] keeps an embedded store in, inside the `file://` directory.
pub const EMBEDDED_FILE_NAME: &str = "kasagi.redb";

/// `url` with any `user:password@` replaced by `***@`, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if !scheme.is_empty() => format!("{scheme}://***{}", &rest[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact_url("redis://h:1/a@b"), "redis://h:1/a@b");
        assert_eq!(redact_url("file://./x"), "file://./x");
    }

    #[test]
    fn unknown_schemes_are_refused() {
        for url in ["", "postgres://x", "./dir", "file://"] {
            let err = open_store(url, Retention::default()).err().expect(url);
            assert!(matches!(err, StoreError::Url(_)), "{url}: {err}");
        }
        let err = open_store("ftp://u:secret@h", Retention::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("redis://"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

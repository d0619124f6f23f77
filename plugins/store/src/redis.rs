//! The Redis backend: the key schema verbatim, one MULTI/EXEC per write.
//!
//! The `redis` crate's async [`ConnectionManager`] is driven by a private
//! current-thread tokio runtime that only runs inside the store's (blocking)
//! methods. Every round trip has a hard deadline, so an unreachable server
//! turns into a quick [`StoreError::Backend`], and the manager reconnects by
//! itself once the server is back.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisResult, Value};

use crate::{
    FullState, MAX_SNAPSHOT_RANGE, OpsEntry, Retention, SnapshotStore, StoreError, TickWrite,
    channel_key, full_state_key, latest_tick_key, ops_key, redact_url, snapshot_key,
};

mod parse;

use parse::{bytes_field, ops_entries, ttl_secs, u64_value};

/// Deadline of one connection attempt (TCP connect and handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Hard deadline of one store round trip, reconnect attempts included.
const ROUND_TRIP_DEADLINE: Duration = Duration::from_millis(1_500);
/// Keys per `MGET` in [`SnapshotStore::snapshots`].
const MGET_CHUNK: u64 = 1_000;
/// Entries per `XRANGE` page in [`SnapshotStore::ops_after`].
const XRANGE_PAGE: usize = 1_000;
/// Snapshot TTLs are capped at 100 years (Redis rejects EX values that overflow).
const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3_600;

/// A store in Redis, laid out exactly as the key schema in the crate docs.
///
/// - [`SnapshotStore::write`] is one MULTI/EXEC round trip; Redis executes it
///   without interleaving other clients' commands, so readers and a crash see
///   all of it or none of it (durability across a server crash is whatever
///   the server's RDB/AOF configuration gives). Snapshots are also published
///   on `room:{world}:channel`: fire-and-forget, at most once per write to
///   the subscribers connected at that moment (a retried write publishes again).
/// - The lineage rule: an entry older than the last one this store instance
///   wrote for the world is refused before anything is sent. Only a conflict
///   with entries it has not seen (another instance's, or from before this
///   process) reaches Redis, which refuses the `XADD` while the rest of the
///   transaction still applies (Redis transactions do not roll back).
/// - Snapshot TTLs are Redis key expiries on the server's clock: the `now_ms`
///   arguments of the trait are ignored by this backend.
/// - Every round trip fails with [`StoreError::Backend`] within about 1.5 s
///   when the server is unreachable or stalls; the connection is re-established
///   in the background (on the next calls), without a new store.
///
/// The methods block on a private tokio runtime: call them from a plain thread
/// (the writer thread, `spawn_blocking`), never from inside an async runtime,
/// where they panic.
pub struct RedisStore {
    // Dropped before the runtime that drives it.
    conn: ConnectionManager,
    runtime: tokio::runtime::Runtime,
    retention: Retention,
    /// The URL without credentials, for error messages.
    url: String,
    /// The last ops tick this store wrote per world, to refuse out-of-order
    /// entries before anything is sent (Redis would apply the rest of the
    /// transaction).
    last_ops: HashMap<String, u64>,
}

/// One request: a command or a pipeline.
#[derive(Clone, Copy)]
enum Req<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
}

impl Req<'_> {
    async fn send(self, conn: &mut ConnectionManager) -> RedisResult<Value> {
        match self {
            Req::Cmd(cmd) => cmd.query_async(conn).await,
            Req::Pipe(pipe) => pipe.query_async(conn).await,
        }
    }
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`)
    /// and checks that it answers. Fails at once, with the URL (credentials
    /// redacted) in the message, if the URL is malformed, uses TLS
    /// (`rediss://`, not compiled in), or the server cannot be reached within
    /// about 1.5 s: a misconfigured URL shows at startup, not at the first
    /// write. Once connected, outages do not need a new store.
    pub fn connect(url: &str, retention: Retention) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        if url.starts_with("rediss://") {
            return Err(StoreError::Url(format!(
                "{shown}: rediss:// (TLS) is not supported by this build of kasagi_store; \
                 use redis:// (e.g. through a TLS tunnel)"
            )));
        }
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Url(format!("invalid Redis URL {shown}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("starting the Redis I/O runtime: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = runtime
            .block_on(async {
                let conn = client.get_connection_manager_with_config(config);
                tokio::time::timeout(ROUND_TRIP_DEADLINE, conn).await
            })
            .map_err(|_| format!("no answer within {ROUND_TRIP_DEADLINE:?}"))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| StoreError::Backend(format!("cannot connect to Redis at {shown}: {e}")))?;
        Ok(Self {
            conn,
            runtime,
            retention,
            url: shown,
            last_ops: HashMap::new(),
        })
    }

    /// One round trip under [`ROUND_TRIP_DEADLINE`]. A refused connection is
    /// tried once more: nothing was sent, and the manager's failed connection
    /// attempt from an earlier outage is replaced by a fresh one.
    fn query(&self, req: Req<'_>) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        let attempt = async move {
            match req.send(&mut conn).await {
                Err(e) if e.is_connection_refusal() => req.send(&mut conn).await,
                result => result,
            }
        };
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(ROUND_TRIP_DEADLINE, attempt).await });
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::Backend(format!("Redis at {}: {e}", self.url))),
            Err(_) => Err(StoreError::Backend(format!(
                "Redis at {}: no answer within {ROUND_TRIP_DEADLINE:?}",
                self.url
            ))),
        }
    }

    /// The world's last ops entry, if any.
    fn last_ops_entry(&self, world: &str) -> Result<Option<OpsEntry>, StoreError> {
        let key = ops_key(world);
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&key).arg("+").arg("-").arg("COUNT").arg(1);
        Ok(ops_entries(&key, self.query(Req::Cmd(&cmd))?)?.pop())
    }
}

impl SnapshotStore for RedisStore {
    fn write(&mut self, w: &TickWrite, _now_ms: u64) -> Result<(), StoreError> {
        let world = w.world.as_str();
        if let (Some(entry), false) = (&w.ops, w.reset_ops)
            && self
                .last_ops
                .get(world)
                .is_some_and(|&last| entry.tick < last)
        {
            return Err(StoreError::OutOfOrder {
                world: world.to_string(),
                tick: entry.tick,
            });
        }
        let ops = ops_key(world);
        let mut pipe = redis::pipe();
        // Errors come back per command, so a rejected XADD can be told apart.
        pipe.atomic().ignore_errors();
        if w.reset_ops {
            pipe.cmd("DEL").arg(&ops);
        }
        let xadd_at = w.ops.as_ref().map(|entry| {
            pipe.cmd("XADD")
                .arg(&ops)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.retention.ops_max_len)
                .arg(format!("{}-1", entry.tick))
                .arg("tick")
                .arg(entry.tick)
                .arg("from")
                .arg(entry.from)
                .arg("data")
                .arg(entry.data.as_slice());
            pipe.len() - 1
        });
        if let Some(snapshot) = &w.snapshot {
            let ttl = self.retention.snapshot_ttl_secs.min(MAX_TTL_SECS);
            if ttl > 0 {
                pipe.cmd("SET")
                    .arg(snapshot_key(world, w.tick))
                    .arg(snapshot.as_slice())
                    .arg("EX")
                    .arg(ttl);
            }
            pipe.cmd("PUBLISH")
                .arg(channel_key(world))
                .arg(snapshot.as_slice());
        }
        if let Some(full) = &w.full_state {
            pipe.cmd("HSET")
                .arg(full_state_key(world))
                .arg("data")
                .arg(full.data.as_slice())
                .arg("tick")
                .arg(full.tick)
                .arg("seq")
                .arg(full.seq)
                .arg("ts")
                .arg(full.ts);
        }
        pipe.cmd("SET").arg(latest_tick_key(world)).arg(w.tick);

        let Value::Array(replies) = self.query(Req::Pipe(&pipe))? else {
            return Err(StoreError::Backend(format!(
                "Redis at {}: the write's transaction was aborted",
                self.url
            )));
        };
        for (at, reply) in replies.iter().enumerate() {
            let Value::ServerError(e) = reply else {
                continue;
            };
            let entry = w.ops.as_ref().filter(|_| Some(at) == xadd_at);
            match entry {
                Some(entry) if e.to_string().contains("equal or smaller") => {
                    // Accepted only as the retry of the stored last entry.
                    if self.last_ops_entry(world)?.as_ref() != Some(entry) {
                        return Err(StoreError::OutOfOrder {
                            world: world.to_string(),
                            tick: entry.tick,
                        });
                    }
                }
                _ => {
                    return Err(StoreError::Backend(format!(
                        "Redis at {}: write of {world} tick {}: {e}",
                        self.url, w.tick
                    )));
                }
            }
        }
        match &w.ops {
            Some(entry) => {
                self.last_ops.insert(world.to_string(), entry.tick);
            }
            None if w.reset_ops => {
                self.last_ops.remove(world);
            }
            None => {}
        }
        Ok(())
    }

    fn latest_tick(&mut self, world: &str) -> Result<Option<u64>, StoreError> {
        let key = latest_tick_key(world);
        let value = self.query(Req::Cmd(redis::cmd("GET").arg(&key)))?;
        match value {
            Value::Nil => Ok(None),
            value => u64_value(&key, &value).map(Some),
        }
    }

    fn full_state(&mut self, world: &str) -> Result<Option<FullState>, StoreError> {
        let key = full_state_key(world);
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&key).arg(&["data", "tick", "seq", "ts"]);
        let Value::Array(fields) = self.query(Req::Cmd(&cmd))? else {
            return Err(parse::corrupt(&key, "HMGET did not answer an array"));
        };
        if fields.iter().all(|f| matches!(f, Value::Nil)) {
            return Ok(None);
        }
        let field = |at: usize, name: &str| {
            fields
                .get(at)
                .filter(|v| !matches!(v, Value::Nil))
                .ok_or_else(|| parse::corrupt(&key, format!("field {name} is missing")))
        };
        Ok(Some(FullState {
            data: bytes_field(&key, field(0, "data")?)?,
            tick: u64_value(&key, field(1, "tick")?)?,
            seq: u64_value(&key, field(2, "seq")?)?,
            ts: u64_value(&key, field(3, "ts")?)?,
        }))
    }

    /// Pages through the stream 1,000 entries at a time; entries
    /// trimmed or added between pages are missed or included accordingly.
    fn ops_after(&mut self, world: &str, after: u64) -> Result<Vec<OpsEntry>, StoreError> {
        let key = ops_key(world);
        let mut out: Vec<OpsEntry> = Vec::new();
        let mut start = after.checked_add(1);
        while let Some(from) = start {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&key)
                .arg(format!("{from}-0"))
                .arg("+")
                .arg("COUNT")
                .arg(XRANGE_PAGE);
            let page = ops_entries(&key, self.query(Req::Cmd(&cmd))?)?;
            let full_page = page.len() == XRANGE_PAGE;
            start = match page.last() {
                Some(last) if full_page => last.tick.checked_add(1),
                _ => None,
            };
            if let (Some(first), Some(prev)) = (page.first(), out.last())
                && first.tick <= prev.tick
            {
                return Err(parse::corrupt(&key, "XRANGE went backwards"));
            }
            out.extend(page);
        }
        Ok(out)
    }

    /// `now_ms` is ignored: Redis expires snapshot keys on its own clock.
    fn snapshots(
        &mut self,
        world: &str,
        from: u64,
        to: u64,
        _now_ms: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        if to - from > MAX_SNAPSHOT_RANGE {
            return Err(StoreError::RangeTooLarge { from, to });
        }
        let mut out = Vec::new();
        let mut chunk_from = from;
        loop {
            let chunk_to = to.min(chunk_from.saturating_add(MGET_CHUNK - 1));
            let mut cmd = redis::cmd("MGET");
            for tick in chunk_from..=chunk_to {
                cmd.arg(snapshot_key(world, tick));
            }
            let Value::Array(values) = self.query(Req::Cmd(&cmd))? else {
                return Err(parse::corrupt(
                    &snapshot_key(world, chunk_from),
                    "MGET did not answer an array",
                ));
            };
            if values.len() as u64 != chunk_to - chunk_from + 1 {
                return Err(parse::corrupt(
                    &snapshot_key(world, chunk_from),
                    "MGET answered the wrong number of values",
                ));
            }
            for (tick, value) in (chunk_from..=chunk_to).zip(&values) {
                if !matches!(value, Value::Nil) {
                    out.push((tick, bytes_field(&snapshot_key(world, tick), value)?));
                }
            }
            if chunk_to == to {
                return Ok(out);
            }
            chunk_from = chunk_to + 1;
        }
    }

    /// From `PTTL`, rounded up; a key without expiry (not written by this
    /// store) answers `Some(u64::MAX)`. `now_ms` is ignored.
    fn snapshot_ttl(
        &mut self,
        world: &str,
        tick: u64,
        _now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let key = snapshot_key(world, tick);
        let value = self.query(Req::Cmd(redis::cmd("PTTL").arg(&key)))?;
        ttl_secs(&key, &value)
    }
}

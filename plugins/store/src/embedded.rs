//! The embedded backend: one redb file in the data directory.
//!
//! redb gives crash-safe, durable transactions, so a killed process leaves the
//! last committed write intact. Each write is one write transaction. Snapshot
//! TTLs are kept as expiry times next to the bytes and enforced on read;
//! expired snapshots of a world are purged as its newer ticks are written.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

use crate::{
    FullState, MAX_SNAPSHOT_RANGE, OpsEntry, Retention, SnapshotStore, StoreError, TickWrite,
    full_state_key, latest_tick_key, ops_key, snapshot_key,
};

/// (world, tick) → expiry (Unix ms, LE u64) followed by the snapshot bytes.
const SNAPSHOTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("snapshots");
/// (world, tick) → `from` (LE u64) followed by the change set bytes.
const OPS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ops");
/// `latest_tick:{world}` → LE u64; `full_state:{world}` → seq, tick, ts (LE u64
/// each) then data; `ops_len:{world}` → LE u64, the number of the world's ops
/// entries (internal bookkeeping, not part of the key schema).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A store in a single redb file: [`SnapshotStore::write`] commits one
/// durable (fsynced) transaction, so a killed process or a power cut loses at
/// most the write in flight and never leaves a partial one. One process at a
/// time may open the file.
pub struct EmbeddedStore {
    db: Database,
    retention: Retention,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn u64_at(bytes: &[u8], at: usize, key: &str) -> Result<u64, StoreError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            key: key.to_string(),
            reason: format!("{} bytes is too short", bytes.len()),
        })
}

fn ops_len_key(world: &str) -> String {
    format!("ops_len:{{{world}}}")
}

fn ops_entry(world: &str, tick: u64, value: &[u8]) -> Result<OpsEntry, StoreError> {
    let key = || format!("{} entry {tick}", ops_key(world));
    Ok(OpsEntry {
        from: u64_at(value, 0, &key())?,
        tick,
        data: value[8..].to_vec(),
    })
}

type OpsTable<'t> = Table<'t, (&'static str, u64), &'static [u8]>;
type MetaTable<'t> = Table<'t, &'static str, &'static [u8]>;

/// The number of `world`'s ops entries, counted once if a file predates the counter.
fn ops_len(ops: &OpsTable, meta: &MetaTable, world: &str) -> Result<u64, StoreError> {
    let key = ops_len_key(world);
    if let Some(v) = meta.get(key.as_str()).map_err(backend)? {
        return u64_at(v.value(), 0, &key);
    }
    Ok(ops
        .range((world, 0)..=(world, u64::MAX))
        .map_err(backend)?
        .count() as u64)
}

/// Appends `entry` under the lineage rule and trims to about `cap` entries
/// ("MAXLEN ~": once 10 % over, the oldest go in one batch, so trimming costs
/// amortised O(1) removals per write).
fn append_ops(
    ops: &mut OpsTable,
    meta: &mut MetaTable,
    world: &str,
    entry: &OpsEntry,
    cap: u64,
) -> Result<(), StoreError> {
    let last = ops
        .range((world, 0)..=(world, u64::MAX))
        .map_err(backend)?
        .next_back()
        .transpose()
        .map_err(backend)?
        .map(|(k, v)| ops_entry(world, k.value().1, v.value()))
        .transpose()?;
    match last {
        Some(last) if last == *entry => return Ok(()), // the retry of a stored write
        Some(last) if last.tick >= entry.tick => {
            return Err(StoreError::OutOfOrder {
                world: world.to_string(),
                tick: entry.tick,
            });
        }
        _ => {}
    }
    let mut len = ops_len(ops, meta, world)? + 1;
    let mut value = Vec::with_capacity(8 + entry.data.len());
    value.extend_from_slice(&entry.from.to_le_bytes());
    value.extend_from_slice(&entry.data);
    ops.insert((world, entry.tick), value.as_slice())
        .map_err(backend)?;
    if len > cap + cap / 10 {
        let oldest: Vec<u64> = ops
            .range((world, 0)..=(world, u64::MAX))
            .map_err(backend)?
            .take((len - cap) as usize)
            .map(|e| e.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        for tick in &oldest {
            ops.remove((world, *tick)).map_err(backend)?;
        }
        len -= oldest.len() as u64;
    }
    meta.insert(ops_len_key(world).as_str(), len.to_le_bytes().as_slice())
        .map_err(backend)?;
    Ok(())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, creating its directory.
    /// Fails if another process has the file open.
    pub fn open(path: impl AsRef<Path>, retention: Retention) -> Result<Self, StoreError> {
        if let Some(dir) = path.as_ref().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let db = Database::create(path.as_ref()).map_err(backend)?;
        // Create the tables up front so that readers never see them missing.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(SNAPSHOTS).map_err(backend)?;
        txn.open_table(OPS).map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(Self { db, retention })
    }
}

impl SnapshotStore for EmbeddedStore {
    fn write(&mut self, w: &TickWrite, now_ms: u64) -> Result<(), StoreError> {
        let world = w.world.as_str();
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut ops = txn.open_table(OPS).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            if w.reset_ops {
                ops.retain_in((world, 0)..=(world, u64::MAX), |_, _| false)
                    .map_err(backend)?;
                meta.remove(ops_len_key(world).as_str()).map_err(backend)?;
            }
            if let Some(entry) = &w.ops {
                let cap = self.retention.ops_max_len;
                append_ops(&mut ops, &mut meta, world, entry, cap)?;
            }

            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
            if let Some(snapshot) = &w.snapshot {
                let ttl_ms = self.retention.snapshot_ttl_secs.saturating_mul(1_000);
                let expires = now_ms.saturating_add(ttl_ms);
                let mut value = Vec::with_capacity(8 + snapshot.len());
                value.extend_from_slice(&expires.to_le_bytes());
                value.extend_from_slice(snapshot);
                snapshots
                    .insert((world, w.tick), value.as_slice())
                    .map_err(backend)?;
            }
            // Purge this world's expired snapshots, oldest first, stopping at
            // the first live one: O(purged + 1) per write.
            let mut expired = Vec::new();
            for entry in snapshots
                .range((world, 0)..(world, w.tick))
                .map_err(backend)?
            {
                let (key, value) = entry.map_err(backend)?;
                let tick = key.value().1;
                if u64_at(value.value(), 0, &snapshot_key(world, tick))? > now_ms {
                    break;
                }
                expired.push(tick);
            }
            for tick in expired {
                snapshots.remove((world, tick)).map_err(backend)?;
            }

            meta.insert(
                latest_tick_key(world).as_str(),
                w.tick.to_le_bytes().as_slice(),
            )
            .map_err(backend)?;
            if let Some(full) = &w.full_state {
                let mut value = Vec::with_capacity(24 + full.data.len());
                for n in [full.seq, full.tick, full.ts] {
                    value.extend_from_slice(&n.to_le_bytes());
                }
                value.extend_from_slice(&full.data);
                meta.insert(full_state_key(world).as_str(), value.as_slice())
                    .map_err(backend)?;
            }
        }
        // Dropping an uncommitted transaction (the `?`s above) aborts it.
        txn.commit().map_err(backend)
    }

    fn latest_tick(&mut self, world: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let key = latest_tick_key(world);
        match meta.get(key.as_str()).map_err(backend)? {
            Some(v) => Ok(Some(u64_at(v.value(), 0, &key)?)),
            None => Ok(None),
        }
    }

    fn full_state(&mut self, world: &str) -> Result<Option<FullState>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let key = full_state_key(world);
        let Some(v) = meta.get(key.as_str()).map_err(backend)? else {
            return Ok(None);
        };
        let bytes = v.value();
        Ok(Some(FullState {
            seq: u64_at(bytes, 0, &key)?,
            tick: u64_at(bytes, 8, &key)?,
            ts: u64_at(bytes, 16, &key)?,
            data: bytes[24..].to_vec(),
        }))
    }

    fn ops_after(&mut self, world: &str, after: u64) -> Result<Vec<OpsEntry>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let txn = self.db.begin_read().map_err(backend)?;
        let ops = txn.open_table(OPS).map_err(backend)?;
        ops.range((world, start)..=(world, u64::MAX))
            .map_err(backend)?
            .map(|e| {
                let (k, v) = e.map_err(backend)?;
                ops_entry(world, k.value().1, v.value())
            })
            .collect()
    }

    fn snapshots(
        &mut self,
        world: &str,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        if to - from > MAX_SNAPSHOT_RANGE {
            return Err(StoreError::RangeTooLarge { from, to });
        }
        let txn = self.db.begin_read().map_err(backend)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in snapshots
            .range((world, from)..=(world, to))
            .map_err(backend)?
        {
            let (k, v) = entry.map_err(backend)?;
            let (tick, bytes) = (k.value().1, v.value());
            if u64_at(bytes, 0, &snapshot_key(world, tick))? > now_ms {
                out.push((tick, bytes[8..].to_vec()));
            }
        }
        Ok(out)
    }

    fn snapshot_ttl(
        &mut self,
        world: &str,
        tick: u64,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
        let Some(v) = snapshots.get((world, tick)).map_err(backend)? else {
            return Ok(None);
        };
        let expires = u64_at(v.value(), 0, &snapshot_key(world, tick))?;
        Ok((expires > now_ms).then(|| (expires - now_ms).div_ceil(1_000)))
    }
}

//! The embedded backend: one redb file in the data directory.
//!
//! redb gives crash-safe, durable transactions, so a killed process leaves the
//! last committed tick intact. Each tick is one write transaction. Snapshot TTLs
//! are kept as expiry times next to the bytes and enforced on read; expired
//! snapshots of a world are purged as its newer ticks are written.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{
    FullState, Retention, SnapshotStore, StoreError, TickWrite, full_state_key, latest_tick_key,
};

/// (world, tick) → expiry (Unix ms, LE u64) followed by the snapshot bytes.
const SNAPSHOTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("snapshots");
/// (world, tick) → change set bytes.
const OPS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ops");
/// `latest_tick:{world}` → LE u64; `full_state:{world}` → seq, tick, ts (LE u64 each) then data.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A store in a single file.
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

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`.
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
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
            let expires =
                now_ms.saturating_add(self.retention.snapshot_ttl_secs.saturating_mul(1_000));
            let mut value = Vec::with_capacity(8 + w.snapshot.len());
            value.extend_from_slice(&expires.to_le_bytes());
            value.extend_from_slice(&w.snapshot);
            snapshots
                .insert((w.world.as_str(), w.tick), value.as_slice())
                .map_err(backend)?;
            // Purge this world's expired snapshots, oldest first.
            let mut expired = Vec::new();
            for entry in snapshots
                .range((w.world.as_str(), 0)..(w.world.as_str(), w.tick))
                .map_err(backend)?
            {
                let (key, value) = entry.map_err(backend)?;
                if u64_at(value.value(), 0, "snapshot")? > now_ms {
                    break;
                }
                expired.push(key.value().1);
            }
            for tick in expired {
                snapshots
                    .remove((w.world.as_str(), tick))
                    .map_err(backend)?;
            }

            let mut ops = txn.open_table(OPS).map_err(backend)?;
            ops.insert((w.world.as_str(), w.tick), w.change_set.as_slice())
                .map_err(backend)?;
            // MAXLEN ~: trim in batches once 10 % over the cap.
            let cap = self.retention.ops_max_len;
            let count = ops
                .range((w.world.as_str(), 0)..=(w.world.as_str(), u64::MAX))
                .map_err(backend)?
                .count() as u64;
            if count > cap + cap / 10 {
                let oldest: Vec<u64> = ops
                    .range((w.world.as_str(), 0)..=(w.world.as_str(), u64::MAX))
                    .map_err(backend)?
                    .take((count - cap) as usize)
                    .map(|e| e.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                for tick in oldest {
                    ops.remove((w.world.as_str(), tick)).map_err(backend)?;
                }
            }

            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert(
                latest_tick_key(&w.world).as_str(),
                w.tick.to_le_bytes().as_slice(),
            )
            .map_err(backend)?;
            if let Some(full) = &w.full_state {
                let mut value = Vec::with_capacity(24 + full.data.len());
                for n in [full.seq, full.tick, full.ts] {
                    value.extend_from_slice(&n.to_le_bytes());
                }
                value.extend_from_slice(&full.data);
                meta.insert(full_state_key(&w.world).as_str(), value.as_slice())
                    .map_err(backend)?;
            }
        }
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

    fn ops_after(&mut self, world: &str, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let ops = txn.open_table(OPS).map_err(backend)?;
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        ops.range((world, start)..=(world, u64::MAX))
            .map_err(backend)?
            .map(|e| {
                e.map(|(k, v)| (k.value().1, v.value().to_vec()))
                    .map_err(backend)
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
        let txn = self.db.begin_read().map_err(backend)?;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in snapshots
            .range((world, from)..=(world, to))
            .map_err(backend)?
        {
            let (k, v) = entry.map_err(backend)?;
            let bytes = v.value();
            if u64_at(bytes, 0, "snapshot")? > now_ms {
                out.push((k.value().1, bytes[8..].to_vec()));
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
        let expires = u64_at(v.value(), 0, "snapshot")?;
        Ok((expires > now_ms).then(|| (expires - now_ms).div_ceil(1_000)))
    }
}

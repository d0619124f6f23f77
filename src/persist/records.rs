//! What the bytes in the store are: the three record formats, versioned and
//! decoded with bounds (stored bytes are untrusted like any input).
//!
//! | record | key | content |
//! |---|---|---|
//! | [`OpsRecord`] | `room:{w}:ops` entry | the inputs of each covered tick, and their composed change set |
//! | [`SnapshotRecord`] | `snapshot:{w}:<tick>` | the full cast of the tick(s); the world-visible cast derives from it |
//! | [`StateRecord`] | `full_state:{w}` `data` | the whole [`SimState`], its state hash and world definition |

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use kasagi_replication::FullChangeSet;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::sim::input::SimInput;
use crate::sim::{SimState, WorldDef};

/// The record format this build writes and reads (the first byte of every
/// record). Format 3 (format 2 plus the swarm's health and marker in
/// `SimState`): the format byte, then LZ4 (block format, uncompressed
/// size prepended) of the bincode encoding. A tick's change set repeats its
/// field paths thousands of times, so it compresses well, and the writer has
/// the time (the tick thread never sees this).
pub const FORMAT_VERSION: u8 = 3;

/// The largest record this build decodes: bounds the allocation a corrupt or
/// hostile length prefix can cause.
pub const MAX_RECORD_BYTES: usize = 512 << 20;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_RECORD_BYTES>>;

const fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// One ops entry: ticks `from..=tick` of a room.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpsRecord {
    /// The inputs applied before each covered tick, oldest first; ticks without
    /// inputs are left out. Replaying them from the previous state re-creates
    /// the room exactly (the simulation is deterministic).
    pub inputs: Vec<(u64, Vec<SimInput>)>,
    /// The replicated changes of the covered ticks, composed into one: what
    /// recovery checks the replay against, and what tools show.
    pub changes: FullChangeSet,
}

/// The per-tick snapshot: the full cast (every replicated field change, old →
/// new). The world-visible cast (what a client seeing the whole room is told:
/// public components, values without their old ones) is a pure function of
/// it, [`SnapshotRecord::visible`], derived when read rather than stored
/// twice.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotRecord {
    /// The first tick covered (equal to `full.tick` unless coalesced).
    pub from: u64,
    /// The full change set.
    pub full: FullChangeSet,
}

impl SnapshotRecord {
    /// The world-visible cast, leaving out the `private` components.
    pub fn visible(&self, private: &[String]) -> FullChangeSet {
        visible_cast(&self.full, private)
    }
}

/// The archived whole state of a room.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateRecord {
    /// The state hash of `state`, as the live room computed it.
    pub hash: u64,
    /// Everything needed to resume the room.
    pub state: SimState,
    /// The rules the room runs by, so that a state resumes without its world file.
    pub def: WorldDef,
}

/// Why stored bytes could not be read.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The record is empty.
    #[error("empty record")]
    Empty,
    /// Written by a different record format.
    #[error("record format {found}, this build reads format {FORMAT_VERSION}")]
    Version {
        /// The format byte found.
        found: u8,
    },
    /// The bytes do not decode.
    #[error("undecodable record: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The compressed body is damaged.
    #[error("undecompressable record: {0}")]
    Compression(String),
    /// The record claims to be larger than this build reads.
    #[error("record of {0} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    /// Bytes are left after the record.
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
}

/// [`OpsRecord`] by reference: the same bytes without copying the change set.
#[derive(serde::Serialize)]
pub struct OpsRecordRef<'a> {
    /// See [`OpsRecord::inputs`].
    pub inputs: &'a [(u64, Vec<SimInput>)],
    /// See [`OpsRecord::changes`].
    pub changes: &'a FullChangeSet,
}

/// [`SnapshotRecord`] by reference.
#[derive(serde::Serialize)]
pub struct SnapshotRecordRef<'a> {
    /// See [`SnapshotRecord::from`].
    pub from: u64,
    /// See [`SnapshotRecord::full`].
    pub full: &'a FullChangeSet,
}

/// [`StateRecord`] by reference.
#[derive(serde::Serialize)]
pub struct StateRecordRef<'a> {
    /// See [`StateRecord::hash`].
    pub hash: u64,
    /// See [`StateRecord::state`].
    pub state: &'a SimState,
    /// See [`StateRecord::def`].
    pub def: &'a WorldDef,
}

/// Encodes a record: the format byte, then the compressed bincode.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Encoding our own in-memory records into a Vec cannot fail.
    let plain = bincode::serde::encode_to_vec(record, config()).expect("records encode into a Vec");
    let mut out = Vec::with_capacity(1 + plain.len() / 3);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&lz4_flex::block::compress_prepend_size(&plain));
    out
}

/// Decodes a record written by [`encode`], with every length bounded: the
/// stated uncompressed size before anything is allocated, then every length
/// inside the record.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    let (&version, body) = bytes.split_first().ok_or(RecordError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(RecordError::Version { found: version });
    }
    let size = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| RecordError::Compression("missing size".into()))?;
    if size > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(size));
    }
    let plain = lz4_flex::block::decompress_size_prepended(body)
        .map_err(|e| RecordError::Compression(e.to_string()))?;
    let (value, used) = bincode::serde::decode_from_slice(&plain, config())?;
    match plain.len() - used {
        0 => Ok(value),
        n => Err(RecordError::Trailing(n)),
    }
}

/// The world-visible cast of a full change set: public components only and
/// no field-level old values (clients get values, not histories).
pub fn visible_cast(full: &FullChangeSet, private: &[String]) -> FullChangeSet {
    let mut out = full.clone();
    for changes in out.kinds.values_mut() {
        changes.updated.clear();
        for created in &mut changes.created {
            created
                .components
                .retain(|c| !private.iter().any(|p| **p == *c.component));
        }
        changes
            .written
            .retain(|w| !private.iter().any(|p| **p == *w.component));
    }
    out.kinds.retain(|_, changes| !changes.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let record = OpsRecord {
            inputs: vec![(7, vec![SimInput::SpawnPlayer])],
            changes: FullChangeSet::default(),
        };
        let bytes = encode(&record);
        assert_eq!(decode::<OpsRecord>(&bytes).unwrap(), record);
        assert!(matches!(decode::<OpsRecord>(&[]), Err(RecordError::Empty)));
        assert!(matches!(
            decode::<OpsRecord>(&[9, 0]),
            Err(RecordError::Version { found: 9 })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode::<OpsRecord>(&long).is_err(), "trailing garbage");
        // A huge stated size is refused, not allocated.
        let hostile = [FORMAT_VERSION, 0xff, 0xff, 0xff, 0x7f, 0, 0];
        assert!(matches!(
            decode::<OpsRecord>(&hostile),
            Err(RecordError::TooLarge(_))
        ));
        // Damaged compressed bytes are an error, not a panic.
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        damaged.truncate(last - 1);
        assert!(decode::<OpsRecord>(&damaged).is_err());
    }
}

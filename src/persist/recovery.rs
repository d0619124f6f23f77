//! Bringing a room back: the last whole state, then the ops after it replayed
//! through the simulation, each replayed tick checked against the change set
//! the live room recorded for it.

use kasagi_replication::{FullChangeSet, ReplicationServer};
use serde::Serialize;
use thiserror::Error;

use super::Loaded;
use super::records::{self, OpsRecord, RecordError, StateRecord};
use crate::room::Room;
use crate::sim::input::apply_input;
use crate::sim::{SimState, WorldDef, state_hash};

/// What recovery did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// The tick of the whole state it started from.
    pub full_state_tick: u64,
    /// The latest tick the store knew of.
    pub latest_tick: u64,
    /// The tick the room resumes at.
    pub tick: u64,
    /// Ticks re-simulated from recorded inputs.
    pub replayed_ticks: u64,
    /// Replayed ticks whose replicated changes matched the recorded ones exactly.
    pub verified_ticks: u64,
    /// The first replayed tick whose changes differed from the recording (a
    /// different build, or a bug): the room resumes, but not bit-exactly.
    pub diverged_at: Option<u64>,
    /// Why replay stopped before `latest_tick`, if it did.
    pub stopped: Option<String>,
    /// The state hash the room resumes with.
    pub state_hash: u64,
}

impl Recovery {
    /// Whether the room resumed exactly where the store says it was.
    pub fn is_exact(&self) -> bool {
        self.tick == self.latest_tick && self.diverged_at.is_none() && self.stopped.is_none()
    }
}

/// Why a room could not be recovered at all.
#[derive(Debug, Error)]
pub enum RecoveryError {
    /// The whole state does not decode.
    #[error("full state record: {0}")]
    Record(#[from] RecordError),
    /// The whole state decodes but is not what was written.
    #[error(
        "full state of tick {tick} is corrupt: stored hash {stored:016x}, content hashes to {actual:016x}"
    )]
    Hash {
        /// The state's tick.
        tick: u64,
        /// The hash stored with it.
        stored: u64,
        /// The hash of what was read.
        actual: u64,
    },
}

/// Rebuilds the room described by `loaded`. `build` makes a room (with the
/// same plugins the live room had) resuming a state under a world definition.
pub fn recover(
    loaded: Loaded,
    build: impl FnOnce(WorldDef, SimState) -> Room,
) -> Result<(Room, WorldDef, Recovery), RecoveryError> {
    let record: StateRecord = records::decode(&loaded.full_state.data)?;
    let actual = record.state.hash();
    if actual != record.hash {
        return Err(RecoveryError::Hash {
            tick: record.state.tick,
            stored: record.hash,
            actual,
        });
    }
    let full_tick = record.state.tick;
    let def = record.def.clone();
    let mut room = build(record.def, record.state);
    let mut report = Recovery {
        full_state_tick: full_tick,
        latest_tick: loaded.latest_tick.max(full_tick),
        tick: full_tick,
        replayed_ticks: 0,
        verified_ticks: 0,
        diverged_at: None,
        stopped: None,
        state_hash: 0,
    };
    for entry in loaded.ops.into_iter().filter(|e| e.tick > full_tick) {
        // Entries are contiguous; one may start before the whole state (the
        // writer coalesced ticks across an archive tick): replay its tail.
        if entry.from > report.tick + 1 {
            report.stopped = Some(format!(
                "ops gap: tick {} is followed by an entry for ticks {}..={}",
                report.tick, entry.from, entry.tick
            ));
            break;
        }
        let ops: OpsRecord = match records::decode(&entry.data) {
            Ok(ops) => ops,
            Err(e) => {
                report.stopped = Some(format!("ops entry of tick {}: {e}", entry.tick));
                break;
            }
        };
        let first = entry.from.max(report.tick + 1);
        let mut inputs = ops
            .inputs
            .into_iter()
            .filter(|(t, _)| *t >= first)
            .peekable();
        for tick in first..=entry.tick {
            while let Some((_, batch)) = inputs.next_if(|(t, _)| *t <= tick) {
                for input in batch {
                    if apply_input(room.world_mut(), input).is_err() {
                        report.diverged_at.get_or_insert(tick);
                    }
                }
            }
            room.tick();
            report.replayed_ticks += 1;
            report.tick = tick;
        }
        // The first replayed tick creates every entity (the restored room's
        // replication starts empty), so only later single ticks compare 1:1.
        if first == entry.from && entry.from == entry.tick && entry.from > full_tick + 1 {
            let replayed = room
                .world()
                .resource::<ReplicationServer>()
                .full_change_set();
            if normalized(replayed) == normalized(&ops.changes) {
                report.verified_ticks += 1;
            } else {
                report.diverged_at.get_or_insert(entry.tick);
            }
        }
    }
    if report.stopped.is_none() && report.tick < report.latest_tick {
        report.stopped = Some(format!(
            "ops end at tick {}, latest_tick is {}",
            report.tick, report.latest_tick
        ));
    }
    report.state_hash = state_hash(room.world_mut());
    Ok((room, def, report))
}

/// A change set in a canonical order: entity iteration order differs between
/// a live room and a rebuilt one, the content must not.
fn normalized(set: &FullChangeSet) -> FullChangeSet {
    let mut set = set.clone();
    for changes in set.kinds.values_mut() {
        changes.created.sort_by_key(|c| c.id);
        for created in &mut changes.created {
            created
                .components
                .sort_by(|a, b| a.component.cmp(&b.component));
        }
        changes
            .updated
            .sort_by(|a, b| (a.entity, &a.field).cmp(&(b.entity, &b.field)));
        changes
            .written
            .sort_by(|a, b| (a.entity, &a.component).cmp(&(b.entity, &b.component)));
        changes.deleted.sort();
    }
    set.kinds.retain(|_, c| !c.is_empty());
    set
}

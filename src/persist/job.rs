//! The unit of work between a room and the writer: some consecutive ticks of
//! one room, which can be folded together without losing anything.

use kasagi_replication::FullChangeSet;

use std::sync::Arc;

use crate::sim::input::SimInput;
use crate::sim::{SimState, WorldDef};

/// A whole state to archive, with the rules of its world.
#[derive(Debug)]
pub(crate) struct Archive {
    /// The state.
    pub state: SimState,
    /// The world definition the room runs (archived so the state is self-contained).
    pub def: Arc<WorldDef>,
}

/// Ticks `from..=tick` of one room (none when `from > tick`: a state-only job).
#[derive(Debug)]
pub(crate) struct TickJob {
    /// The room's world name.
    pub world: String,
    /// The first tick covered.
    pub from: u64,
    /// The last tick covered.
    pub tick: u64,
    /// The inputs of each covered tick that had any.
    pub inputs: Vec<(u64, Vec<SimInput>)>,
    /// The covered ticks' replicated changes, composed (shared with the
    /// replication server for the tick it was made in: never copied there).
    pub changes: Arc<FullChangeSet>,
    /// A captured whole state to archive (its own tick is `state.tick`).
    pub state: Option<Archive>,
    /// The state starts a new lineage: stored ops are dropped first.
    pub reset: bool,
    /// The covered ticks were dropped (memory bound): only a state may be written.
    pub gap: bool,
}

impl TickJob {
    /// A job for one tick.
    pub fn tick(
        world: &str,
        tick: u64,
        inputs: Vec<SimInput>,
        changes: Arc<FullChangeSet>,
        state: Option<Archive>,
    ) -> Self {
        Self {
            world: world.to_string(),
            from: tick,
            tick,
            inputs: if inputs.is_empty() {
                Vec::new()
            } else {
                vec![(tick, inputs)]
            },
            changes,
            state,
            reset: false,
            gap: false,
        }
    }

    /// A job that only archives `state` (a room's starting point).
    pub fn state_only(world: &str, state: Archive, reset: bool) -> Self {
        let tick = state.state.tick;
        Self {
            world: world.to_string(),
            from: tick + 1,
            tick,
            inputs: Vec::new(),
            changes: Arc::new(FullChangeSet {
                tick,
                ..FullChangeSet::default()
            }),
            state: Some(state),
            reset,
            gap: false,
        }
    }

    /// How many ticks the job covers.
    pub fn ticks(&self) -> u64 {
        (self.tick + 1).saturating_sub(self.from)
    }

    /// Whether the job covers any tick's changes.
    pub fn has_ops(&self) -> bool {
        self.from <= self.tick && !self.gap
    }

    /// Folds the following job of the same room into this one: writing the
    /// result has the same effect as writing both in order.
    pub fn absorb(&mut self, next: TickJob) {
        debug_assert_eq!(self.world, next.world);
        if self.gap {
            if let Some(state) = next.state {
                // A fresh whole state closes the gap; ticks after it are kept.
                // Ops before the gap are useless now: start a new lineage.
                let (from, tick) = (next.from, next.tick);
                *self = Self::state_only(&next.world, state, true);
                self.inputs = next.inputs;
                self.changes = next.changes;
                if from <= tick {
                    self.from = from;
                }
                self.tick = self.tick.max(tick);
            } else {
                self.tick = next.tick;
            }
            return;
        }
        self.tick = next.tick;
        self.inputs.extend(next.inputs);
        // Copies only if the replication server still shares the set (a
        // job held by a room whose queue is full).
        Arc::make_mut(&mut self.changes).compose(Arc::unwrap_or_clone(next.changes));
        if next.state.is_some() {
            self.state = next.state;
        }
    }

    /// Drops the covered ticks (the writer is past its memory bound): nothing
    /// but a later whole state can be written for this room now.
    pub fn drop_ticks(&mut self) -> u64 {
        let dropped = if self.has_ops() { self.ticks() } else { 0 };
        self.gap = true;
        self.inputs.clear();
        self.changes = Arc::default();
        self.state = None;
        dropped
    }

    /// A rough size in bytes, for the writer's memory bound.
    pub fn approx_bytes(&self) -> usize {
        let changes = self.changes.len() * 48;
        let inputs: usize = self.inputs.iter().map(|(_, i)| 16 + i.len() * 24).sum();
        let state = self
            .state
            .as_ref()
            .map_or(0, |a| a.state.entities.len() * 96);
        changes + inputs + state
    }
}
